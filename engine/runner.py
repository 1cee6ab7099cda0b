"""The Python side of a run: build the state, compile the strategy, drive the loop in chunks.

`Engine` is what the CLI, the cockpit's engine thread, the optimizer and tests use:

    eng = Engine(stream, MarketMaker, [{"half_spread": 3}], EngineConfig())
    eng.start()
    eng.run()                      # to the end, or .run(max_events=1) to step one event
    eng.command(Command(CMD_FLATTEN))
    eng.finish()
    res = eng.results()            # journal, fills, equity, alerts as numpy tables

Buffers (journal, fills, alerts, equity) are drained into Python-side chunks whenever the loop
says they are half full, so nothing is overwritten. A checkpoint is every array of the state
plus the strategy rows and the drained chunks; a restored run continues byte-identically.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.codes import (
    A_STRATEGY_ERROR,
    SEV_CRITICAL,
    STOP_BUFFER_FULL,
    STOP_CHUNK_DONE,
    STOP_END_OF_DATA,
    STOP_NAMES,
)
from engine.commands import (
    CMD_SET_PARAM,
    CMD_START_STRATEGY,
    CMD_STOP_STRATEGY,
    Command,
    apply_command,
)
from engine.config import EngineConfig, configure
from engine.data.stream import EventStream
from engine.errors import CockpitError, UsageError
from engine.events import EVENT_DTYPE
from engine.jit import entry
from engine.loop import run_chunk, strategy_fault
from engine.oms import alert
from engine.portfolio import sample_equity
from engine.state import (
    AL_N,
    ALERT_COLUMNS,
    CI_RULE_ADDR,
    CK_CUR_STRAT,
    CK_CURSOR,
    CK_DATA_EVENTS,
    CK_ENGINE_EVENTS,
    CK_FAULT,
    CK_NOW,
    F_N,
    FILL_COLUMNS,
    J_N,
    JOURNAL_COLUMNS,
    N_ALERTS,
    N_ALERTS_DRAINED,
    N_EQUITY,
    N_EQUITY_DRAINED,
    N_FILLS,
    N_FILLS_DRAINED,
    N_JOURNAL,
    N_JOURNAL_DRAINED,
    RI_ENABLED,
    RI_FAULT_HOOK,
    RI_FAULT_TS,
    EngineState,
    new_state,
)
from engine.stats import C_BUFFER_OVERFLOW, C_HEAP_OVERFLOW, COUNTER_NAMES
from engine.strategy import (
    HOOKS,
    _NoStrategy,
    compile_hooks,
    make_rows,
    subscriptions,
)

INT64_MAX = np.iinfo(np.int64).max
NO_LATENCY = np.zeros(0, np.int64)


class EngineError(CockpitError):
    """The engine cannot go on (a capacity exceeded, a corrupt checkpoint)."""

    title = "Engine error"


@entry
def _call_all(st, rows, hook, enabled_only: bool) -> int:
    """Call on_start or on_stop for every instance; returns the instance index reached."""
    for j in range(rows.shape[0]):
        if enabled_only and st.ri[j, RI_ENABLED] == 0:
            continue
        st.ctl[CK_CUR_STRAT] = j
        hook(rows[j], st)
        if st.ctl[CK_FAULT] != 0:
            strategy_fault(st, j)
    st.ctl[CK_CUR_STRAT] = -1
    return rows.shape[0]


@entry
def _call_one(st, rows, hook, j: int) -> None:
    """Call on_start or on_stop for instance j."""
    st.ctl[CK_CUR_STRAT] = j
    hook(rows[j], st)
    if st.ctl[CK_FAULT] != 0:
        strategy_fault(st, j)
    st.ctl[CK_CUR_STRAT] = -1


@dataclass
class StrategyFault:
    """A strategy instance raised: it was disabled and the run went on."""

    instance: int
    hook_time_ns: int
    message: str


@dataclass
class Drained:
    """Rows taken out of the state's buffers, in order (each chunk a copied array)."""

    journal: list[np.ndarray] = field(default_factory=list)
    fills: list[np.ndarray] = field(default_factory=list)
    fees: list[np.ndarray] = field(default_factory=list)
    alerts: list[np.ndarray] = field(default_factory=list)
    equity: list[np.ndarray] = field(default_factory=list)
    equity_value: list[np.ndarray] = field(default_factory=list)


