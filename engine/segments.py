"""Time segments of one event stream: in-sample / out-of-sample splits and walk-forward windows.

A segment that starts in the middle of a stream would begin with an empty book: the deltas
after the cut only restate the levels that change. So a segment that does not start at the
first event gets a prefix: the book of every instrument as it stood at the cut (replayed
with the engine's own book kernels over everything before it) as one snapshot message per
instrument (a KIND_BOOK_CLEAR, then KIND_BOOK_SNAPSHOT rows, FLAG_SNAPSHOT on all, FLAG_LAST
on the last), then the last quote pair seen per instrument, all stamped with the time of the
first event of the segment. A strategy starts there with the market as it was, and with no
memory of anything before (its state starts from the defaults, as in any backtest).

Cuts fall on message boundaries (after a row with FLAG_LAST), never inside a message, and
never between two events of the same `ts_local` (they may be one message of the venue), so
every row belongs to exactly one segment. The in-sample part of a split is a view of the
stream's array (no copy); an out-of-sample part is the prefix plus a copy of its rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.book import apply_events, new_book
from engine.data.stream import EventStream
from engine.errors import UsageError
from engine.events import (
    EVENT_DTYPE,
    FLAG_LAST,
    FLAG_SNAPSHOT,
    KIND_BOOK_CLEAR,
    KIND_BOOK_SNAPSHOT,
    KIND_QUOTE,
    SIDE_BUY,
    SIDE_NONE,
    SIDE_SELL,
)

PREFIX_BOOK_CAPACITY = 8192
"""Levels per side kept when replaying the book up to a cut (the engine's own default)."""


@dataclass(frozen=True)
class Segment:
    """Rows [start, stop) of a stream, as a stream of their own (with the book prefix)."""

    name: str
    """'all', 'in', 'out', or 'w2.in' / 'w2.out' for walk-forward window 2."""
    start: int
    stop: int
    start_ns: int
    """ts_local of the first row of the segment (not of the prefix)."""
    end_ns: int
    """ts_local of the last row."""
    stream: EventStream

    @property
    def events(self) -> int:
        """Rows of the original stream in the segment (the prefix not counted)."""
        return self.stop - self.start

    def describe(self) -> dict:
        """Plain values for reports."""
        return {
            "name": self.name,
            "rows": [self.start, self.stop],
            "events": self.events,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "prefix_rows": len(self.stream) - self.events,
        }


def message_boundary(events: np.ndarray, index: int) -> int:
    """The first index >= `index` at which a new message starts (len(events) at most).

    A message starts after a FLAG_LAST row whose successor has a later ts_local.
    """
    n = len(events)
    if index <= 0:
        return 0
    if index >= n:
        return n
    flags = events["flags"]
    ts = events["ts_local"]
    i = index
    while i < n:
        if (flags[i - 1] & FLAG_LAST) and ts[i] > ts[i - 1]:
            return i
        i += 1
    return n


def cut_at_fraction(events: np.ndarray, fraction: float) -> int:
    """Index of the message boundary at `fraction` of the stream's time span."""
    if len(events) == 0:
        return 0
    ts = events["ts_local"]
    t0, t1 = int(ts[0]), int(ts[-1])
    cut_ns = t0 + int(round((t1 - t0) * fraction))
    return message_boundary(events, int(np.searchsorted(ts, cut_ns, side="left")))


def market_prefix(stream: EventStream, index: int) -> np.ndarray:
    """Snapshot rows recreating the book and the quotes as they stood before row `index`."""
    ev = stream.events
    if index <= 0:
        return np.zeros(0, EVENT_DTYPE)
    n_inst = max(1, len(stream.instruments))
    book = new_book(n_inst, PREFIX_BOOK_CAPACITY)
    apply_events(book, ev, 0, index)
    ts = int(ev["ts_local"][index]) if index < len(ev) else int(ev["ts_local"][-1])
    ts_exch = int(ev["ts_exch"][index]) if index < len(ev) else int(ev["ts_exch"][-1])
    rows: list[tuple] = []

    def row(inst: int, kind: int, side: int, price: int, size: int, flags: int) -> None:
        rows.append((ts_exch, ts, price, size, inst, kind, side, flags))

    quotes = ev[:index][ev["kind"][:index] == KIND_QUOTE]
    for inst in range(n_inst):
        nb, na = int(book.bid_n[inst]), int(book.ask_n[inst])
        if nb or na:
            row(inst, KIND_BOOK_CLEAR, SIDE_NONE, 0, 0, FLAG_SNAPSHOT)
            # Best first on each side (the book keeps the best level at the end of a row).
            for k in range(nb - 1, -1, -1):
                row(
                    inst,
                    KIND_BOOK_SNAPSHOT,
                    SIDE_BUY,
                    book.bid_px[inst, k],
                    book.bid_qty[inst, k],
                    FLAG_SNAPSHOT,
                )
            for k in range(na - 1, -1, -1):
                row(
                    inst,
                    KIND_BOOK_SNAPSHOT,
                    SIDE_SELL,
                    book.ask_px[inst, k],
                    book.ask_qty[inst, k],
                    FLAG_SNAPSHOT,
                )
            last = rows[-1]
            rows[-1] = (*last[:7], FLAG_SNAPSHOT | FLAG_LAST)
        mine = quotes[quotes["instrument"] == inst]
        bid = mine[mine["side"] == SIDE_BUY]
        ask = mine[mine["side"] == SIDE_SELL]
        if len(bid) and len(ask):
            row(inst, KIND_QUOTE, SIDE_BUY, int(bid["price"][-1]), int(bid["size"][-1]), 0)
            row(inst, KIND_QUOTE, SIDE_SELL, int(ask["price"][-1]), int(ask["size"][-1]), FLAG_LAST)
    out = np.zeros(len(rows), EVENT_DTYPE)
    for i, r in enumerate(rows):
        out[i] = r
    return out


def segment(stream: EventStream, start: int, stop: int, name: str) -> Segment:
    """Rows [start, stop) of `stream` as a Segment (with the market prefix when start > 0)."""
    ev = stream.events
    if not 0 <= start < stop <= len(ev):
        raise UsageError(f"segment {name}: rows [{start}, {stop}) are empty or out of range")
    if start == 0:
        events = ev[:stop]  # a view: the in-sample part costs no memory
    else:
        events = np.concatenate([market_prefix(stream, start), ev[start:stop]])
    meta = {**stream.meta, "segment": {"name": name, "rows": [start, stop]}}
    return Segment(
        name=name,
        start=start,
        stop=stop,
        start_ns=int(ev["ts_local"][start]),
        end_ns=int(ev["ts_local"][stop - 1]),
        stream=EventStream(events, stream.instruments, meta),
    )


def holdout_split(stream: EventStream, holdout: float) -> tuple[Segment, Segment | None]:
    """(in-sample, out-of-sample): the last `holdout` of the time span is out of sample.

    holdout 0 gives the whole stream in sample and no out-of-sample segment.
    """
    if not 0.0 <= holdout < 1.0:
        raise UsageError(f"holdout must be in [0, 1), got {holdout}")
    n = len(stream.events)
    if n == 0:
        raise UsageError("the event stream is empty")
    if holdout == 0.0:
        return segment(stream, 0, n, "all"), None
    cut = cut_at_fraction(stream.events, 1.0 - holdout)
    if cut <= 0 or cut >= n:
        raise UsageError(
            f"holdout {holdout}: the stream's {n:,} events cannot be split there "
            "(too few messages or no time span)"
        )
    return segment(stream, 0, cut, "in"), segment(stream, cut, n, "out")


def walk_forward(
    stream: EventStream, windows: int, holdout: float
) -> list[tuple[Segment, Segment]]:
    """`windows` consecutive windows of equal time, each split (in-sample, out-of-sample).

    Rolling, not anchored: window k optimizes on its own in-sample part only, then is
    scored on the out-of-sample part that follows it.
    """
    if windows < 1:
        raise UsageError(f"walk-forward windows must be at least 1, got {windows}")
    if not 0.0 < holdout < 1.0:
        raise UsageError(f"walk-forward needs a holdout fraction in (0, 1), got {holdout}")
    ev = stream.events
    n = len(ev)
    bounds = [0] + [cut_at_fraction(ev, k / windows) for k in range(1, windows)] + [n]
    out = []
    for k in range(windows):
        a, b = bounds[k], bounds[k + 1]
        if b <= a:
            raise UsageError(f"walk-forward: window {k + 1} of {windows} holds no events")
        sub = ev[a:b]
        cut = a + cut_at_fraction(sub, 1.0 - holdout)
        if cut <= a or cut >= b:
            raise UsageError(
                f"walk-forward: window {k + 1} of {windows} ({b - a:,} events) cannot be split "
                f"at holdout {holdout}"
            )
        out.append(
            (segment(stream, a, cut, f"w{k + 1}.in"), segment(stream, cut, b, f"w{k + 1}.out"))
        )
    return out
