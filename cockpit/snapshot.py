"""What the engine thread publishes for the UI: the immutable `Snapshot` and its parts.

A snapshot is taken between two chunks (or, live, between two engine steps) and never
changed afterwards: its arrays are copies marked read-only (`frozen`), so the UI thread
reads them without a lock. `Snapshot.orders` is an int64 table whose columns are the
`OV_*` constants below. Built by `snapshot_views.SnapshotViews` and `bridge.EngineBridge`;
every name here is also importable from `cockpit.bridge`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from engine.book import NO_PRICE
from engine.instruments import Instrument

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

Mode = Literal["paused", "playing", "seeking", "ended", "failed", "live"]
""""live": the engine follows a venue (cockpit/live_bridge.py), there is no replay to steer."""
Severity = Literal["information", "warning", "error"]


def frozen(a: np.ndarray) -> np.ndarray:
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
