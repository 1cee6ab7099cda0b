"""The engine failed: what happened, and the traceback for a bug report."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from cockpit.snapshot import Failure


class ErrorScreen(ModalScreen[None]):
    """Shows an engine failure; the app stays usable behind it (Esc closes)."""

    DEFAULT_CSS = """
    ErrorScreen { align: center middle; background: $background 60%; }
    ErrorScreen > Vertical {
        width: 90%; height: 80%; border: thick $error; background: $panel; padding: 0 1;
    }
    ErrorScreen .error--title { text-style: bold; color: $error; width: 1fr; }
    ErrorScreen .error--message { margin: 1 0; width: 1fr; }
    ErrorScreen VerticalScroll { height: 1fr; background: $surface; }
    ErrorScreen .error--details { color: $text-muted; }
    ErrorScreen .error--keys { color: $text-muted; width: 1fr; }
    """
    BINDINGS = [Binding("escape,enter,q", "close", "Close", id="error_close")]

    def __init__(self, failure: Failure) -> None:
        super().__init__()
        self.failure = failure

    def compose(self) -> ComposeResult:
        """Title, message, traceback."""
        with Vertical():
            yield Label(self.failure.title, classes="error--title")
            yield Static(self.failure.message, classes="error--message", markup=False)
            with VerticalScroll():
                yield Static(self.failure.details, classes="error--details", markup=False)
            yield Label(
                "The engine stopped; the panes show its last state. Esc closes.",
                classes="error--keys",
            )

    def action_close(self) -> None:
        """Back to the panes."""
        self.dismiss(None)
