"""Venue decimals to event rows (EVENT_DTYPE): book levels, clears, trades and quotes.

Prices and sizes arrive as decimal text and become integer ticks and lots exactly, through
the instrument (`engine.instruments`); text off the instrument's grid is a DataError, which a
live feed counts as a bad frame (and, for a book diff, the sequence check then sees a gap).
Times are nanoseconds; venues send milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pyarrow as pa

from engine.decimals import decimal_scale
from engine.events import (
    EVENT_DTYPE,
    FLAG_EXCH_TS_MISSING,
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
from engine.instruments import Instrument

INT64_MAX = 2**63 - 1
MS = 1_000_000
"""Nanoseconds in a millisecond."""

Levels = Sequence[Sequence[str]]
"""[[price, size], ...] as the venue sends them."""


SMALL = 64
"""Up to this many values a Python loop converts faster than an Arrow cast (a diff, a
quote, a trade: microseconds on the tick-to-order path); past it, Arrow."""

_grids: dict[Decimal, tuple[int, int]] = {}


def _grid(step: Decimal) -> tuple[int, int]:
    """(decimal places, the step in units of 10**-places) of a tick or lot size."""
    grid = _grids.get(step)
    if grid is None:
        scale = decimal_scale(step)
        grid = _grids[step] = (scale, int(step.scaleb(scale)))
    return grid


def _plain_units(text: str, scale: int) -> int | None:
    """Plain decimal text ("123.4500") as integer units of 10**-scale; None for anything
    else (a sign, an exponent, too many places, a stray character): the caller then takes
    the exact Arrow path, which also words the error."""
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if not whole or len(frac) > scale:
        return None
    digits = whole + frac + _ZEROS[scale - len(frac)]
    return int(digits) if digits.isascii() and digits.isdigit() else None


_ZEROS = ["0" * k for k in range(64)]


def _on_grid(values: Sequence[str], step: Decimal) -> list[int] | None:
    """Small batches: exact units divided by the grid step, or None (take the Arrow path)."""
    if len(values) > SMALL:
        return None
    scale, unit = _grid(step)
    out = []
    for v in values:
        u = _plain_units(v, scale)
        if u is None:
            return None
        q, r = divmod(u, unit)
        if r or q > INT64_MAX:
            return None
        out.append(q)
    return out


def _ticks(inst: Instrument, prices: Sequence[str]) -> Sequence[int] | np.ndarray:
    fast = _on_grid(prices, inst.tick_size)
    if fast is not None:
        return fast
    return inst.prices_to_ticks(pa.array(prices, pa.string()), field="price")


def _lots(inst: Instrument, sizes: Sequence[str]) -> Sequence[int] | np.ndarray:
    fast = _on_grid(sizes, inst.lot_size)
    if fast is not None:
        return fast
    return inst.sizes_to_lots(pa.array(sizes, pa.string()), field="size")


def prices_to_ticks(inst: Instrument, prices: Sequence[str]) -> np.ndarray:
    """Decimal price text to ticks, exactly (DataError names an off-grid or bad value)."""
    return np.asarray(_ticks(inst, prices), dtype=np.int64)


def sizes_to_lots(inst: Instrument, sizes: Sequence[str]) -> np.ndarray:
    """Decimal size text to lots, exactly (DataError names an off-grid or bad value)."""
    return np.asarray(_lots(inst, sizes), dtype=np.int64)


def _ticks_lots(
    inst: Instrument, levels: Levels
) -> tuple[Sequence[int] | np.ndarray, Sequence[int] | np.ndarray]:
    if not levels:
        return (), ()
    prices, sizes = zip(*((lv[0], lv[1]) for lv in levels), strict=True)
    return _ticks(inst, prices), _lots(inst, sizes)


def book_rows(
    iid: int,
    inst: Instrument,
    bids: Levels,
    asks: Levels,
    *,
    ts_exch: int,
    ts_local: int,
    snapshot: bool,
    exch_missing: bool = False,
) -> np.ndarray:
    """Rows of one book message: bids then asks, FLAG_LAST on the last row.

    A snapshot starts with a KIND_BOOK_CLEAR (FLAG_SNAPSHOT; FLAG_LAST too when it holds no
    level); a delta with no level gives no row at all.
    """
    bp, bq = _ticks_lots(inst, bids)
    ap, aq = _ticks_lots(inst, asks)
    nb, na = len(bp), len(ap)
    head = 1 if snapshot else 0
    n = head + nb + na
    flags = (FLAG_SNAPSHOT if snapshot else 0) | (FLAG_EXCH_TS_MISSING if exch_missing else 0)
    if n <= SMALL:  # one array from tuples: a third of the time of field-by-field filling
        kind = KIND_BOOK_SNAPSHOT if snapshot else KIND_BOOK_DELTA
        rows = [(ts_exch, ts_local, 0, 0, iid, KIND_BOOK_CLEAR, SIDE_NONE, flags)] * head
        for side, ps, qs in ((SIDE_BUY, bp, bq), (SIDE_SELL, ap, aq)):
            rows += [
                (ts_exch, ts_local, p, q, iid, kind, side, flags)
                for p, q in zip(ps, qs, strict=True)
            ]
        if rows:
            rows[-1] = (*rows[-1][:7], flags | FLAG_LAST)
        return np.array(rows, dtype=EVENT_DTYPE)
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["ts_exch"] = ts_exch
    ev["ts_local"] = ts_local
    ev["instrument"] = iid
    ev["flags"] = flags
    if snapshot:
        ev["kind"][0] = KIND_BOOK_CLEAR
        ev["side"][0] = SIDE_NONE
    ev["kind"][head:] = KIND_BOOK_SNAPSHOT if snapshot else KIND_BOOK_DELTA
    ev["side"][head : head + nb] = SIDE_BUY
    ev["side"][head + nb :] = SIDE_SELL
    ev["price"][head : head + nb] = bp
    ev["size"][head : head + nb] = bq
    ev["price"][head + nb :] = ap
    ev["size"][head + nb :] = aq
    ev["flags"][-1] |= FLAG_LAST
    return ev


def clear_row(iid: int, *, ts_exch: int, ts_local: int, flags: int) -> np.ndarray:
    """One KIND_BOOK_CLEAR of the whole book (side SIDE_NONE) with `flags`."""
    ev = np.zeros(1, dtype=EVENT_DTYPE)
    ev["ts_exch"] = ts_exch
    ev["ts_local"] = ts_local
    ev["instrument"] = iid
    ev["kind"] = KIND_BOOK_CLEAR
    ev["side"] = SIDE_NONE
    ev["flags"] = flags
    return ev


def trade_rows(
    iid: int,
    inst: Instrument,
    trades: Sequence[tuple[str, str, int, int]],
    *,
    ts_local: int,
) -> np.ndarray:
    """One row per (price, size, aggressor side, exchange time ns); each a message (LAST)."""
    if not trades:
        return np.zeros(0, dtype=EVENT_DTYPE)
    prices, sizes, sides, times = zip(*trades, strict=True)
    ticks, lots = _ticks(inst, prices), _lots(inst, sizes)
    if len(trades) <= SMALL:
        return np.array(
            [
                (t, ts_local, p, q, iid, KIND_TRADE, side, FLAG_LAST)
                for p, q, side, t in zip(ticks, lots, sides, times, strict=True)
            ],
            dtype=EVENT_DTYPE,
        )
    ev = np.zeros(len(trades), dtype=EVENT_DTYPE)
    ev["price"] = ticks
    ev["size"] = lots
    ev["side"] = sides
    ev["ts_exch"] = times
    ev["ts_local"] = ts_local
    ev["instrument"] = iid
    ev["kind"] = KIND_TRADE
    ev["flags"] = FLAG_LAST
    return ev


def quote_rows(
    iid: int,
    inst: Instrument,
    bid: str,
    bid_size: str,
    ask: str,
    ask_size: str,
    *,
    ts_exch: int,
    ts_local: int,
    exch_missing: bool = False,
) -> np.ndarray:
    """The two rows of a best bid/offer: bid (SIDE_BUY), then ask (SIDE_SELL, FLAG_LAST)."""
    (bp, ap), (bq, aq) = _ticks(inst, (bid, ask)), _lots(inst, (bid_size, ask_size))
    flags = FLAG_EXCH_TS_MISSING if exch_missing else 0
    return np.array(
        [
            (ts_exch, ts_local, bp, bq, iid, KIND_QUOTE, SIDE_BUY, flags),
            (ts_exch, ts_local, ap, aq, iid, KIND_QUOTE, SIDE_SELL, flags | FLAG_LAST),
        ],
        dtype=EVENT_DTYPE,
    )