def _take(table: np.ndarray, ctl: np.ndarray, n_index: int, drained_index: int) -> np.ndarray:
    """Copy out the filled rows of a buffer table, zero them and reset its count."""
    k = int(ctl[n_index])
    out = table[:k].copy()
    table[:k] = 0
    ctl[n_index] = 0
    if drained_index >= 0:
        ctl[drained_index] += k
    return out


def _columns(chunks: list[np.ndarray], names: tuple[str, ...], width: int) -> dict[str, np.ndarray]:
    rows = np.concatenate(chunks) if chunks else np.zeros((0, width), np.int64)
    return {name: rows[:, i].copy() for i, name in enumerate(names)}


class Engine:
    """One run of the engine over one event stream with one strategy class."""

    def __init__(
        self,
        stream: EventStream,
        strategy_cls: type | None = None,
        instances: list[dict[str, Any]] | None = None,
        config: EngineConfig | None = None,
    ) -> None:
        self.stream = stream
        self.config = config or EngineConfig()
        self.strategy_cls = strategy_cls or _NoStrategy
        n_inst = max(1, len(stream.instruments))
        ev = stream.events
        if ev.dtype != EVENT_DTYPE:
            raise UsageError("events must have EVENT_DTYPE")
        if len(ev) and int(ev["instrument"].max()) >= n_inst:
            raise UsageError(
                f"events refer to instrument {int(ev['instrument'].max())} but the stream "
                f"registers {len(stream.instruments)}"
            )
        self.events = ev
        self.rows = make_rows(self.strategy_cls, instances or [])
        self.state: EngineState = new_state(n_inst, len(self.rows), **self.config.capacities())
        configure(self.state, self.config, stream.instruments)
        self.subs_start, self.subs_idx = subscriptions(self.rows, n_inst)
        if strategy_cls is None:
            self.subs_start[:] = 0
            self.subs_idx = np.zeros(0, dtype=np.int64)
        hooks = compile_hooks(self.strategy_cls, self.rows, self.state, self.events)
        self._on_start, on_data, on_tick, on_update, self._on_stop = hooks
        self._loop_hooks = (on_data, on_tick, on_update)
        self.drained = Drained()
        self.commands: list[Command] = []
        self.faults: list[StrategyFault] = []
        self.started = False
        self.finished = False
        self.last_stop = STOP_CHUNK_DONE
        self.wall_seconds = 0.0
        self.latency_out: np.ndarray | None = None
        """When set (int64 array), each event's cycle count is written there per chunk."""

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Call every instance's on_start (once)."""
        if self.started:
            return
        self.started = True
        self._guarded(lambda: _call_all(self.state, self.rows, self._on_start, False))

    def finish(self) -> None:
        """Call on_stop, take a last equity sample and drain the buffers (once)."""
        if self.finished:
            return
        self.start()
        self.finished = True
        self._guarded(lambda: _call_all(self.state, self.rows, self._on_stop, True))
        sample_equity(self.state)
        self.drain()

    @property
    def now(self) -> int:
        """Engine time, ns."""
        return int(self.state.ctl[CK_NOW])

    @property
    def cursor(self) -> int:
        """Index of the next data event."""
        return int(self.state.ctl[CK_CURSOR])

    @property
    def events_processed(self) -> int:
        """Data plus scheduled events processed so far."""
        c = self.state.ctl
        return int(c[CK_DATA_EVENTS] + c[CK_ENGINE_EVENTS])

    @property
    def at_end(self) -> bool:
        """True once the loop reported the end of the data."""
        return self.last_stop == STOP_END_OF_DATA

    # ----------------------------------------------------------------------- run

    def _guarded(self, fn):
        """Run fn; a strategy exception disables that instance and is recorded."""
        while True:
            try:
                out = fn()
                self._collect_faults()
                return out
            except CockpitError:
                raise
            except Exception as exc:  # raised inside a jitted strategy hook
                j = int(self.state.ctl[CK_CUR_STRAT])
                if j < 0:
                    raise
                self.state.ctl[CK_CUR_STRAT] = -1
                self.state.ri[j, RI_ENABLED] = 0
                alert(self.state, A_STRATEGY_ERROR, SEV_CRITICAL, 0, -1, -1, j, 0)
                self.faults.append(StrategyFault(j, self.now, f"{type(exc).__name__}: {exc}"))

    def _collect_faults(self) -> None:
        """Record the instances the loop disabled because a hook raised (engine/strategy.py
        guards every hook: numba cannot pass an exception through the loop's hook calls)."""
        ri = self.state.ri
        known = {(f.instance, f.hook_time_ns) for f in self.faults}
        # A stopped instance is disabled too: only a hook code says it raised.
        new = [
            j
            for j in np.flatnonzero(ri[: len(self.rows), RI_FAULT_HOOK] != 0)
            if (int(j), int(ri[j, RI_FAULT_TS])) not in known
        ]
        for j in sorted(new, key=lambda j: (ri[j, RI_FAULT_TS], j)):
            code = int(ri[j, RI_FAULT_HOOK])
            hook = HOOKS[code - 1] if 1 <= code <= len(HOOKS) else "a hook"
            self.faults.append(
                StrategyFault(
                    int(j),
                    int(ri[j, RI_FAULT_TS]),
                    f"{self.strategy_cls.__name__}.{hook} raised an exception (compiled code "
                    "keeps no message); the instance is disabled",
                )
            )

    def run(
        self,
        max_events: int = INT64_MAX,
        break_mask: int = 0,
        stop_ts: int = INT64_MAX,
        chunk: int = 1 << 20,
    ) -> int:
        """Process up to max_events events (in chunks); returns the STOP_* reason."""
        self.start()
        t0 = time.perf_counter()
        left = max_events
        reason = STOP_CHUNK_DONE
        st = self.state
        while left > 0:
            before = self.events_processed
            step = min(left, chunk)

            def call(step=step):
                return self._run_chunk(
                    st,
                    self.events,
                    self.rows,
                    self._loop_hooks,
                    self.subs_start,
                    self.subs_idx,
                    step,
                    break_mask,
                    stop_ts,
                    self._latency_view(),
                )

            reason = self._guarded(call)
            if reason is None:  # a hook raised: continue the same chunk from where it was
                reason = STOP_CHUNK_DONE
            left -= self.events_processed - before
            if st.ctl[C_HEAP_OVERFLOW]:
                raise EngineError("the scheduled-event heap overflowed; raise its capacity")
            self._check_buffers()
            if reason == STOP_BUFFER_FULL:
                self.drain()
                continue
            if reason != STOP_CHUNK_DONE:
                break
        self.last_stop = reason
        self.wall_seconds += time.perf_counter() - t0
        return reason

    def _run_chunk(self, *args: Any) -> int:
        """One run_chunk call (LiveEngine skips the dispatcher's typing of its arguments)."""
        return run_chunk(*args)

    def _latency_view(self) -> np.ndarray:
        """Where this chunk's per-event cycle counts go (index = events processed so far)."""
        if self.latency_out is None:
            return NO_LATENCY
        pos = min(self.events_processed, len(self.latency_out))
        return self.latency_out[pos:]

    def step(self, n: int = 1) -> int:
        """Process exactly n events (data or scheduled) unless the data ends first."""
        return self.run(max_events=n)

    def command(self, cmd: Command) -> int:
        """Apply a command now (between chunks), stamp it and journal it.

        After the end of the data, what the command sent (a flatten's market orders, cancels)
        is processed at once against the last book: the venue still answers.

        Raises:
            UsageError: a command naming an instance that does not exist, bad parameters.
        """
        self.start()
        if cmd.kind in (CMD_STOP_STRATEGY, CMD_START_STRATEGY) and not (
            0 <= cmd.a < len(self.rows)
        ):
            raise UsageError(
                f"strategy instance {cmd.a} does not exist (there are {len(self.rows)})"
            )
        if cmd.kind == CMD_SET_PARAM:
            values = self._check_params(cmd)
        stamped = replace(cmd, ts=self.now, after_events=self.events_processed)
        self.commands.append(stamped)
        self.drain()  # a command may write many rows at once (cancel all, flatten)
        if cmd.kind == CMD_SET_PARAM:
            self._write_params(values, cmd.a)
            out = len(values)
        else:
            if cmd.kind == CMD_STOP_STRATEGY and self.state.ri[cmd.a, RI_ENABLED]:
                self._guarded(lambda: _call_one(self.state, self.rows, self._on_stop, cmd.a))
            out = int(apply_command(self.state, cmd.kind, cmd.a, cmd.b, cmd.c, cmd.d))
            if cmd.kind == CMD_START_STRATEGY:
                self._guarded(lambda: _call_one(self.state, self.rows, self._on_start, cmd.a))
        self._check_buffers()
        if self.at_end:
            self.run()
        return out

    def set_params(self, params: dict[str, Any], instance: int = -1) -> dict[str, Any]:
        """Change strategy parameters now (all instances, or one), as a journaled command.

        Values are checked like `--param` values; instrument fields cannot change on a running
        engine (its subscriptions and orders refer to them). Returns the values written.
        """
        from engine.backtest import coerce_params

        values = coerce_params(self.strategy_cls, dict(params))
        cmd = Command(CMD_SET_PARAM, a=instance, text=json.dumps(values))
        self.command(cmd)
        return json.loads(self.commands[-1].text)

    def stop_instance(self, instance: int) -> int:
        """Stop one instance: its on_stop, then no more calls and its orders canceled."""
        return self.command(Command(CMD_STOP_STRATEGY, a=instance))

    def start_instance(self, instance: int) -> int:
        """Start a stopped (or faulted) instance again: calls resume with its on_start."""
        return self.command(Command(CMD_START_STRATEGY, a=instance))

    def _check_params(self, cmd: Command) -> dict[str, Any]:
        from engine.backtest import coerce_params

        try:
            raw = json.loads(cmd.text)
        except ValueError:
            raise UsageError(f"set_param: {cmd.text!r} is not a JSON object") from None
        if not isinstance(raw, dict):
            raise UsageError(f"set_param: {cmd.text!r} is not a JSON object")
        values = coerce_params(self.strategy_cls, raw)
        if not -1 <= cmd.a < len(self.rows):
            raise UsageError(
                f"strategy instance {cmd.a} does not exist (there are {len(self.rows)})"
            )
        for k, v in values.items():
            if re.fullmatch(r"instrument\d*", k):
                current = {int(x) for x in np.asarray(self.rows[k])}
                if current != {int(v)}:
                    raise UsageError(f"parameter {k!r} cannot change on a running engine")
        return values

    def _write_params(self, values: dict[str, Any], instance: int) -> None:
        targets = range(len(self.rows)) if instance < 0 else [instance]
        for k, v in values.items():
            for j in targets:
                self.rows[k][j] = v

    def _check_buffers(self) -> None:
        """Rows can only be lost when one event or command outgrew a buffer: say so."""
        if self.state.ctl[C_BUFFER_OVERFLOW]:
            st = self.state
            raise EngineError(
                f"{int(st.ctl[C_BUFFER_OVERFLOW])} journal, fill, alert or equity rows did not "
                "fit: one event or command wrote more than a buffer holds; raise "
                f"journal_capacity ({st.jr.shape[0]}), fills_capacity ({st.fl.shape[0]}), "
                f"alerts_capacity ({st.al.shape[0]}) or equity_capacity ({st.eq.shape[0]})"
            )

    def replay_commands(self, commands: list[Command]) -> int:
        """Run to the end applying recorded commands at the event counts they were applied."""
        for cmd in sorted(commands, key=lambda c: c.after_events):
            gap = cmd.after_events - self.events_processed
            if gap > 0:
                self.run(max_events=gap)
            if cmd.ts > self.now:
                # Applied after a run that stopped at a time (BREAK_TIME moves the clock to
                # it without an event): move the clock the same way, or the command and the
                # orders it sends would carry an earlier time than they did.
                self.state.ctl[CK_NOW] = cmd.ts
            self.command(cmd)
        return self.run()

    # ------------------------------------------------------------------- results

    def drain(self) -> None:
        """Move buffered journal, fills, alerts and equity rows into Python-side chunks."""
        st, d = self.state, self.drained
        if st.ctl[N_JOURNAL]:
            d.journal.append(_take(st.jr, st.ctl, N_JOURNAL, N_JOURNAL_DRAINED))
        if st.ctl[N_FILLS]:
            k = int(st.ctl[N_FILLS])
            d.fees.append(st.fee[:k].copy())
            st.fee[:k] = 0
            d.fills.append(_take(st.fl, st.ctl, N_FILLS, N_FILLS_DRAINED))
        if st.ctl[N_ALERTS]:
            d.alerts.append(_take(st.al, st.ctl, N_ALERTS, N_ALERTS_DRAINED))
        if st.ctl[N_EQUITY]:
            k = int(st.ctl[N_EQUITY])
            d.equity_value.append(st.eqf[:k].copy())
            st.eqf[:k] = 0
            d.equity.append(_take(st.eq, st.ctl, N_EQUITY, N_EQUITY_DRAINED))

    def journal(self) -> dict[str, np.ndarray]:
        """Every audit row so far (drained plus buffered), by column."""
        self.drain()
        return _columns(self.drained.journal, JOURNAL_COLUMNS, J_N)

    def fills(self) -> dict[str, np.ndarray]:
        """Every fill so far, by column (fee in quote currency)."""
        self.drain()
        out = _columns(self.drained.fills, FILL_COLUMNS, F_N)
        fees = self.drained.fees
        out["fee"] = np.concatenate(fees) if fees else np.zeros(0, np.float64)
        return out

    def alerts(self) -> dict[str, np.ndarray]:
        """Every alert so far, by column."""
        self.drain()
        return _columns(self.drained.alerts, ALERT_COLUMNS, AL_N)

    def equity_curve(self) -> dict[str, np.ndarray]:
        """Equity samples so far: time, equity of all rows, net position of instrument 0."""
        self.drain()
        out = _columns(self.drained.equity, ("ts", "position"), 2)
        vals = self.drained.equity_value
        out["equity"] = np.concatenate(vals) if vals else np.zeros(0, np.float64)
        return out

    def counters(self) -> dict[str, int]:
        """Run statistics by name."""
        return {name: int(self.state.ctl[i]) for i, name in COUNTER_NAMES.items()}

    def journal_hash(self) -> str:
        """SHA-256 over the journal, the fills and the final positions: the determinism check."""
        h = hashlib.sha256()
        for table in (self.journal(), self.fills()):
            for name in sorted(table):
                h.update(name.encode())
                h.update(np.ascontiguousarray(table[name]).tobytes())
        h.update(self.state.pi.tobytes())
        h.update(self.state.pf.tobytes())
        return h.hexdigest()

    # ----------------------------------------------------------- checkpointing

    def checkpoint(self, path: str | Path) -> None:
        """Save everything needed to continue this run byte-identically."""
        self.drain()
        arrays = {}

        def walk(prefix: str, obj) -> None:
            if isinstance(obj, np.ndarray):
                arrays[prefix] = obj
            else:
                for name in obj._fields:
                    walk(f"{prefix}.{name}" if prefix else name, getattr(obj, name))

        walk("", self.state)
        payload = {
            "arrays": arrays,
            "rows": self.rows,
            "drained": self.drained,
            "commands": self.commands,
            "faults": self.faults,
            "started": self.started,
            "strategy": f"{self.strategy_cls.__module__}.{self.strategy_cls.__qualname__}",
            "events": len(self.events),
        }
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, path: str | Path) -> None:
        """Load a checkpoint taken from an engine over the same data and strategy."""
        try:
            with open(path, "rb") as f:
                payload = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError) as exc:
            raise EngineError(f"{path}: unreadable checkpoint: {exc}") from None
        want = f"{self.strategy_cls.__module__}.{self.strategy_cls.__qualname__}"
        if payload["strategy"] != want or payload["events"] != len(self.events):
            raise EngineError(
                f"{path}: checkpoint of {payload['strategy']} over {payload['events']} events "
                f"does not match this run ({want} over {len(self.events)})"
            )

        def walk(prefix: str, obj) -> None:
            if isinstance(obj, np.ndarray):
                saved = payload["arrays"][prefix]
                if saved.shape != obj.shape or saved.dtype != obj.dtype:
                    raise EngineError(f"{path}: array {prefix} has another shape or type")
                obj[...] = saved
            else:
                for name in obj._fields:
                    walk(f"{prefix}.{name}" if prefix else name, getattr(obj, name))

        rule_addr = int(self.state.ctl[CI_RULE_ADDR])
        walk("", self.state)
        # An address is only valid in the process that compiled the rule: keep ours.
        self.state.ctl[CI_RULE_ADDR] = rule_addr
        self.rows[...] = payload["rows"]
        self.drained = payload["drained"]
        self.commands = payload["commands"]
        self.faults = payload["faults"]
        self.started = payload["started"]

    def stop_name(self, reason: int) -> str:
        """Name of a STOP_* code."""
        return STOP_NAMES.get(reason, str(reason))
