"""The engine in live mode: the same loop, state, strategies and risk, fed from the network.

Only three things change from a backtest (DESIGN.md, "Live trading"):

- **Events** come from an adapter, stamped with the local clock when they arrived, and are
  appended with `push_events`; the loop runs over them as over a recorded file.
- **The clock** is the wall clock: `step(now_ns)` processes every event and every scheduled
  event (timers) due by `now_ns`, then stops.
- **The venue** is real: orders, cancels and amends do not go to the simulated venue but into
  a bounded outbox (`st.out`) that `take_outbox` empties after each step; the venue's answers
  come back through `report`, `fill` and `amended`, which schedule them at their arrival time,
  so the loop applies them in time order and tells strategies exactly as in a backtest.

Orders are refused while their instrument's book is not in sync (`set_in_sync`), and below a
venue's minimum notional (`set_min_notional`), before anything is sent.

Nothing here opens a socket: adapters/live/ does the network and calls these methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import typeof

from engine.codes import BREAK_TIME, EV_FILL_REPORT, EV_REPORT, SIDE_BUY_CODE, ST_ACCEPTED
from engine.config import EngineConfig
from engine.data.stream import EventStream
from engine.errors import UsageError
from engine.events import EVENT_DTYPE
from engine.instruments import InstrumentRegistry
from engine.jit import entry
from engine.loop import run_chunk
from engine.oms import slot_of
from engine.runner import NO_LATENCY, Engine, EngineError
from engine.scheduler import schedule
from engine.state import (
    CK_CURSOR,
    IF_MIN_NOTIONAL,
    MK_IN_SYNC,
    N_OUT,
    O_INFLIGHT,
    O_INST,
    O_PRICE,
    O_QTY,
    O_SIDE,
    O_STRAT,
    OUT_AMEND,
    OUT_CANCEL,
    OUT_COLUMNS,
    OUT_NEW,
    PF_COST,
    PI_OPEN_BUY,
    PI_OPEN_SELL,
    PI_POS,
)
from engine.venue import AMEND_ACK_STATE, AMEND_REJECT_STATE, CANCEL_REJECT_STATE, fill_row

OUT_KIND_NAMES = {OUT_NEW: "new", OUT_CANCEL: "cancel", OUT_AMEND: "amend"}

REPORT_CANCEL_REJECTED = CANCEL_REJECT_STATE
REPORT_AMENDED = AMEND_ACK_STATE
REPORT_AMEND_REJECTED = AMEND_REJECT_STATE


@dataclass(frozen=True)
class Outbound:
    """One request the engine wants sent to the venue (a row of the outbox)."""

    kind: int
    oid: int
    cid: int
    inst: int
    strat: int
    side: int
    price: int
    qty: int
    otype: int
    tif: int
    flags: int
    ts: int

    @property
    def kind_name(self) -> str:
        """new, cancel or amend."""
        return OUT_KIND_NAMES.get(self.kind, str(self.kind))


@entry
def _push_report(st, ts: int, oid: int, state: int, reason: int) -> bool:
    slot = slot_of(st, oid)
    if slot < 0:
        return False
    st.o[slot, O_INFLIGHT] += 1
    return schedule(st, ts, EV_REPORT, oid, state, reason, 0)


@entry
def _push_fill(st, ts: int, oid: int, qty: int, price: int, liq: int) -> bool:
    slot = slot_of(st, oid)
    if slot < 0:
        return False
    fill_row(st, slot, ts, price, qty, liq)  # the fills table, as the simulated venue does
    st.o[slot, O_INFLIGHT] += 1
    return schedule(st, ts, EV_FILL_REPORT, oid, qty, price, liq)


@entry
def _apply_amend(st, ts: int, oid: int, price: int, qty: int, reason: int) -> bool:
    """The venue changed an order's terms: so do the order and its open quantity."""
    slot = slot_of(st, oid)
    if slot < 0:
        return False
    o = st.o[slot]
    row = o[O_STRAT] if o[O_STRAT] >= 0 else st.pi.shape[0] - 1
    col = PI_OPEN_BUY if o[O_SIDE] == SIDE_BUY_CODE else PI_OPEN_SELL
    st.pi[row, o[O_INST], col] += qty - o[O_QTY]
    o[O_PRICE] = price
    o[O_QTY] = qty
    o[O_INFLIGHT] += 1
    return schedule(st, ts, EV_REPORT, oid, AMEND_ACK_STATE, reason, 0)


