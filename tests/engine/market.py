"""Tiny hand-made markets for trading-core tests: every row placed at a chosen time.

Instruments have tick 0.01 and lot 1, so a price of 10_000 ticks is 100.00 and money is
ticks * lots / 100 (a fill of 10 lots at 10_000 has a notional of 1_000.00). Times are ns;
`ts_exch` equals `ts_local` unless a feed latency is given.

    m = Market()
    m.snapshot(1_000, bids=[(9_990, 10)], asks=[(10_010, 5), (10_020, 7)])
    m.trade(5_000_000, 10_010, 3, aggressor=BUY)
    eng = Engine(m.stream())
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from engine.data.stream import EventStream
from engine.events import (
    EVENT_DTYPE,
    FLAG_LAST,
    FLAG_SNAPSHOT,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    KIND_QUOTE,
    KIND_TRADE,
    SIDE_BUY,
    SIDE_NONE,
    SIDE_SELL,
)
from engine.instruments import Instrument, InstrumentRegistry

BUY = SIDE_BUY
SELL = SIDE_SELL
NONE = SIDE_NONE
FAR = 10**9
"""A price no test level uses (idle rows remove this absent level)."""
MS = 1_000_000
"""One millisecond in ns (the default engine latencies are 1 ms)."""


class Market:
    """A builder of EventStreams row by row; rows must be added in time order."""

    def __init__(self, n_instruments: int = 1, tick: str = "0.01", lot: str = "1") -> None:
        self.rows: list[tuple] = []
        self.instruments = InstrumentRegistry(
            [Instrument(f"T{i}", "test", Decimal(tick), Decimal(lot)) for i in range(n_instruments)]
        )

    def _row(self, ts, kind, side, price, size, flags, inst, latency=0) -> Market:
        if self.rows and ts < self.rows[-1][1]:
            raise ValueError(f"row at {ts} goes back in time")
        self.rows.append((ts - latency, ts, int(price), int(size), inst, kind, side, flags))
        return self

    def snapshot(self, ts: int, bids=(), asks=(), inst: int = 0) -> Market:
        """A clear and a full snapshot (bids and asks as (price, lots), any order)."""
        self._row(ts, KIND_BOOK_CLEAR, NONE, 0, 0, FLAG_SNAPSHOT, inst)
        levels = [(BUY, p, q) for p, q in bids] + [(SELL, p, q) for p, q in asks]
        for k, (side, p, q) in enumerate(levels):
            last = FLAG_LAST if k == len(levels) - 1 else 0
            self._row(ts, KIND_BOOK_SNAPSHOT, side, p, q, FLAG_SNAPSHOT | last, inst)
        return self

    def delta(self, ts: int, side: int, price: int, size: int, inst: int = 0, last=True):
        """Set one level to an absolute size (0 removes it)."""
        return self._row(ts, KIND_BOOK_DELTA, side, price, size, FLAG_LAST if last else 0, inst)

    def trade(self, ts: int, price: int, size: int, aggressor: int = NONE, inst: int = 0):
        """A printed trade; `aggressor` is the taker's side (NONE if unknown)."""
        return self._row(ts, KIND_TRADE, aggressor, price, size, FLAG_LAST, inst)

    def quote(self, ts: int, bid: tuple, ask: tuple, inst: int = 0) -> Market:
        """Top of book as a quote: bid=(price, lots), ask=(price, lots)."""
        self._row(ts, KIND_QUOTE, BUY, bid[0], bid[1], 0, inst)
        return self._row(ts, KIND_QUOTE, SELL, ask[0], ask[1], FLAG_LAST, inst)

    def tick(self, ts: int, inst: int = 0) -> Market:
        """A row that changes nothing (removes an absent far-away ask) and moves time on."""
        return self._row(ts, KIND_BOOK_DELTA, SELL, FAR, 0, FLAG_LAST, inst)

    def events(self) -> np.ndarray:
        """The rows as an EVENT_DTYPE array."""
        return np.array(self.rows, dtype=EVENT_DTYPE)

    def stream(self) -> EventStream:
        """The rows with their instruments."""
        return EventStream(self.events(), self.instruments)


def book_market(n_ticks: int = 6, step: int = 10 * MS) -> Market:
    """Bid 9_990 x 10 / 9_980 x 20, ask 10_010 x 5 / 10_020 x 7 / 10_030 x 9 at t=1 ms,
    then `n_ticks` idle rows every `step` ns so scheduled events have time to happen."""
    m = Market()
    m.snapshot(MS, bids=[(9_990, 10), (9_980, 20)], asks=[(10_010, 5), (10_020, 7), (10_030, 9)])
    for k in range(1, n_ticks + 1):
        m.tick(MS + k * step)
    return m


def run_to(eng, ts: int) -> int:
    """Run an Engine through every event at or before `ts`; its clock then reads `ts`."""
    from engine.codes import BREAK_TIME

    return eng.run(break_mask=BREAK_TIME, stop_ts=ts)


def rows_of(table: dict) -> list[tuple]:
    """A column table (Engine.journal(), fills(), alerts()) as a list of row tuples."""
    names = list(table)
    return [tuple(table[n][i].item() for n in names) for i in range(len(table[names[0]]))]


def journal_of(eng, oid: int) -> list[tuple]:
    """Journal rows of one order as (ts, from_state, to_state, reason, price, qty)."""
    j = eng.journal()
    keep = j["oid"] == oid
    cols = ("ts", "from_state", "to_state", "reason", "price", "qty")
    return [tuple(int(x) for x in r) for r in zip(*(j[c][keep] for c in cols), strict=True)]


def fills_of(eng, oid: int | None = None) -> list[tuple]:
    """Fills (of one order, or all) as (ts, side, liq, price, qty)."""
    f = eng.fills()
    keep = np.ones(len(f["oid"]), bool) if oid is None else f["oid"] == oid
    cols = ("ts", "side", "liq", "price", "qty")
    return [tuple(int(x) for x in r) for r in zip(*(f[c][keep] for c in cols), strict=True)]


def status(eng, oid: int) -> int:
    """OMS state of a live order, -1 once its slot was freed."""
    from engine.strategy_api import status as _status

    return int(_status(eng.state, oid))
