"""Jump to a time: run forward until the engine clock reaches it, then pause."""

from __future__ import annotations

import datetime as dt
import re

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from cockpit import fmt

_REL = re.compile(r"^\+\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$")
_UNIT_NS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_time(text: str, now_ns: int, first_ts: int) -> int | str:
    """Engine time (ns) for the text, or a message saying what is wrong.

    Accepts `+30s`, `+5m`, `+1.5h`, `+250ms` (from now), `HH:MM[:SS[.fff]]` (that time of
    day, UTC, on the day of the engine clock), an ISO date-time (UTC unless it says), or a
    raw integer of ns.
    """
    text = text.strip()
    base = now_ns if now_ns > 0 else first_ts  # before the first event the clock reads 0
    m = _REL.match(text)
    if m:
        return base + int(float(m.group(1)) * _UNIT_NS[m.group(2) or "s"])
    if text.isdigit() and len(text) > 12:
        return int(text)
    day = dt.datetime.fromtimestamp(base // 1_000_000_000, dt.UTC).date()
    for pattern in ("%H:%M:%S.%f", "%H:%M:%S", "%H:%M"):
        try:
            t = dt.datetime.strptime(text, pattern).time()
        except ValueError:
            continue
        when = dt.datetime.combine(day, t, dt.UTC)
        return _to_ns(when)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return f"{text!r}: use +30s, +5m, HH:MM:SS or an ISO date-time"
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return _to_ns(when)


def _to_ns(when: dt.datetime) -> int:
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


class JumpScreen(ModalScreen[int | None]):
    """One input; Enter jumps, Esc cancels."""

    DEFAULT_CSS = """
    JumpScreen { align: center middle; background: $background 60%; }
    JumpScreen > Vertical {
        width: 64; max-width: 95%; height: auto; border: thick $primary;
        background: $panel; padding: 0 1;
    }
    JumpScreen .jump--title { text-style: bold; width: 1fr; }
    JumpScreen .jump--error { color: $error; width: 1fr; }
    JumpScreen .jump--keys { color: $text-muted; width: 1fr; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="jump_cancel")]

    def __init__(self, now_ns: int, first_ts: int, last_ts: int) -> None:
        super().__init__()
        self.now_ns = now_ns
        self.first_ts = first_ts
        self.last_ts = last_ts

    def compose(self) -> ComposeResult:
        """Title, input, hints."""
        with Vertical():
            yield Label("Jump to time (forward only)", classes="jump--title")
            yield Label(
                f"now {fmt.date_time(self.now_ns)} · data ends {fmt.date_time(self.last_ts)}"
            )
            yield Input("+10s", id="when", placeholder="+30s, +5m, HH:MM:SS, ISO time")
            yield Label("", id="error", classes="jump--error")
            yield Label("Enter jumps · Esc cancels", classes="jump--keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Parse and jump."""
        ts = parse_time(event.value, self.now_ns, self.first_ts)
        if isinstance(ts, str):
            self.query_one("#error", Label).update(ts)
            return
        if ts <= self.now_ns:
            self.query_one("#error", Label).update("that is not after the engine's time")
            return
        self.dismiss(ts)

    def action_cancel(self) -> None:
        """Stay where we are."""
        self.dismiss(None)
