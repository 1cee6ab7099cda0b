"""The L2 order book: price levels of many instruments in preallocated arrays.

Layout (struct of arrays, one row per instrument, `capacity` slots per row):

    bid_px, bid_qty   int64 [n_instruments, capacity]  prices ASCENDING:  best bid at bid_n - 1
    ask_px, ask_qty   int64 [n_instruments, capacity]  prices DESCENDING: best ask at ask_n - 1
    bid_n, ask_n      int64 [n_instruments]            live levels per side
    dropped           int64 [n_instruments]            levels discarded because a side was full
    updates           int64 [n_instruments]            level sets and clears applied

Both sides keep the best level at the END of the row. Almost all market-data updates land
within a few ticks of the touch, and inserting or removing a level moves only the levels
between it and the end of the row, so an update near the touch moves a handful of elements
however deep the book is. A level is found by a short linear scan back from the touch,
then by binary search if it lies deeper. Slots at or beyond the live count are kept zero,
so two books holding the same levels are byte-identical (determinism tests compare bytes).

A full side (overflow) never loses data silently: the level farthest from the touch (index
0) is discarded if the new level is nearer the touch, otherwise the new level is; either way
`dropped` counts it.

Prices are integer ticks and may be negative (spreads, some futures); `NO_PRICE` (the
smallest int64) stands for "no level". Sizes are integer lots; a size of 0 removes a level.

The jitted kernels take int64 scalars and assume valid input (an instrument id in range, a
side of SIDE_BUY or SIDE_SELL, a non-negative size): validation lives in the Python layer
(`new_book`, `check_book_events`, `book_snapshot`). They allocate nothing, so they run
without the GIL and without numba's reference counting (see `_PUBLIC`).
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
from numba import njit

from engine.errors import DataError, UsageError
from engine.events import (
    EVENT_DTYPE,
    FLAG_LAST,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    SIDE_BUY,
    SIDE_SELL,
)

NO_PRICE: Final = np.iinfo(np.int64).min
"""Returned for the price of an empty side (a real price can be negative, never this)."""

DEFAULT_CAPACITY: Final = 8192
"""Levels per side and instrument unless told otherwise."""


class BookState(NamedTuple):
    """Every instrument's L2 book as preallocated arrays (see the module docstring)."""

    bid_px: np.ndarray
    bid_qty: np.ndarray
    ask_px: np.ndarray
    ask_qty: np.ndarray
    bid_n: np.ndarray
    ask_n: np.ndarray
    dropped: np.ndarray
    updates: np.ndarray


def new_book(n_instruments: int, capacity: int = DEFAULT_CAPACITY) -> BookState:
    """An empty book for `n_instruments` instruments with `capacity` levels per side."""
    n_instruments = _as_int(n_instruments, "n_instruments")
    capacity = _as_int(capacity, "capacity")
    if n_instruments < 1:
        raise UsageError(f"n_instruments must be at least 1, got {n_instruments}")
    if capacity < 1:
        raise UsageError(f"capacity must be at least 1, got {capacity}")
    shape = (n_instruments, capacity)
    return BookState(
        bid_px=np.zeros(shape, np.int64),
        bid_qty=np.zeros(shape, np.int64),
        ask_px=np.zeros(shape, np.int64),
        ask_qty=np.zeros(shape, np.int64),
        bid_n=np.zeros(n_instruments, np.int64),
        ask_n=np.zeros(n_instruments, np.int64),
        dropped=np.zeros(n_instruments, np.int64),
        updates=np.zeros(n_instruments, np.int64),
    )


def copy_book(book: BookState) -> BookState:
    """A deep copy (for snapshots published to the UI, checkpoints and tests)."""
    return BookState(*(a.copy() for a in book))


def _as_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise UsageError(f"{name} must be an integer, got {value!r}")
    return int(value)


# Compilation options. `_nrt=False` switches off numba's reference counting inside these
# kernels: they never allocate nor keep an array beyond the call, and without it every call
# that receives the book (eight arrays) pays sixteen atomic increments and decrements, which
# numba's pruning pass fails to remove around loops (numba issues #2345, #2350). Measured with
# benchmarks/bench_book.py: about 300 ns a delta with counting, about 23 without. numba itself
# compiles its allocation-free helpers this way (numba/cpython/unicode.py).
_PUBLIC: Final = {"cache": True, "nogil": True, "_nrt": False}
# Helpers are inlined into each public kernel at numba IR level, so that the hot path is
# one function with no call passing the book's arrays on the stack.
_INLINE: Final = {**_PUBLIC, "inline": "always"}

_LINEAR_SPAN: Final = 16
"""Levels next to the touch searched linearly before falling back to binary search."""


# --- kernels: searching ------------------------------------------------------------------


