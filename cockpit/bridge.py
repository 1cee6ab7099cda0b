"""The engine thread: runs an Engine in chunks, applies queued requests, publishes snapshots.

Contract with the UI (house style rule 5):

- Only the engine thread touches the Engine. The UI calls the request methods (`play`,
  `step`, `send`, ...), which put a small request on a queue and return at once.
- Between chunks the thread applies queued requests (manual commands are stamped and
  journaled by the Engine; strategy parameters loaded with `load_params` are written by
  `set_strategy_params`, not journaled yet), checks the stop flag (thread workers cannot
  be killed), and publishes an immutable `Snapshot` of numpy copies by swapping one
  attribute.
- The UI reads `bridge.snapshot` on a timer (10-30 Hz). No message is posted per event or
  per chunk: `post_message` costs about 100 us and `call_from_thread` blocks the caller.
- The jitted loop runs with `nogil=True`, so a chunk leaves the UI thread the interpreter.

Chunks are sized by the replay speed (`replay_pacing`): at x N of event time the engine
clock moves N times the wall time, "as fast as possible" runs chunks of about 20 ms.

For tests the bridge also runs synchronously (`threaded=False`): every request is handled
in the caller's thread and a snapshot published before the call returns, so Pilot tests see
deterministic engine states (Pilot waits for the event loop to idle, not for other threads).

An exception in the engine thread is captured into `Snapshot.failure`; the engine stops
running (its state may be half-updated) and the app stays usable.

The parts, one concern a module:

- `snapshot`: the immutable `Snapshot` and its parts, the `OV_*` columns of its orders.
- `snapshot_views.SnapshotViews`: the views copied into each snapshot (book, trades,
  orders, alerts, equity, portfolio), kept incrementally.
- `replay_pacing`: the speed ladder and pacing constants, and `ReplayPacing`, the mixin
  that runs one chunk of a playing or seeking replay.
- this module: `EngineBridge` (requests, the thread's loop, failures, publishing) and
  `set_strategy_params`. `Snapshot` and `Request` are importable from here too.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import numpy as np

from cockpit.replay_pacing import (
    EPS_WINDOW,
    IDLE_WAIT,
    PUBLISH_SECONDS,
    ReplayPacing,
    check_speed,
    mask_name,
    next_speed,
)
from cockpit.snapshot import Failure, Message, Mode, Severity, Snapshot, Status
from cockpit.snapshot_views import SnapshotViews
from engine.codes import BREAK_TIME, REASON_NAMES
from engine.commands import CMD_MANUAL_LIMIT, CMD_MANUAL_MARKET, COMMAND_NAMES, Command
from engine.errors import CockpitError, UsageError
from engine.runner import Engine
from engine.state import CK_TRADING_STATE

MESSAGES_KEEP: Final = 50
"""Messages to the user kept in a snapshot."""


@dataclass(frozen=True)
class Request:
    """One request from the UI to the engine thread."""

    kind: str
    value: Any = None


class EngineBridge(ReplayPacing):
    """Owns an Engine: drives it from one thread and publishes snapshots for the UI."""

    live: ClassVar[bool] = False
    """True for a bridge that follows a live session (the replay keys do not apply)."""

    def __init__(
        self,
        engine: Engine,
        *,
        speed: float | None = 1.0,
        instrument: int = 0,
        threaded: bool = True,
        clock: Callable[[], float] = time.monotonic,
        strategy_name: str = "",
    ) -> None:
        self.engine = engine
        self.threaded = threaded
        self._clock = clock
        self.clock = clock
        """The bridge's wall clock (the status bar measures staleness with it)."""
        self._queue: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mode: Mode = "paused"
        self._speed: float | None = check_speed(speed)
        self._inst = instrument
        self._seek_mask = 0
        self._seek_ts = np.iinfo(np.int64).max
        self._seek_what = ""
        self._replay_ts = 0  # engine time the paced replay has reached
        self._last_wall = clock()
        self._chunk_events = 20_000
        self._last_stop = "none"
        self._failure: Failure | None = None
        self._seq = 0
        self._messages: list[Message] = []
        self._msg_seq = 0
        self._faults_seen = 0
        self._published_at = 0.0
        ev = engine.events
        self._first_ts = int(ev["ts_local"][0]) if len(ev) else 0
        self._last_ts = int(ev["ts_local"][-1]) if len(ev) else 0
        self._eps_mark = (clock(), engine.events_processed)
        self._eps = 0.0
        self._progress = (engine.events_processed, clock())
        self._strategy = strategy_name or engine.strategy_cls.__name__
        self._views = SnapshotViews(engine)
        engine.start()
        _warm_up_commands()
        self.snapshot: Snapshot = self._build()
        """The newest snapshot; replaced (never mutated) after each chunk."""

    # ------------------------------------------------------------------ UI-side requests

    def play(self) -> None:
        """Run at the current speed."""
        self._request("play")

    def pause(self) -> None:
        """Stop running (a seek in progress stops too)."""
        self._request("pause")

    def toggle(self) -> None:
        """Play when paused, pause otherwise."""
        self._request("toggle")

    def step(self, n: int = 1) -> None:
        """Pause, then process exactly n events (data or scheduled)."""
        self._request("step", int(n))

    def step_until(self, mask: int) -> None:
        """Pause, then run until a breakpoint (BREAK_FILL, BREAK_ALERT, BREAK_TRADE)."""
        self._request("until", int(mask))

    def jump_to(self, ts_ns: int) -> None:
        """Run until the engine clock reaches ts_ns (forward only), then pause."""
        self._request("jump", int(ts_ns))

    def set_speed(self, speed: float | None) -> None:
        """Replay at speed x event time (None: as fast as possible)."""
        self._request("speed", check_speed(speed))

    def faster(self) -> None:
        """Next speed up (the fastest finite speed goes to as fast as possible)."""
        self._request("faster")

    def slower(self) -> None:
        """Next speed down (as fast as possible goes to the fastest finite speed)."""
        self._request("slower")

    def send(self, command: Command) -> None:
        """Apply a manual command between chunks (stamped and journaled by the engine)."""
        self._request("command", command)

    def select_instrument(self, inst: int) -> None:
        """Show another instrument in the book, tape and chart."""
        self._request("instrument", int(inst))

    def load_params(self, params: dict[str, Any]) -> None:
        """Write strategy parameter values into every instance between two chunks.

        The outcome (the values written, or why nothing was) comes back as a message of the
        next snapshot, like a manual order's.
        """
        self._request("params", dict(params))

    def reconcile_unknown(self) -> None:
        """Ask the venue now about every order whose outcome is unknown (live sessions)."""
        self._request("reconcile")

    def _request(self, kind: str, value: Any = None) -> None:
        req = Request(kind, value)
        if self.threaded:
            # Queued even before the thread starts: only the engine thread touches the engine.
            self._queue.put(req)
            self._wake.set()
            return
        # Synchronous mode (tests): handle it right here.
        self._apply(req)
        if self._mode == "seeking":
            self._guard(self._seek_chunk, unbounded=True)
        self._publish()

    # ---------------------------------------------------------------------- lifecycle

    def start(self) -> threading.Thread:
        """Start the engine thread (use `serve` instead to run it in a Textual worker)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.serve, name="engine", daemon=True)
            self._thread.start()
        return self._thread

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the engine thread to finish after its current chunk, and wait for it."""
        self._stop.set()
        self._wake.set()
        t = self._thread
        if t is not None and t is not threading.current_thread() and t.is_alive():
            t.join(timeout)

    @property
    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._stop.is_set()

    def serve(self) -> None:
        """The engine thread's loop: requests, then a chunk, then a snapshot; until stopped."""
        if self._thread is None:
            self._thread = threading.current_thread()
        self._last_wall = self._clock()
        while not self._stop.is_set():
            busy = self._mode in ("playing", "seeking")
            if not busy:
                self._wake.wait(IDLE_WAIT)
            self._wake.clear()
            changed = False
            while True:
                try:
                    req = self._queue.get_nowait()
                except queue.Empty:
                    break
                self._apply(req)
                changed = True
            if self._stop.is_set():
                break
            if changed:
                self._publish()  # the effect of a key first, then the next chunk
            if self._mode == "playing":
                self._guard(self._play_chunk)
            elif self._mode == "seeking":
                self._guard(self._seek_chunk)
            snap = self.snapshot
            stale = (
                snap.status.mode != self._mode
                or snap.status.events_processed != self.engine.events_processed
            )
            due = self._clock() - self._published_at >= PUBLISH_SECONDS
            # A running replay publishes at most every PUBLISH_SECONDS; a request, a stop
            # or a change of mode at once.
            if stale and (due or self._mode not in ("playing", "seeking")):
                self._publish()

    def pump(self, wall_seconds: float) -> None:
        """Synchronous mode: advance a playing replay as if wall_seconds had passed."""
        if self._mode == "playing":
            self._guard(lambda: self._play_chunk(wall_seconds))
        elif self._mode == "seeking":
            self._guard(self._seek_chunk, unbounded=True)
        self._publish()

    # ------------------------------------------------------------------- engine thread

    def _guard(self, fn: Callable[..., Any], **kw: Any) -> None:
        """Run fn; an exception becomes the snapshot's failure and the engine stops."""
        if self._failure is not None:
            return
        try:
            fn(**kw)
        except Exception as exc:  # anything at all: the app must stay up and say what
            self._fail(exc)

    def _apply(self, req: Request) -> None:
        """Handle a request, or say why not once the engine has failed."""
        if self._failure is not None:
            if req.kind not in ("instrument", "speed", "faster", "slower", "pause"):
                self._say("error", "the engine stopped after an error: restart the cockpit")
            return
        self._guard(lambda: self._handle(req))

    def _fail(self, exc: Exception) -> None:
        """Record an exception from the engine thread; the engine runs no more."""
        title = exc.title if isinstance(exc, CockpitError) else type(exc).__name__
        self._failure = Failure(
            title=f"Engine stopped: {title}",
            message=str(exc) or type(exc).__name__,
            details="".join(traceback.format_exception(exc)),
        )
        self._mode = "failed"

    def _say(self, severity: Severity, text: str) -> None:
        self._msg_seq += 1
        self._messages.append(Message(self._msg_seq, severity, text))
        del self._messages[:-MESSAGES_KEEP]

    def _handle(self, req: Request) -> None:
        """Apply one request (engine thread, between chunks)."""
        kind, value = req.kind, req.value
        eng = self.engine
        if kind == "instrument":
            if 0 <= value < max(1, len(eng.stream.instruments)):
                self._inst = value
            return
        if kind == "speed":
            self._speed = value
            self._reset_pacing()
            return
        if kind in ("faster", "slower"):
            self._speed = next_speed(self._speed, +1 if kind == "faster" else -1)
            self._reset_pacing()
            return
        if kind == "pause":
            if self._mode in ("playing", "seeking"):
                self._mode = "paused"
                self._seek_what = ""
            return
        if kind == "command":
            self._command(value)
            return
        if kind == "params":
            self._load_params(value)
            return
        if kind == "reconcile":
            self._say("warning", "reconcile now: a replay has no venue orders to ask about")
            return
        if eng.at_end and kind in ("play", "toggle", "step", "until", "jump"):
            self._mode = "ended"
            self._say("information", "the replay is at the end of the data")
            return
        if kind == "toggle":
            kind = "pause" if self._mode in ("playing", "seeking") else "play"
            if kind == "pause":
                self._mode = "paused"
                self._seek_what = ""
                return
        if kind == "play":
            self._mode = "playing"
            self._reset_pacing()
        elif kind == "step":
            self._mode = "paused"
            self._seek_what = ""
            self._after_run(eng.step(value))
        elif kind == "until":
            self._start_seek(value, np.iinfo(np.int64).max, mask_name(value))
        elif kind == "jump":
            if value <= eng.now:
                self._say(
                    "warning",
                    "the engine only runs forward: jump to a time after the current one",
                )
                return
            self._start_seek(BREAK_TIME, value, "time")

    def _execute(self, cmd: Command) -> int:
        """Apply a command to the engine (a live bridge also wakes its session to send)."""
        return self.engine.command(cmd)

    def _command(self, cmd: Command) -> None:
        result = self._execute(cmd)
        name = COMMAND_NAMES.get(cmd.kind, str(cmd.kind))
        if cmd.kind in (CMD_MANUAL_LIMIT, CMD_MANUAL_MARKET):
            if result < 0:
                reason = REASON_NAMES.get(-result, str(-result))
                self._say("error", f"manual order denied: {reason}")
            else:
                self._say("information", f"manual order sent (id {result})")
        else:
            self._say("information", f"{name}: {result} request(s) sent")

    def _load_params(self, params: dict[str, Any]) -> None:
        try:
            written = set_strategy_params(self.engine, params)
        except UsageError as exc:  # a bad value is the user's, not an engine failure
            self._say("error", f"parameters not loaded: {exc}")
            return
        n = len(self.engine.rows)
        where = "the strategy" if n == 1 else f"all {n} strategy instances"
        values = ", ".join(f"{k}={_param_text(v)}" for k, v in written.items())
        self._say("information", f"parameters loaded into {where}: {values}")

    # ---------------------------------------------------------------------- snapshots

    def _publish(self) -> None:
        try:
            snap = self._build()
        except Exception as exc:  # a snapshot that cannot be built is an engine failure
            if self._failure is None:
                self._fail(exc)
            snap = self._build_minimal()
        self.snapshot = snap  # one attribute store: readers see the old or the new one
        self._published_at = self._clock()

    def _status(self) -> Status:
        eng = self.engine
        wall = self._clock()
        done = eng.events_processed
        t_mark, e_mark = self._eps_mark
        if self._mode not in ("playing", "seeking", "live"):
            self._eps = 0.0
            self._eps_mark = (wall, done)
        elif wall - t_mark >= EPS_WINDOW:
            self._eps = (done - e_mark) / (wall - t_mark)
            self._eps_mark = (wall, done)
        if done != self._progress[0]:
            self._progress = (done, wall)
        return Status(
            mode=self._mode,
            speed=self._speed,
            now_ns=eng.now,
            first_ts=self._first_ts,
            last_ts=self._last_ts,
            cursor=eng.cursor,
            total_events=len(eng.events),
            events_processed=done,
            events_per_s=self._eps,
            trading_state=int(eng.state.ctl[CK_TRADING_STATE]),
            last_stop=self._last_stop,
            progress_wall=self._progress[1],
            seeking=self._seek_what,
        )

    def _build_minimal(self) -> Snapshot:
        self._seq += 1
        status = dataclasses.replace(self.snapshot.status, mode=self._mode)
        return dataclasses.replace(
            self.snapshot,
            seq=self._seq,
            status=status,
            failure=self._failure,
            messages=tuple(self._messages),
        )

    def _build(self) -> Snapshot:
        eng = self.engine
        eng.drain()
        for j, fault in enumerate(eng.faults[self._faults_seen :], self._faults_seen):
            self._say("error", f"strategy instance {fault.instance} disabled: {fault.message}")
            self._faults_seen = j + 1
        views = self._views
        orders, live_ov = views.orders()
        alerts, alerts_total = views.alerts()
        equity_ts, equity = views.equity()
        self._seq += 1
        return Snapshot(
            seq=self._seq,
            status=self._status(),
            instruments=tuple(eng.stream.instruments),
            strategy=self._strategy,
            book=views.book(self._inst, live_ov),
            trades=views.trades(self._inst),
            orders=orders,
            portfolio=views.portfolio(),
            alerts=alerts,
            alerts_total=alerts_total,
            equity_ts=equity_ts,
            equity=equity,
            messages=tuple(self._messages),
            failure=self._failure,
            counters=eng.counters(),
            venue=self._venue(),
        )

    def _venue(self) -> Any:
        """What the snapshot says about a venue (nothing in a replay)."""
        return None


