"""Confirmation for a safety action: only a separate `y` confirms, never Enter."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Asks before flatten, cancel all, kill switch, resume; dismisses with True on `y`.

    Enter and space do nothing here: they are the keys most often pressed by accident (or
    still held from a previous action). Esc or `n` cancel. The app's other safety keys stay
    live over this dialog (they are priority bindings).
    """

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; background: $background 60%; }
    ConfirmScreen > Vertical {
        width: 60; max-width: 95%; height: auto;
        border: thick $error; background: $panel; padding: 1 2;
    }
    ConfirmScreen .confirm--title { text-style: bold; color: $error; width: 1fr; }
    ConfirmScreen .confirm--body { margin: 1 0; width: 1fr; }
    ConfirmScreen .confirm--keys { color: $text-muted; width: 1fr; }
    """
    BINDINGS = [
        Binding("y", "confirm", "Confirm", id="confirm_yes"),
        Binding("escape,n", "cancel", "Cancel", id="confirm_no"),
    ]

    def __init__(self, action: str, title: str, body: str) -> None:
        super().__init__()
        self.action_name = action
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        """Title, what will happen, which key does what."""
        with Vertical():
            yield Label(self.title_text, classes="confirm--title")
            yield Static(self.body, classes="confirm--body")
            yield Label("Press  y  to confirm ·  n / Esc  to cancel", classes="confirm--keys")

    def action_confirm(self) -> None:
        """Do it."""
        self.dismiss(True)

    def action_cancel(self) -> None:
        """Do not."""
        self.dismiss(False)
