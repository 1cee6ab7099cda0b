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

Chunks are sized by the replay speed: at x N of event time the thread advances the engine
clock by N times the wall time since the last chunk (`BREAK_TIME`), at most `TICK_SECONDS`
apart; "as fast as possible" (speed None) runs chunks sized to take about `MAX_CHUNK_SECONDS`.

For tests the bridge also runs synchronously (`threaded=False`): every request is handled
in the caller's thread and a snapshot published before the call returns, so Pilot tests see
deterministic engine states (Pilot waits for the event loop to idle, not for other threads).

An exception in the engine thread is captured into `Snapshot.failure`; the engine stops
running (its state may be half-updated) and the app stays usable.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

import numpy as np

from engine.book import NO_PRICE, top_levels
from engine.codes import (
    BREAK_ALERT,
    BREAK_FILL,
    BREAK_TIME,
    BREAK_TRADE,
    OT_LIMIT,
    R_NONE,
    REASON_NAMES,
    STOP_CHUNK_DONE,
    STOP_END_OF_DATA,
    STOP_NAMES,
    TERMINAL_STATES,
)
from engine.commands import (
    CMD_MANUAL_LIMIT,
    CMD_MANUAL_MARKET,
    COMMAND_NAMES,
    Command,
)
from engine.errors import CockpitError, UsageError
from engine.events import KIND_TRADE, SIDE_BUY, SIDE_SELL
from engine.instruments import Instrument
from engine.portfolio import equity as row_equity
from engine.portfolio import unrealized
from engine.runner import Engine
from engine.state import (
    CK_TRADING_STATE,
    F_OID,
    F_QTY,
    F_SIDE,
    J_OID,
    J_PRICE,
    J_QTY,
    J_REASON,
    J_TO,
    J_TS,
    MK_LAST_PX,
    N_PEAK_LIVE,
    O_CID,
    O_FILLED,
    O_FLAGS,
    O_GEN,
    O_INST,
    O_OID,
    O_OTYPE,
    O_PRICE,
    O_QAHEAD,
    O_QTY,
    O_SIDE,
    O_STATUS,
    O_STRAT,
    O_TS_LAST,
    O_VSTATE,
    PF_COST,
    PF_FEES,
    PF_REALIZED,
    PI_OPEN_BUY,
    PI_OPEN_SELL,
    PI_POS,
    PI_VOLUME,
    RF_MAX_DD,
    RI_ENABLED,
    RI_STATE,
    SLOT_BITS,
    SLOT_MASK,
)
from engine.venue import V_RESTING

# ---- pacing ------------------------------------------------------------------------------
SPEEDS: Final[tuple[float, ...]] = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
)
"""Replay speeds (multiples of event time) that faster/slower step through."""
TICK_SECONDS: Final = 1 / 30
"""Wall time between chunks at a finite speed: the engine clock moves 30 times a second."""
MAX_CHUNK_SECONDS: Final = 0.02
"""Target wall time of one chunk as fast as possible: requests wait at most about this."""
PUBLISH_SECONDS: Final = 0.03
"""Least wall time between two snapshots of a running replay (the UI polls at 30 Hz);
after a request the snapshot goes out at once."""
MAX_WALL_STEP: Final = 0.25
"""Largest wall-time step credited to the replay clock (a stalled thread does not burst)."""
PACED_CHUNK_EVENTS: Final = 2_000_000
"""Most events per chunk at a finite speed; reaching it means the replay cannot keep up."""
GAP_SKIP_SECONDS: Final = 5.0
"""A quiet gap in the data longer than this in wall time at the current speed is skipped."""
IDLE_WAIT: Final = 0.2
"""How long the thread sleeps when there is nothing to do (a request wakes it earlier)."""
EPS_WINDOW: Final = 0.5
"""Wall seconds over which events per second are measured."""

# ---- snapshot sizes ------------------------------------------------------------------------
BOOK_DEPTH: Final = 1024
"""Levels per side copied into a snapshot (covers a tall ladder with tick grouping)."""
TAPE_WINDOW: Final = 50_000
"""Events before the cursor searched for recent trades."""
TAPE_KEEP: Final = 512
"""Recent trades in a snapshot (the tape and the price series)."""
ENDED_KEEP: Final = 200
"""Finished orders kept in the orders view, most recent first."""
LIVE_KEEP: Final = 2000
"""Working orders in the orders view at most (the ladder gets all of them)."""
ALERTS_KEEP: Final = 500
EQUITY_KEEP: Final = 1024
MESSAGES_KEEP: Final = 50

