"""The tape: recent market trades of the selected instrument, newest first (Line API)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from rich.segment import Segment

from cockpit import fmt
from cockpit.snapshot import Snapshot
from cockpit.widgets.lines import LineList
from engine.events import SIDE_BUY


class Tape(LineList):
    """Time, price, size and aggressor of each trade; buys in $bid, sells in $ask."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"tape--time", "tape--buy", "tape--sell"}
    DEFAULT_CSS = """
    Tape > .tape--time { color: $text-muted; }
    Tape > .tape--buy { color: $bid; }
    Tape > .tape--sell { color: $ask; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._snap: Snapshot | None = None

    def show(self, snap: Snapshot) -> None:
        """Draw a new snapshot."""
        old = self._snap
        self._snap = snap
        if old is None or old.trades is not snap.trades:
            self.rows_changed()

    def row_count(self) -> int:
        """Trades in the snapshot."""
        return len(self._snap.trades.ts) if self._snap is not None else 0

    def _at(self, i: int) -> tuple[int, int, int, int]:
        t = self._snap.trades
        j = len(t.ts) - 1 - i  # newest first
        return int(t.ts[j]), int(t.price[j]), int(t.size[j]), int(t.side[j])

    def row_key(self, i: int) -> Hashable:
        """A trade's fields."""
        return self._at(i)

    def empty_text(self) -> str:
        """Before the first trade."""
        return " no trades yet"

    def row_segments(self, i: int, width: int) -> list[Segment]:
        """'12:00:01.250  100.05   0.500 B'."""
        ts, px, sz, side = self._at(i)
        inst = self._snap.instrument
        buy = side == SIDE_BUY
        style = self.style("tape--buy" if buy else "tape--sell")
        millis = width >= 34
        time_text = fmt.clock_time(ts, millis)
        rest = max(width - len(time_text) - 4, 8)
        pw = max(rest // 2, 4)
        sw = max(rest - pw, 4)
        return [
            Segment(f" {time_text} ", self.style("tape--time")),
            Segment(fmt.fit(fmt.price(inst, px), pw, ">"), style),
            Segment(fmt.fit(fmt.short_size(inst, sz, sw - 1), sw, ">"), style),
            Segment(" B" if buy else " S", style),
        ]