class LiveEngine(Engine):
    """An Engine whose events are pushed as they arrive and whose venue is an adapter."""

    def __init__(
        self,
        instruments: InstrumentRegistry,
        strategy_cls: type | None = None,
        instances: list[dict[str, Any]] | None = None,
        config: EngineConfig | None = None,
        capacity: int = 1 << 20,
    ) -> None:
        cfg = config or EngineConfig()
        if not cfg.live:
            from dataclasses import replace

            cfg = replace(cfg, live=True)
        self._buf = np.zeros(int(capacity), dtype=EVENT_DTYPE)
        self._filled = 0
        self._outbox: list[Outbound] = []
        self._chunk_entry: Any = None
        super().__init__(EventStream(self._buf[:0], instruments), strategy_cls, instances, cfg)
        self.events = self._buf[:0]

    # ------------------------------------------------------------------ inputs

    def push_events(self, rows: np.ndarray) -> None:
        """Append market data rows (EVENT_DTYPE, stamped on arrival, in time order)."""
        if rows.dtype != EVENT_DTYPE:
            raise UsageError("push_events: rows must have EVENT_DTYPE")
        k = len(rows)
        if k == 0:
            return
        last = self._buf[self._filled - 1]["ts_local"] if self._filled else None
        if last is not None and int(rows[0]["ts_local"]) < int(last):
            raise UsageError(
                f"push_events: local time {int(rows[0]['ts_local'])} goes back before {int(last)}"
            )
        if self._filled + k > len(self._buf):
            self._compact()
            if self._filled + k > len(self._buf):
                raise EngineError(
                    f"live event buffer full ({len(self._buf)} rows not yet processed): "
                    "step the engine more often or raise its capacity"
                )
        self._buf[self._filled : self._filled + k] = rows
        self._filled += k

    def _compact(self) -> None:
        """Drop processed rows: move the unprocessed tail to the front."""
        cur = int(self.state.ctl[CK_CURSOR])
        tail = self._filled - cur
        self._buf[:tail] = self._buf[cur : self._filled]
        self._buf[tail : self._filled] = 0
        self._filled = tail
        self.state.ctl[CK_CURSOR] = 0

    def report(self, oid: int, state: int, reason: int, ts: int) -> bool:
        """A venue answer (ST_ACCEPTED, ST_CANCELED, ST_REJECTED, ST_EXPIRED, or one of
        REPORT_CANCEL_REJECTED / REPORT_AMEND_REJECTED) arriving at local time `ts`."""
        return bool(_push_report(self.state, ts, oid, state, reason))

    def fill(self, oid: int, qty: int, price: int, liq: int, ts: int) -> bool:
        """A venue fill (lots, ticks, LIQ_MAKER/LIQ_TAKER) arriving at local time `ts`."""
        return bool(_push_fill(self.state, ts, oid, qty, price, liq))

    def amended(self, oid: int, price: int, qty: int, reason: int, ts: int) -> bool:
        """The venue accepted new terms for an order (arriving at local time `ts`)."""
        return bool(_apply_amend(self.state, ts, oid, price, qty, reason))

    def acknowledge(self, oid: int, reason: int, ts: int) -> bool:
        """Shorthand: the venue accepted a new order."""
        return self.report(oid, ST_ACCEPTED, reason, ts)

    def set_in_sync(self, inst: int, in_sync: bool) -> None:
        """Whether an instrument's book is in sync (orders on it are refused while not)."""
        self.state.mk[inst, MK_IN_SYNC] = 1 if in_sync else 0

    def set_min_notional(self, inst: int, value: float) -> None:
        """The venue's minimum order notional for an instrument, quote currency."""
        self.state.instf[inst, IF_MIN_NOTIONAL] = float(value)

    def set_position(
        self, inst: int, lots: int, avg_price_ticks: float, instance: int = -1
    ) -> None:
        """Start from a position held before this engine started (a restart: what the order
        journal's fills add up to), booked at its average price, in the manual row unless
        an instance is named: flatten closes it, strategies do not trade it. Call it before
        the first step."""
        st = self.state
        row = instance if instance >= 0 else st.pi.shape[0] - 1
        if not 0 <= row < st.pi.shape[0] or not 0 <= inst < st.pi.shape[1]:
            raise UsageError(f"set_position: no instrument {inst} / instance {instance}")
        st.pi[row, inst, PI_POS] = int(lots)
        st.pf[row, inst, PF_COST] = float(avg_price_ticks) * int(lots)

    # ------------------------------------------------------------------- stepping

    def _run_chunk(self, *args: Any) -> int:
        """run_chunk through its compiled entry point once the dispatcher has chosen it.

        The dispatcher types every argument on every call, and the strategy's hooks (first-
        class functions) are typed in Python: about 35 us a call, most of a live step. Here
        the arguments keep their types from step to step (the same state, hooks and event
        buffer), so after the first call the entry point the dispatcher picked is called
        directly (about 7 us). A latency view (not used live) goes through the dispatcher.
        """
        entry_point = self._chunk_entry
        if entry_point and args[-1] is NO_LATENCY:
            return entry_point(*args)
        reason = run_chunk(*args)
        if entry_point is None and args[-1] is NO_LATENCY:
            compiled = run_chunk.overloads.get(tuple(typeof(a) for a in args))
            # False: the dispatcher keyed it otherwise; keep using the dispatcher.
            self._chunk_entry = compiled.entry_point if compiled is not None else False
        return reason

    def step_until(self, now_ns: int) -> int:
        """Process everything due by local time `now_ns` (pushed events, answers, timers)."""
        self.events = self._buf[: self._filled]
        return self.run(break_mask=BREAK_TIME, stop_ts=int(now_ns))

    def drain(self) -> None:
        """Drain the buffers, the outbox too (into the list `take_outbox` returns)."""
        super().drain()
        st = self.state
        k = int(st.ctl[N_OUT])
        if k:
            rows = st.out[:k].copy()
            st.out[:k] = 0
            st.ctl[N_OUT] = 0
            self._outbox.extend(Outbound(*(int(x) for x in r[: len(OUT_COLUMNS)])) for r in rows)

    def take_outbox(self) -> list[Outbound]:
        """The requests the steps so far want sent, in order; the outbox is emptied."""
        self.drain()
        out, self._outbox = self._outbox, []
        return out
