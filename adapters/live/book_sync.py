"""The sequence state of one live order book: buffer, snapshot, continuity, gap.

Every venue with incremental book updates follows the same outline (Binance, Bybit, OKX...):
updates carry ids; until a snapshot arrives they are buffered; the snapshot's id tells
which buffered updates it already holds (stale: dropped) and which continue it; from then on
each update must continue the previous one, and one that does not means updates were missed:
the book is discarded and rebuilt from a new snapshot. What "continues" means is the venue's
rule, passed in as a function (Binance: `adapters.binance_ws.depth_diff_verdict`; Bybit:
`adapters.bybit_history.orderbook_verdict`); the offline loaders of recorded data use the
same functions, so a capture and a live feed are judged alike.

One rule is added for live feeds: once in sync, an update whose last id is not above the
book's id is a repeat (a duplicated frame, or the overlap of two connections during a
planned rotation) and is ignored, not treated as a gap.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from adapters._sequence import DIFF_APPLY, DIFF_GAP, DIFF_STALE

DIFF_BUFFERED: Final = 3
"""Held until the next snapshot."""
DIFF_REPEAT: Final = 4
"""Already applied (its last id is not above the book's): ignored."""

VERDICT_NAMES: Final = {
    DIFF_STALE: "stale",
    DIFF_APPLY: "apply",
    DIFF_GAP: "gap",
    DIFF_BUFFERED: "buffered",
    DIFF_REPEAT: "repeat",
}

Rule = Callable[[bool, int, int, int, "int | None"], tuple[int, str]]
"""(bridging, book id, first id, last id, previous id or None) -> (verdict, why if a gap)."""

MAX_BUFFERED: Final = 10_000
"""Updates held while waiting for a snapshot; the oldest are dropped (and counted) beyond it."""


class SyncState(enum.IntEnum):
    """Where one book stands."""

    WAIT = 0
    """No book: updates are buffered until a snapshot."""
    BRIDGE = 1
    """The book is a snapshot; the first update after it has not been seen yet."""
    SYNCED = 2
    """The book is the snapshot plus a continuous run of updates."""


@dataclass(slots=True)
class BookUpdate:
    """One parsed book message of a venue, with its rows ready to emit."""

    key: str
    """The book it belongs to (the venue's symbol)."""
    snapshot: bool
    first: int
    """First update id it covers (a snapshot: its id)."""
    last: int
    """Last update id it covers (a snapshot: its id)."""
    prev: int | None
    """The id of the update before it, when the venue sends one (Binance futures `pu`)."""
    rows: np.ndarray
    """EVENT_DTYPE rows: a snapshot's start with a clear; a delta may have none."""
    ts_exch: int
    ts_local: int


class BookSequencer:
    """The sync state machine of one book under a venue's continuity rule."""

    def __init__(self, rule: Rule, *, max_buffered: int = MAX_BUFFERED) -> None:
        self.rule = rule
        self.max_buffered = max_buffered
        self.state = SyncState.WAIT
        self.book_id = 0
        """The snapshot's id in BRIDGE, the last applied update's last id in SYNCED."""
        self.buffer: deque[BookUpdate] = deque()
        self.applied = 0
        self.stale = 0
        self.repeats = 0
        self.gaps = 0
        self.overflow = 0
        """Buffered updates dropped because the buffer was full."""
        self.last_gap = ""

    def reset(self) -> None:
        """Forget the book (connection lost): wait for a snapshot again."""
        self.state = SyncState.WAIT
        self.buffer.clear()

    def on_update(self, upd: BookUpdate) -> tuple[int, str]:
        """Judge one delta: (verdict, why). On a gap the book is dropped and it is buffered."""
        if self.state == SyncState.WAIT:
            self._buffer(upd)
            return DIFF_BUFFERED, ""
        if self.state == SyncState.SYNCED and upd.last <= self.book_id:
            self.repeats += 1
            return DIFF_REPEAT, ""
        bridging = self.state == SyncState.BRIDGE
        verdict, why = self.rule(bridging, self.book_id, upd.first, upd.last, upd.prev)
        if verdict == DIFF_APPLY:
            self.state = SyncState.SYNCED
            self.book_id = upd.last
            self.applied += 1
        elif verdict == DIFF_STALE:
            self.stale += 1
        else:
            self.gaps += 1
            self.last_gap = why
            self.state = SyncState.WAIT
            self.buffer.clear()
            self._buffer(upd)  # a later snapshot may not hold it yet
        return verdict, why

    def bridges(self, snapshot_id: int) -> bool | None:
        """Whether a snapshot with this id would continue into the buffered updates.

        None when nothing is buffered (the next live update decides); False means the
        snapshot is older than the buffer (Binance: fetch another one).
        """
        for upd in self.buffer:
            verdict, _ = self.rule(True, snapshot_id, upd.first, upd.last, upd.prev)
            if verdict != DIFF_STALE:
                return verdict == DIFF_APPLY
        return None

    def on_snapshot(self, snapshot_id: int) -> list[BookUpdate]:
        """Set the book to a snapshot; returns the buffered updates to feed to `on_update`."""
        self.state = SyncState.BRIDGE
        self.book_id = snapshot_id
        pending = list(self.buffer)
        self.buffer.clear()
        return pending

    def _buffer(self, upd: BookUpdate) -> None:
        self.buffer.append(upd)
        if len(self.buffer) > self.max_buffered:
            self.buffer.popleft()
            self.overflow += 1