# ---- columns of OrdersView.rows (int64) ---------------------------------------------------
OV_OID: Final = 0
OV_CID: Final = 1
OV_INST: Final = 2
OV_STRAT: Final = 3  # -1 manual
OV_SIDE: Final = 4  # SIDE_BUY / SIDE_SELL, 0 when the order was never seen working
OV_TYPE: Final = 5
OV_PRICE: Final = 6  # ticks (0 for market orders)
OV_QTY: Final = 7  # lots
OV_FILLED: Final = 8
OV_STATUS: Final = 9  # ST_*
OV_REASON: Final = 10  # R_* of the last transition (R_NONE when unknown)
OV_QAHEAD: Final = 11  # lots ahead at the venue (resting orders)
OV_TS: Final = 12  # time of the last change, ns
OV_FLAGS: Final = 13
OV_VSTATE: Final = 14  # V_* venue view
OV_N: Final = 15

_TERMINAL = np.array(TERMINAL_STATES, dtype=np.int64)

Mode = Literal["paused", "playing", "seeking", "ended", "failed", "live"]
""""live": the engine follows a venue (cockpit/live_bridge.py), there is no replay to steer."""
Severity = Literal["information", "warning", "error"]


# ---- the snapshot ----------------------------------------------------------------------------


def _frozen(a: np.ndarray) -> np.ndarray:
    """Mark a published array read-only: a snapshot is shared between threads."""
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class Failure:
    """An exception raised in the engine thread."""

    title: str
    message: str
    details: str
    """The traceback, for the error screen."""


@dataclass(frozen=True)
class Message:
    """Something the user should be told once (a denied manual order, a refused jump)."""

    seq: int
    severity: Severity
    text: str


@dataclass(frozen=True)
class Status:
    """Where the replay is."""

    mode: Mode
    speed: float | None
    """Multiple of event time, None for as fast as possible."""
    now_ns: int
    first_ts: int
    last_ts: int
    cursor: int
    total_events: int
    events_processed: int
    events_per_s: float
    trading_state: int
    last_stop: str
    progress_wall: float
    """Bridge clock reading when events_processed last changed (staleness is wall time)."""
    seeking: str
    """What a seek is looking for ("fill", "alert", "trade", "time"), "" when none."""


@dataclass(frozen=True)
class BookView:
    """The selected instrument's book, best level first on each side, and our orders in it."""

    inst: int
    bid_px: np.ndarray
    bid_qty: np.ndarray
    ask_px: np.ndarray
    ask_qty: np.ndarray
    own_px: np.ndarray
    own_side: np.ndarray
    own_qty: np.ndarray
    """Lots left to fill of each of our working limit orders."""
    own_qahead: np.ndarray
    own_resting: np.ndarray
    """True once the venue holds the order (False while it travels)."""
    last_trade_px: int

    @property
    def best_bid(self) -> int:
        """Best bid in ticks, NO_PRICE when the side is empty."""
        return int(self.bid_px[0]) if len(self.bid_px) else NO_PRICE

    @property
    def best_ask(self) -> int:
        """Best ask in ticks, NO_PRICE when the side is empty."""
        return int(self.ask_px[0]) if len(self.ask_px) else NO_PRICE


@dataclass(frozen=True)
class Trades:
    """Recent market trades of the selected instrument, oldest first."""

    ts: np.ndarray
    price: np.ndarray
    size: np.ndarray
    side: np.ndarray
    """Aggressor side (SIDE_BUY / SIDE_SELL)."""


@dataclass(frozen=True)
class PositionRow:
    """One strategy row's position in one instrument, as the engine accounts it."""

    row: int
    strat: int
    """Strategy instance, -1 for manual trading."""
    inst: int
    position: int
    avg_price_ticks: float
    """Average open price in ticks (0 when flat)."""
    realized: float
    unrealized: float
    fees: float
    open_buy: int
    open_sell: int
    volume: int


@dataclass(frozen=True)
class Portfolio:
    """Positions and PnL from the engine's portfolio tables (quote currency)."""

    rows: tuple[PositionRow, ...]
    equity: tuple[float, ...]
    """Equity (realised + unrealised - fees) of each strategy row, manual last."""
    max_drawdown: tuple[float, ...]
    row_state: tuple[int, ...]
    """TS_* of each row (a drawdown trips one row)."""
    enabled: tuple[bool, ...]

    @property
    def total_equity(self) -> float:
        """Equity over every row."""
        return float(sum(self.equity))


