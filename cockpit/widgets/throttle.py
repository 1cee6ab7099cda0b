"""Redraw limits for the panes that are expensive to update (DataTables, sparklines)."""

from __future__ import annotations

import time
from typing import Final

from cockpit.snapshot import Snapshot

SLOW_PANE_HZ: Final = 4.0
"""How often a DataTable or chart follows a running replay. DataTable row changes cost
milliseconds each (a removal rebuilds its row order), so following every frame at max speed
would starve the ladder and the keys; a paused or stepped engine is always shown at once."""


class Throttle:
    """Says whether a slow pane should draw this snapshot."""

    def __init__(self, hz: float = SLOW_PANE_HZ) -> None:
        self.period = 1.0 / hz
        self.last = -1e9
        self.drawn = False

    def due(self, snap: Snapshot, visible: bool = True) -> bool:
        """True when the pane should draw this snapshot.

        A pane draws its first snapshot whatever happens (so the first frame does not depend
        on when the layout ran); after that, not while it is hidden (another tab), and while
        the replay runs at most `hz` times a second.
        """
        if not self.drawn:
            self.drawn = True
            self.last = time.monotonic()
            return True
        if not visible:
            return False
        if snap.status.mode not in ("playing", "seeking"):
            self.last = time.monotonic()
            return True
        now = time.monotonic()
        if now - self.last >= self.period:
            self.last = now
            return True
        return False


class DeferredDraw:
    """Mixin of the slow panes: the newest snapshot that could not be drawn yet (before the
    pane was mounted, while it was hidden, or too soon after the last draw) is kept in
    `_pending` and drawn once the pane is mounted, shown again or laid out.

    The pane sets `_throttle`, `_pending = None` and `_ready = False` in its __init__ and
    has a `show(snap)`; Textual calls these handlers besides the pane's own.
    """

    _throttle: Throttle
    _pending: Snapshot | None
    _ready: bool

    def on_mount(self) -> None:
        """Mounted: draw what arrived before."""
        self._ready = True
        self._catch_up()

    def on_show(self) -> None:
        """Visible again (its tab, or the first layout): draw what was skipped."""
        self.call_after_refresh(self._catch_up)  # type: ignore[attr-defined]

    def on_resize(self) -> None:
        """Laid out: draw what was skipped."""
        self.call_after_refresh(self._catch_up)  # type: ignore[attr-defined]

    def _catch_up(self) -> None:
        pending = self._pending
        if pending is not None and (self.region or not self._throttle.drawn):  # type: ignore[attr-defined]
            self._pending = None
            self._throttle.last = -1e9
            self.show(pending)  # type: ignore[attr-defined]