@njit(**_INLINE)
def _find_bid(px, inst, n, price):
    """First index in [0, n] whose bid price is >= `price` (the rows are ascending)."""
    # Updates cluster at the touch, the end of the row: a short linear scan from there is
    # cheaper than binary search (fewer mispredicted branches); deeper levels are bisected.
    lo = n - _LINEAR_SPAN
    if lo > 0 and px[inst, lo] >= price:
        hi = lo  # px[hi] >= price holds throughout
        lo = 0
        while lo < hi:
            mid = (lo + hi) >> 1
            if px[inst, mid] < price:
                lo = mid + 1
            else:
                hi = mid
        return lo
    j = n
    while j > 0 and px[inst, j - 1] >= price:
        j -= 1
    return j


@njit(**_INLINE)
def _find_ask(px, inst, n, price):
    """First index in [0, n] whose ask price is <= `price` (the rows are descending)."""
    lo = n - _LINEAR_SPAN
    if lo > 0 and px[inst, lo] <= price:
        hi = lo  # px[hi] <= price holds throughout
        lo = 0
        while lo < hi:
            mid = (lo + hi) >> 1
            if px[inst, mid] > price:
                lo = mid + 1
            else:
                hi = mid
        return lo
    j = n
    while j > 0 and px[inst, j - 1] <= price:
        j -= 1
    return j


# --- kernels: updating -------------------------------------------------------------------


@njit(**_INLINE)
def _set_at(px, qty, count, dropped, inst, j, price, size):
    """Set the level `price` to `size` in one side's row, `j` being its insertion point."""
    n = count[inst]
    if j < n and px[inst, j] == price:
        if size > 0:
            qty[inst, j] = size
        else:
            # Remove: the levels nearer the touch (higher indices) move down by one.
            for k in range(j, n - 1):
                px[inst, k] = px[inst, k + 1]
                qty[inst, k] = qty[inst, k + 1]
            px[inst, n - 1] = 0
            qty[inst, n - 1] = 0
            count[inst] = n - 1
    elif size > 0:
        if n < px.shape[1]:
            # Insert: the levels nearer the touch move up by one.
            for k in range(n, j, -1):
                px[inst, k] = px[inst, k - 1]
                qty[inst, k] = qty[inst, k - 1]
            px[inst, j] = price
            qty[inst, j] = size
            count[inst] = n + 1
        else:
            # Full: discard the level farthest from the touch, the new one if that is it.
            dropped[inst] += 1
            if j > 0:
                for k in range(0, j - 1):
                    px[inst, k] = px[inst, k + 1]
                    qty[inst, k] = qty[inst, k + 1]
                px[inst, j - 1] = price
                qty[inst, j - 1] = size
    # else: removing a level that is not there


@njit(**_INLINE)
def _apply_level(book, inst, side, price, qty):
    if side == SIDE_BUY:
        j = _find_bid(book.bid_px, inst, book.bid_n[inst], price)
        _set_at(book.bid_px, book.bid_qty, book.bid_n, book.dropped, inst, j, price, qty)
        book.updates[inst] += 1
    elif side == SIDE_SELL:
        j = _find_ask(book.ask_px, inst, book.ask_n[inst], price)
        _set_at(book.ask_px, book.ask_qty, book.ask_n, book.dropped, inst, j, price, qty)
        book.updates[inst] += 1


@njit(**_INLINE)
def _clear_row(px, qty, count, inst):
    for k in range(count[inst]):
        px[inst, k] = 0
        qty[inst, k] = 0
    count[inst] = 0


@njit(**_INLINE)
def _clear_side(book, inst, side):
    if side != SIDE_SELL:
        _clear_row(book.bid_px, book.bid_qty, book.bid_n, inst)
    if side != SIDE_BUY:
        _clear_row(book.ask_px, book.ask_qty, book.ask_n, inst)
    book.updates[inst] += 1


@njit(**_INLINE)
def _apply_event(book, inst, kind, side, price, size):
    if kind == KIND_BOOK_DELTA or kind == KIND_BOOK_SNAPSHOT:
        if side == SIDE_BUY or side == SIDE_SELL:
            _apply_level(book, inst, side, price, size)
            return True
        return False
    if kind == KIND_BOOK_CLEAR:
        _clear_side(book, inst, side)
        return True
    return False


apply_event_inline = _apply_event
"""apply_event inlined into the caller: for the engine's per-event path only."""


@njit(**_PUBLIC)
def apply_level(book, inst, side, price, qty):
    """Set the level `price` of one side to the absolute size `qty` (0 removes it)."""
    _apply_level(book, inst, side, price, qty)


@njit(**_PUBLIC)
def clear_side(book, inst, side):
    """Remove every level of one side, or of both for SIDE_NONE."""
    _clear_side(book, inst, side)


@njit(**_PUBLIC)
def apply_event(book, inst, kind, side, price, size):
    """Apply one event's fields; False (and nothing done) unless it is a book event."""
    return _apply_event(book, inst, kind, side, price, size)