# ---- helpers -------------------------------------------------------------------------------


def set_strategy_params(engine: Engine, params: dict[str, Any]) -> dict[str, Any]:
    """Write parameter values into every strategy instance of a running engine.

    The one place the cockpit changes a running strategy's parameters; call it only from
    the engine thread, between two chunks. Returns the values written (parsed); raises
    UsageError for an unknown parameter or a bad value, having written nothing.

    The change is not journaled: a recorded session does not replay it. It is to become the
    journaled command method `engine.set_params(params)` of engine/runner.py: swap the call
    below (and keep the UsageError contract).
    """
    from engine.optimizer import apply_params

    return apply_params(engine, params)


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return format(value, ".6g")
    return str(value)


def _warm_up_commands() -> None:
    """Compile the command kernel now, not at the first kill switch.

    Jitted entry points compile (or load from the disk cache) on first call; a cold cache
    costs seconds, which must not happen between pressing the kill switch and the halt. A
    tiny state of the same types stands in, so the real run's state is not touched.
    """
    from engine.commands import apply_command
    from engine.state import new_state

    tiny = new_state(
        1,
        1,
        max_orders=16,
        journal_capacity=16,
        fills_capacity=16,
        heap_capacity=16,
        alerts_capacity=16,
        equity_capacity=16,
        book_capacity=4,
    )
    apply_command(tiny, -1, 0, 0, 0, 0)