@dataclass(frozen=True)
class Snapshot:
    """What the UI draws: copies taken between two chunks, never changed afterwards."""

    seq: int
    status: Status
    instruments: tuple[Instrument, ...]
    strategy: str
    book: BookView
    trades: Trades
    orders: np.ndarray
    """int64 [k, OV_N]: working orders, then finished ones (most recent first)."""
    portfolio: Portfolio
    alerts: np.ndarray
    """int64 [k, AL_N] most recent alerts, oldest first."""
    alerts_total: int
    equity_ts: np.ndarray
    equity: np.ndarray
    messages: tuple[Message, ...]
    failure: Failure | None
    counters: dict[str, int]
    venue: Any = None
    """A live session's `SessionStatus` (adapters/live/session_status.py), None in a replay."""

    @property
    def instrument(self) -> Instrument | None:
        """The selected instrument."""
        i = self.book.inst
        return self.instruments[i] if 0 <= i < len(self.instruments) else None


@dataclass(frozen=True)
class Request:
    """One request from the UI to the engine thread."""

    kind: str
    value: Any = None


# ---- the bridge ---------------------------------------------------------------------------


class EngineBridge:
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
        self._speed: float | None = _check_speed(speed)
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
        # Bookkeeping for the views: what was drained so far and the orders we remember.
        self._drained = {"journal": 0, "fills": 0, "alerts": 0, "equity": 0}
        self._prev_live: dict[int, np.ndarray] = {}
        self._ended: OrderedDict[int, np.ndarray] = OrderedDict()
        self._alerts = np.zeros((0, 8), np.int64)
        self._alerts_total = 0
        self._eq_ts = np.zeros(0, np.int64)
        self._eq = np.zeros(0, np.float64)
        self._bid_px = np.zeros(BOOK_DEPTH, np.int64)
        self._bid_qty = np.zeros(BOOK_DEPTH, np.int64)
        self._ask_px = np.zeros(BOOK_DEPTH, np.int64)
        self._ask_qty = np.zeros(BOOK_DEPTH, np.int64)
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
        self._request("speed", _check_speed(speed))

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
            self._speed = _next_speed(self._speed, +1 if kind == "faster" else -1)
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
            self._start_seek(value, np.iinfo(np.int64).max, _mask_name(value))
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

    def _start_seek(self, mask: int, stop_ts: int, what: str) -> None:
        self._mode = "seeking"
        self._seek_mask = mask
        self._seek_ts = stop_ts
        self._seek_what = what

    def _reset_pacing(self) -> None:
        """Restart the paced clock from the engine's time (after play or a speed change)."""
        self._last_wall = self._clock()
        eng = self.engine
        now = eng.now
        if eng.events_processed == 0 and eng.cursor < len(eng.events):
            now = int(eng.events["ts_local"][eng.cursor]) - 1  # the clock starts at zero
        self._replay_ts = now

    def _after_run(self, reason: int) -> None:
        self._last_stop = STOP_NAMES.get(reason, str(reason))
        if reason == STOP_END_OF_DATA:
            self._mode = "ended"
            self._seek_what = ""

    def _play_chunk(self, wall_dt: float | None = None) -> None:
        """One chunk of a running replay."""
        eng = self.engine
        if self._speed is None:
            t0 = self._clock()
            before = eng.events_processed
            reason = eng.run(max_events=self._chunk_events)
            dt = self._clock() - t0
            done = eng.events_processed - before
            if dt > 0 and done > 0:
                # Size the next chunk to take about MAX_CHUNK_SECONDS at the rate just seen.
                rate = done / dt
                self._chunk_events = int(min(max(rate * MAX_CHUNK_SECONDS, 1000), 5_000_000))
            self._after_run(reason)
            return
        now_wall = self._clock()
        if wall_dt is None:
            wall_dt = now_wall - self._last_wall
            # Sleep out the rest of the tick (a request wakes the thread early).
            if wall_dt < TICK_SECONDS:
                self._wake.wait(TICK_SECONDS - wall_dt)
                now_wall = self._clock()
                wall_dt = now_wall - self._last_wall
        self._last_wall = now_wall
        wall_dt = min(max(wall_dt, 0.0), MAX_WALL_STEP)
        target = max(self._replay_ts, eng.now) + int(wall_dt * self._speed * 1e9)
        if eng.cursor < len(eng.events):
            nxt = int(eng.events["ts_local"][eng.cursor])
            if (nxt - target) / 1e9 / self._speed > GAP_SKIP_SECONDS:
                target = nxt  # a quiet gap: skip it rather than show nothing for minutes
        reason = eng.run(max_events=PACED_CHUNK_EVENTS, break_mask=BREAK_TIME, stop_ts=target)
        # Behind (the chunk was full): do not try to catch up in a burst.
        self._replay_ts = target if reason != STOP_CHUNK_DONE else eng.now
        self._after_run(reason)

    def _seek_chunk(self, unbounded: bool = False) -> None:
        """One chunk of a seek (step to next fill/alert/trade, jump to time)."""
        eng = self.engine
        n = np.iinfo(np.int64).max if unbounded else max(self._chunk_events, 100_000)
        t0 = self._clock()
        before = eng.events_processed
        reason = eng.run(max_events=n, break_mask=self._seek_mask, stop_ts=self._seek_ts)
        dt = self._clock() - t0
        done = eng.events_processed - before
        if dt > 0 and done > 0:
            self._chunk_events = int(min(max(done / dt * MAX_CHUNK_SECONDS, 1000), 5_000_000))
        self._after_run(reason)
        if reason != STOP_CHUNK_DONE and self._mode == "seeking":
            self._mode = "ended" if reason == STOP_END_OF_DATA else "paused"
            self._seek_what = ""

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
        orders, live_ov = self._orders_view()
        self._alerts_view()
        self._equity_view()
        self._seq += 1
        return Snapshot(
            seq=self._seq,
            status=self._status(),
            instruments=tuple(eng.stream.instruments),
            strategy=self._strategy,
            book=self._book_view(live_ov),
            trades=self._trades_view(),
            orders=_frozen(orders),
            portfolio=self._portfolio(),
            alerts=_frozen(self._alerts.copy()),
            alerts_total=self._alerts_total,
            equity_ts=_frozen(self._eq_ts.copy()),
            equity=_frozen(self._eq.copy()),
            messages=tuple(self._messages),
            failure=self._failure,
            counters=eng.counters(),
            venue=self._venue(),
        )

    def _venue(self) -> Any:
        """What the snapshot says about a venue (nothing in a replay)."""
        return None

    def _new_chunks(self, name: str, chunks: list[np.ndarray]) -> list[np.ndarray]:
        k = self._drained[name]
        self._drained[name] = len(chunks)
        return chunks[k:]

    def _book_view(self, live_ov: np.ndarray) -> BookView:
        st = self.engine.state
        inst = self._inst
        nb = int(top_levels(st.book, inst, SIDE_BUY, BOOK_DEPTH, self._bid_px, self._bid_qty))
        na = int(top_levels(st.book, inst, SIDE_SELL, BOOK_DEPTH, self._ask_px, self._ask_qty))
        own = live_ov[
            (live_ov[:, OV_INST] == inst)
            & (live_ov[:, OV_TYPE] == OT_LIMIT)
            & ~np.isin(live_ov[:, OV_STATUS], _TERMINAL)
        ]
        return BookView(
            inst=inst,
            bid_px=_frozen(self._bid_px[:nb].copy()),
            bid_qty=_frozen(self._bid_qty[:nb].copy()),
            ask_px=_frozen(self._ask_px[:na].copy()),
            ask_qty=_frozen(self._ask_qty[:na].copy()),
            own_px=_frozen(own[:, OV_PRICE].copy()),
            own_side=_frozen(own[:, OV_SIDE].copy()),
            own_qty=_frozen(own[:, OV_QTY] - own[:, OV_FILLED]),
            own_qahead=_frozen(own[:, OV_QAHEAD].copy()),
            own_resting=_frozen(own[:, OV_VSTATE] == V_RESTING),
            last_trade_px=int(st.mk[inst, MK_LAST_PX]),
        )

    def _trades_view(self) -> Trades:
        eng = self.engine
        cur = eng.cursor
        win = eng.events[max(0, cur - TAPE_WINDOW) : cur]
        sel = win[(win["kind"] == KIND_TRADE) & (win["instrument"] == self._inst)][-TAPE_KEEP:]
        return Trades(
            ts=_frozen(sel["ts_local"].copy()),
            price=_frozen(sel["price"].copy()),
            size=_frozen(sel["size"].copy()),
            side=_frozen(sel["side"].astype(np.int64)),
        )

    def _orders_view(self) -> tuple[np.ndarray, np.ndarray]:
        """Working orders from the order table, finished ones from the journal."""
        st = self.engine.state
        d = self.engine.drained
        peak = int(st.ctl[N_PEAK_LIVE])  # LIFO slot reuse: slots in use are all below peak
        slots = st.o[:peak]
        live = slots[slots[:, O_OID] >= 0]
        live_ov = _ov_rows(live)
        live_ov[:, OV_REASON] = R_NONE
        live_ids = set(live_ov[:, OV_OID].tolist())

        new_j = self._new_chunks("journal", d.journal)
        new_f = self._new_chunks("fills", d.fills)
        fills = np.concatenate(new_f) if new_f else np.zeros((0, 9), np.int64)
        fill_qty: dict[int, int] = {}
        fill_side: dict[int, int] = {}
        if len(fills):
            ids, inv = np.unique(fills[:, F_OID], return_inverse=True)
            sums = np.bincount(inv, weights=fills[:, F_QTY]).astype(np.int64)
            sides = np.zeros(len(ids), np.int64)
            sides[inv] = fills[:, F_SIDE]
            fill_qty = dict(zip(ids.tolist(), sums.tolist(), strict=True))
            fill_side = dict(zip(ids.tolist(), sides.tolist(), strict=True))
        jr = np.concatenate(new_j) if new_j else np.zeros((0, 10), np.int64)
        # Last journal row of each order in this batch (most recent orders only).
        last_rows: dict[int, np.ndarray] = {}
        if len(jr):
            rev = jr[::-1, J_OID]
            ids, idx = np.unique(rev, return_index=True)
            pos = len(jr) - 1 - idx
            keep = np.argsort(pos)[-(ENDED_KEEP + len(live_ids)) :]
            for oid, p in zip(ids[keep].tolist(), pos[keep].tolist(), strict=True):
                last_rows[oid] = jr[p]
        # Orders that stopped working since the last snapshot.
        gone = [o for o in self._prev_live if o not in live_ids]
        for oid in gone + [o for o in last_rows if o not in live_ids]:
            slot, gen = oid & SLOT_MASK, oid >> SLOT_BITS
            if 0 <= slot < len(st.o) and st.o[slot, O_GEN] == gen:
                # A freed slot keeps its last order's row until it is reused: exact figures.
                row = _ov_rows(st.o[slot : slot + 1])[0]
                row[OV_OID] = oid
                prev = self._prev_live.get(oid)
                row[OV_REASON] = prev[OV_REASON] if prev is not None else R_NONE
            else:
                base = self._prev_live.get(oid)
                if base is None:
                    base = self._ended.get(oid)
                if base is None:
                    jrow = last_rows.get(oid)
                    if jrow is None:
                        continue
                    base = np.zeros(OV_N, np.int64)
                    base[OV_OID] = oid
                    base[OV_CID] = jrow[2]
                    base[OV_INST] = jrow[3]
                    base[OV_STRAT] = jrow[4]
                    base[OV_PRICE] = jrow[J_PRICE]
                    base[OV_QTY] = jrow[J_QTY]
                    base[OV_SIDE] = fill_side.get(oid, 0)
                row = base.copy()
                row[OV_FILLED] += fill_qty.get(oid, 0)
            jrow = last_rows.get(oid)
            if jrow is not None:
                row[OV_STATUS] = jrow[J_TO]
                row[OV_REASON] = jrow[J_REASON]
                row[OV_TS] = jrow[J_TS]
            row[OV_QAHEAD] = 0
            self._ended[oid] = row
            self._ended.move_to_end(oid)
        while len(self._ended) > ENDED_KEEP:
            self._ended.popitem(last=False)
        # Reasons of the working orders' latest transitions.
        for i, oid in enumerate(live_ov[:, OV_OID].tolist()):
            jrow = last_rows.get(oid)
            if jrow is not None:
                live_ov[i, OV_REASON] = jrow[J_REASON]
            else:
                prev = self._prev_live.get(oid)
                if prev is not None:
                    live_ov[i, OV_REASON] = prev[OV_REASON]
        self._prev_live = {int(r[OV_OID]): r for r in live_ov[:LIVE_KEEP]}
        ended = list(self._ended.values())[::-1]
        rows = np.vstack([live_ov[:LIVE_KEEP], *ended]) if ended else live_ov[:LIVE_KEEP].copy()
        return rows.reshape(-1, OV_N), live_ov

    def _alerts_view(self) -> None:
        new = self._new_chunks("alerts", self.engine.drained.alerts)
        if new:
            rows = np.concatenate(new)
            self._alerts_total += len(rows)
            self._alerts = np.concatenate([self._alerts, rows])[-ALERTS_KEEP:]

    def _equity_view(self) -> None:
        d = self.engine.drained
        k = self._drained["equity"]
        new_ts, new_v = d.equity[k:], d.equity_value[k:]
        self._drained["equity"] = len(d.equity)
        if new_ts:
            ts = np.concatenate([self._eq_ts, *(c[:, 0] for c in new_ts)])
            self._eq_ts = ts[-EQUITY_KEEP:]
            self._eq = np.concatenate([self._eq, *new_v])[-EQUITY_KEEP:]

    def _portfolio(self) -> Portfolio:
        st = self.engine.state
        n_rows, n_inst = st.pi.shape[0], st.pi.shape[1]
        rows = []
        for r in range(n_rows):
            strat = r if r < n_rows - 1 else -1
            for i in range(n_inst):
                pi, pf = st.pi[r, i], st.pf[r, i]
                if not (pi[PI_VOLUME] or pi[PI_POS] or pi[PI_OPEN_BUY] or pi[PI_OPEN_SELL]):
                    continue
                pos = int(pi[PI_POS])
                rows.append(
                    PositionRow(
                        row=r,
                        strat=strat,
                        inst=i,
                        position=pos,
                        avg_price_ticks=float(pf[PF_COST]) / pos if pos else 0.0,
                        realized=float(pf[PF_REALIZED]),
                        unrealized=float(unrealized(st, r, i)),
                        fees=float(pf[PF_FEES]),
                        open_buy=int(pi[PI_OPEN_BUY]),
                        open_sell=int(pi[PI_OPEN_SELL]),
                        volume=int(pi[PI_VOLUME]),
                    )
                )
        return Portfolio(
            rows=tuple(rows),
            equity=tuple(float(row_equity(st, r)) for r in range(n_rows)),
            max_drawdown=tuple(float(x) for x in st.rf[:, RF_MAX_DD]),
            row_state=tuple(int(x) for x in st.ri[:, RI_STATE]),
            enabled=tuple(bool(x) for x in st.ri[:, RI_ENABLED]),
        )


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