@njit(**_PUBLIC)
def apply_events(book, events, start, stop):
    """Apply events[start:stop] (EVENT_DTYPE) in order; returns how many were book events.

    Rows of other kinds (trades, quotes, engine events) are skipped, and so are rows whose
    instrument is outside the book (`check_book_events` reports those before a run).
    """
    n_inst = book.bid_n.shape[0]
    stop = min(stop, len(events))
    applied = 0
    for i in range(max(start, 0), stop):
        ev = events[i]
        inst = np.int64(ev["instrument"])
        if inst < n_inst and _apply_event(
            book, inst, np.int64(ev["kind"]), np.int64(ev["side"]), ev["price"], ev["size"]
        ):
            applied += 1
    return applied


@njit(**_PUBLIC)
def apply_events_checked(book, events, start, stop, crossed, messages):
    """Like apply_events, and at each book row ending a message (FLAG_LAST) count the
    message and whether the book of its instrument is crossed then (`crossed`, `messages`
    are int64 [n_instruments], added to in place)."""
    n_inst = book.bid_n.shape[0]
    stop = min(stop, len(events))
    applied = 0
    for i in range(max(start, 0), stop):
        ev = events[i]
        inst = np.int64(ev["instrument"])
        if inst >= n_inst:
            continue
        if _apply_event(
            book, inst, np.int64(ev["kind"]), np.int64(ev["side"]), ev["price"], ev["size"]
        ):
            applied += 1
            if (ev["flags"] & FLAG_LAST) != 0:
                messages[inst] += 1
                if is_crossed(book, inst):
                    crossed[inst] += 1
    return applied


# --- kernels: reading --------------------------------------------------------------------


@njit(**_INLINE)  # a few loads: inlined, not a call passing the book's arrays
def best_bid(book, inst):
    """Best bid price, or NO_PRICE if there are no bids."""
    n = book.bid_n[inst]
    return book.bid_px[inst, n - 1] if n > 0 else NO_PRICE


@njit(**_INLINE)  # a few loads: inlined, not a call passing the book's arrays
def best_ask(book, inst):
    """Best ask price, or NO_PRICE if there are no asks."""
    n = book.ask_n[inst]
    return book.ask_px[inst, n - 1] if n > 0 else NO_PRICE


@njit(**_INLINE)  # a few loads: inlined, not a call passing the book's arrays
def best_bid_qty(book, inst):
    """Size at the best bid, 0 if there are no bids."""
    n = book.bid_n[inst]
    return book.bid_qty[inst, n - 1] if n > 0 else 0


@njit(**_INLINE)  # a few loads: inlined, not a call passing the book's arrays
def best_ask_qty(book, inst):
    """Size at the best ask, 0 if there are no asks."""
    n = book.ask_n[inst]
    return book.ask_qty[inst, n - 1] if n > 0 else 0


@njit(**_PUBLIC)
def depth_at(book, inst, side, price):
    """Size resting at `price` on one side, 0 if there is no such level."""
    if side == SIDE_BUY:
        n = book.bid_n[inst]
        j = _find_bid(book.bid_px, inst, n, price)
        if j < n and book.bid_px[inst, j] == price:
            return book.bid_qty[inst, j]
    elif side == SIDE_SELL:
        n = book.ask_n[inst]
        j = _find_ask(book.ask_px, inst, n, price)
        if j < n and book.ask_px[inst, j] == price:
            return book.ask_qty[inst, j]
    return 0


@njit(**_PUBLIC)
def _copy_top(px, qty, n, inst, depth, out_px, out_qty):
    m = min(depth, n, len(out_px), len(out_qty))
    for k in range(m):
        out_px[k] = px[inst, n - 1 - k]
        out_qty[k] = qty[inst, n - 1 - k]
    return max(m, 0)


@njit(**_PUBLIC)
def top_levels(book, inst, side, n, out_px, out_qty):
    """Copy up to `n` levels of one side, best first, into out_px/out_qty; returns the count."""
    if side == SIDE_BUY:
        return _copy_top(book.bid_px, book.bid_qty, book.bid_n[inst], inst, n, out_px, out_qty)
    if side == SIDE_SELL:
        return _copy_top(book.ask_px, book.ask_qty, book.ask_n[inst], inst, n, out_px, out_qty)
    return 0


@njit(**_PUBLIC)
def mid_x2(book, inst):
    """Best bid plus best ask (twice the mid, so no half ticks), NO_PRICE if a side is empty."""
    nb = book.bid_n[inst]
    na = book.ask_n[inst]
    if nb == 0 or na == 0:
        return NO_PRICE
    return book.bid_px[inst, nb - 1] + book.ask_px[inst, na - 1]


