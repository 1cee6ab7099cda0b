"""The status bar: replay state, engine time, progress, speed, events/s, trading state."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Final

from rich.text import Text
from textual.widget import Widget

from cockpit import fmt
from cockpit.replay_pacing import speed_label
from cockpit.snapshot import Snapshot
from engine.codes import TRADING_STATE_NAMES, TS_ACTIVE, TS_HALTED

STALE_AFTER: Final = 2.0
"""Seconds without a new event after which a running feed is shown as stale."""

_MODE_TEXT: Final = {
    "paused": "❚❚ PAUSED",
    "playing": "▶ PLAYING",
    "seeking": "» SEEKING",
    "ended": "■ END",
    "failed": "✖ FAILED",
    "live": "● LIVE",
}


class StatusBar(Widget):
    """One line; redrawn on every poll (it also shows how old the data is)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "status--mode",
        "status--running",
        "status--time",
        "status--stale",
        "status--halted",
        "status--active",
        "status--failed",
        "status--dim",
    }
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $foreground; }
    StatusBar > .status--mode { text-style: bold; color: $warning; }
    StatusBar > .status--running { text-style: bold; color: $success; }
    StatusBar > .status--time { color: $text; text-style: bold; }
    StatusBar > .status--stale { color: $text-disabled; }
    StatusBar > .status--halted { background: $error; color: $text; text-style: bold; }
    StatusBar > .status--active { color: $success; }
    StatusBar > .status--failed { background: $error; color: $text; text-style: bold; }
    StatusBar > .status--dim { color: $text-muted; }
    """

    def __init__(self, clock: Callable[[], float], **kw) -> None:
        super().__init__(**kw)
        self._clock = clock
        self._snap: Snapshot | None = None

    def show(self, snap: Snapshot) -> None:
        """Draw a new snapshot."""
        self._snap = snap
        self.refresh()

    def tick(self) -> None:
        """Redraw only when the staleness shown would change (once a second at most)."""
        key = int(self.stale_seconds())
        if key != getattr(self, "_tick_key", None):
            self._tick_key = key
            self.refresh()

    def stale_seconds(self) -> float:
        """Wall seconds since the engine last processed an event."""
        if self._snap is None:
            return 0.0
        return max(0.0, self._clock() - self._snap.status.progress_wall)

    def render(self) -> Text:
        """The status line."""
        snap = self._snap
        if snap is None:
            return Text(" loading…")
        s = snap.status
        style = self.get_component_rich_style
        running = s.mode in ("playing", "seeking", "live")
        quiet = self.stale_seconds()
        stale = not running or quiet >= STALE_AFTER
        t = Text(no_wrap=True, overflow="ellipsis")
        mode = _MODE_TEXT.get(s.mode, s.mode)
        if s.mode == "seeking" and s.seeking:
            mode += f" {s.seeking}"
        t.append(
            f" {mode} ",
            style(
                "status--failed"
                if s.mode == "failed"
                else ("status--running" if running else "status--mode")
            ),
        )
        if s.mode != "live":  # a live engine follows the wall clock: no speed, no progress
            t.append(f"{speed_label(s.speed)} ", style("status--dim"))
        when = fmt.date_time(s.now_ns) if self.size.width >= 100 else fmt.clock_time(s.now_ns)
        t.append(when, style("status--stale" if stale else "status--time"))
        if running and quiet >= STALE_AFTER:
            t.append(f" STALE {quiet:.0f}s", style("status--halted"))
        if s.mode == "live":
            t.append(f" │ {fmt.count(s.events_processed)} events")
        else:
            pct = 100.0 * s.cursor / s.total_events if s.total_events else 100.0
            t.append(f" │ {fmt.count(s.cursor)}/{fmt.count(s.total_events)} ({pct:.1f}%)")
        t.append(f" │ {fmt.rate(s.events_per_s)}", style("status--dim"))
        state = TRADING_STATE_NAMES.get(s.trading_state, str(s.trading_state)).upper()
        t.append(" │ ")
        t.append(
            f" {state} ",
            style("status--active" if s.trading_state == TS_ACTIVE else "status--halted"),
        )
        if s.trading_state == TS_HALTED:
            t.append(" kill switch on", style("status--dim"))
        inst = snap.instrument
        if inst is not None:
            t.append(f" │ {inst.symbol}", style("status--time"))
        t.append(f" │ {snap.strategy}", style("status--dim"))
        return t
