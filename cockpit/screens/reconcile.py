"""The start-up reconciliation diff of a live session: trading stays halted until `y`."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class ReconcileScreen(ModalScreen[bool]):
    """The venue differs from the order journal: show how; dismiss with True on `y`.

    As for the safety actions (cockpit/screens/confirm.py), only a separate `y`
    acknowledges, never Enter or space. Esc or `n` close the dialog and trading stays
    halted (the venue bar says a reconciliation is pending; Ctrl+R brings this back).
    """

    DEFAULT_CSS = """
    ReconcileScreen { align: center middle; background: $background 60%; }
    ReconcileScreen > Vertical {
        width: 100; max-width: 95%; height: auto; max-height: 90%;
        border: thick $error; background: $panel; padding: 1 2;
    }
    ReconcileScreen .reconcile--title { text-style: bold; color: $error; width: 1fr; }
    ReconcileScreen VerticalScroll { height: auto; max-height: 20; margin: 1 0; }
    ReconcileScreen .reconcile--keys { color: $text-muted; width: 1fr; }
    """
    BINDINGS = [
        Binding("y", "acknowledge", "Acknowledge", id="reconcile_yes"),
        Binding("escape,n", "keep_halted", "Keep halted", id="reconcile_no"),
    ]

    def __init__(self, lines: tuple[str, ...]) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        """Title, one line per difference, which key does what."""
        with Vertical():
            yield Label(
                "The venue differs from the order journal: trading is halted",
                classes="reconcile--title",
            )
            with VerticalScroll():
                yield Static("\n".join(self.lines), id="reconcile-lines", markup=False)
            yield Label(
                "Press  y  to acknowledge and let the strategies trade ·  "
                "n / Esc  to keep trading halted",
                classes="reconcile--keys",
            )

    def action_acknowledge(self) -> None:
        """The user has read the differences."""
        self.dismiss(True)

    def action_keep_halted(self) -> None:
        """Not now: trading stays halted."""
        self.dismiss(False)