@njit(**_PUBLIC)
def spread(book, inst):
    """Best ask minus best bid in ticks (<= 0 when crossed), NO_PRICE if a side is empty."""
    nb = book.bid_n[inst]
    na = book.ask_n[inst]
    if nb == 0 or na == 0:
        return NO_PRICE
    return book.ask_px[inst, na - 1] - book.bid_px[inst, nb - 1]


@njit(**_PUBLIC)
def is_crossed(book, inst):
    """True if both sides are present and the best bid is at or above the best ask."""
    nb = book.bid_n[inst]
    na = book.ask_n[inst]
    return nb > 0 and na > 0 and book.bid_px[inst, nb - 1] >= book.ask_px[inst, na - 1]


@njit(**_PUBLIC)
def level_count(book, inst, side):
    """Number of levels on one side (both sides together for SIDE_NONE)."""
    if side == SIDE_BUY:
        return book.bid_n[inst]
    if side == SIDE_SELL:
        return book.ask_n[inst]
    return book.bid_n[inst] + book.ask_n[inst]


# --- Python layer ------------------------------------------------------------------------


def book_snapshot(book: BookState, inst: int, depth: int) -> dict:
    """Top `depth` levels of one instrument as {"bids": [(px, qty)...], "asks": [...]}.

    Each side is best first. Also carries the instrument's level counts, `dropped` and
    `updates` counters. Plain Python ints: for tests, the UI and JSON.
    """
    inst = _check_instrument(book, inst)
    depth = _as_int(depth, "depth")
    if depth < 0:
        raise UsageError(f"depth must not be negative, got {depth}")
    out: dict = {}
    for name, px, qty, count in (
        ("bids", book.bid_px, book.bid_qty, book.bid_n),
        ("asks", book.ask_px, book.ask_qty, book.ask_n),
    ):
        n = int(count[inst])
        lo = max(n - depth, 0)
        levels = zip(px[inst, lo:n][::-1].tolist(), qty[inst, lo:n][::-1].tolist(), strict=True)
        out[name] = list(levels)
    out["bid_levels"] = int(book.bid_n[inst])
    out["ask_levels"] = int(book.ask_n[inst])
    out["dropped"] = int(book.dropped[inst])
    out["updates"] = int(book.updates[inst])
    return out


def _check_instrument(book: BookState, inst: object) -> int:
    inst = _as_int(inst, "instrument")
    n = book.bid_n.shape[0]
    if not 0 <= inst < n:
        raise UsageError(f"instrument {inst} is outside the book (0..{n - 1})")
    return inst


def check_book_events(
    book: BookState, events: np.ndarray, start: int = 0, stop: int | None = None
) -> None:
    """Raise DataError at the first book event in events[start:stop] the kernels can't take.

    Checks what `apply_events` assumes: the instrument is in the book, a delta or snapshot
    row is on SIDE_BUY or SIDE_SELL, a clear row on either or SIDE_NONE, the size is not
    negative and the price is not NO_PRICE. Other kinds are not inspected.
    """
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
        raise DataError("events must be a numpy array of EVENT_DTYPE")
    stop = len(events) if stop is None else stop
    ev = events[start:stop]
    kind = ev["kind"]
    side = ev["side"]
    level = (kind == KIND_BOOK_DELTA) | (kind == KIND_BOOK_SNAPSHOT)
    book_kind = level | (kind == KIND_BOOK_CLEAR)
    n_inst = book.bid_n.shape[0]
    checks = (
        ("instrument", book_kind & (ev["instrument"] >= n_inst), f"not below {n_inst}"),
        ("side", level & (side != SIDE_BUY) & (side != SIDE_SELL), "not buy (1) or sell (-1)"),
        ("side", book_kind & ((side < SIDE_SELL) | (side > SIDE_BUY)), "not -1, 0 or 1"),
        ("size", level & (ev["size"] < 0), "negative"),
        ("price", level & (ev["price"] == NO_PRICE), "NO_PRICE"),
    )
    first = None
    for field, bad, what in checks:
        rows = np.flatnonzero(bad)
        if len(rows) and (first is None or rows[0] < first[0]):
            first = (int(rows[0]), field, what, len(rows))
    if first is not None:
        row, field, what, count = first
        i = start + row
        value = events[i][field].item()
        raise DataError(
            f"book event {field} {value} is {what} ({count} such rows)", line=i, field=field
        )


__all__ = [
    "DEFAULT_CAPACITY",
    "NO_PRICE",
    "BookState",
    "apply_event",
    "apply_events",
    "apply_level",
    "best_ask",
    "best_ask_qty",
    "best_bid",
    "best_bid_qty",
    "book_snapshot",
    "check_book_events",
    "clear_side",
    "copy_book",
    "depth_at",
    "is_crossed",
    "level_count",
    "mid_x2",
    "new_book",
    "spread",
    "top_levels",
]
