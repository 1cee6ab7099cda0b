"""Every key, generated from the binding table (with the user's keymap applied)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from cockpit.bindings import SECTIONS, entries_for, key_for


def _keys_text(keys: str, app) -> str:
    shown = []
    for k in keys.split(","):
        k = k.strip()
        shown.append(app.get_key_display(Binding(k, "")) if app is not None else k)
    return " / ".join(shown)


def help_table(
    keymap: dict[str, str], app=None, palette_key: str = "ctrl+p", *, live: bool = False
) -> Table:
    """The key table as a Rich table: section, keys, action, notes.

    Only the entries that apply to a replay, or to a live session (`live`), are listed;
    a section left empty is left out.
    """
    entries = entries_for(live)
    t = Table(box=None, show_header=True, header_style="bold", pad_edge=False, expand=True)
    t.add_column("keys", no_wrap=True)
    t.add_column("action")
    t.add_column("id", style="dim", no_wrap=True)
    for section in SECTIONS:
        rows = [e for e in entries if e.section == section]
        if not rows and section != "App":
            continue
        t.add_row(Text(section, style="bold underline"), "", "")
        for e in rows:
            note = " (asks to confirm)" if e.confirm else ""
            t.add_row(
                _keys_text(key_for(e, keymap), app),
                e.binding.description + note,
                e.binding.id or "",
            )
        if section == "App":
            t.add_row(_keys_text(palette_key, app), "Command palette (every action)", "")
    return t


class HelpScreen(ModalScreen[None]):
    """The key table; Esc, q or ? close it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; background: $background 60%; }
    HelpScreen > Vertical {
        width: 80; max-width: 100%; height: 90%; max-height: 100%;
        border: round $primary; background: $panel; padding: 0 1;
    }
    HelpScreen .help--title { text-style: bold; width: 1fr; }
    HelpScreen VerticalScroll { height: 1fr; }
    HelpScreen .help--keys { color: $text-muted; width: 1fr; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help_close")]

    def __init__(self, keymap: dict[str, str]) -> None:
        super().__init__()
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        """Title, table, how to close."""
        with Vertical():
            yield Label("cockpit keys", classes="help--title")
            with VerticalScroll():
                yield Static(
                    help_table(
                        self.keymap,
                        self.app,
                        self.app.COMMAND_PALETTE_BINDING,
                        live=getattr(getattr(self.app, "bridge", None), "live", False),
                    ),
                    id="help-table",
                )
            yield Label(
                "Safety keys work everywhere, even over dialogs. Remap keys by id in "
                "~/.config/cockpit/keymap.toml or --keymap FILE.  Esc closes.",
                classes="help--keys",
            )

    def action_close(self) -> None:
        """Back to the panes."""
        self.dismiss(None)