_OV_FROM_O: Final = (
    (OV_OID, O_OID),
    (OV_CID, O_CID),
    (OV_INST, O_INST),
    (OV_STRAT, O_STRAT),
    (OV_SIDE, O_SIDE),
    (OV_TYPE, O_OTYPE),
    (OV_PRICE, O_PRICE),
    (OV_QTY, O_QTY),
    (OV_FILLED, O_FILLED),
    (OV_STATUS, O_STATUS),
    (OV_QAHEAD, O_QAHEAD),
    (OV_TS, O_TS_LAST),
    (OV_FLAGS, O_FLAGS),
    (OV_VSTATE, O_VSTATE),
)


def _ov_rows(o_rows: np.ndarray) -> np.ndarray:
    """Orders-view rows from rows of the engine's order table."""
    out = np.zeros((len(o_rows), OV_N), np.int64)
    for dst, src in _OV_FROM_O:
        out[:, dst] = o_rows[:, src]
    return out


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


def _check_speed(speed: float | None) -> float | None:
    if speed is None:
        return None
    speed = float(speed)
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    return speed


def _next_speed(speed: float | None, direction: int) -> float | None:
    """The neighbouring speed on the SPEEDS ladder; None (as fast as possible) is the top."""
    if speed is None:
        return None if direction > 0 else SPEEDS[-1]
    if direction > 0:
        higher = [s for s in SPEEDS if s > speed * 1.0001]
        return higher[0] if higher else None
    lower = [s for s in SPEEDS if s < speed * 0.9999]
    return lower[-1] if lower else SPEEDS[0]


def _mask_name(mask: int) -> str:
    for bit, name in ((BREAK_FILL, "fill"), (BREAK_ALERT, "alert"), (BREAK_TRADE, "trade")):
        if mask & bit:
            return name
    return "break"


def speed_label(speed: float | None) -> str:
    """x10, x0.25, or MAX."""
    if speed is None:
        return "MAX"
    return f"x{speed:g}"
