"""The one key table: every action of the cockpit, its key, its id and its help section.

The footer, the help screen and the command palette are generated from `TABLE`, and a user
keymap remaps keys by binding id (`load_keymap`), so a key is defined in exactly one place.

Safety actions (cancel all, flatten, kill switch, resume trading) are Ctrl combinations with
`priority=True`: they work in every mode and over any dialog, and each asks for a
confirmation that a stray key cannot give (a separate `y`, never Enter). Nothing depends on
an F-key (they break under screen and mosh); Ctrl+S, Ctrl+Q (flow control), Ctrl+A
(screen's prefix), Ctrl+B (tmux's prefix) and Ctrl+H/I/J/M (backspace, tab, newline, enter
on many terminals) are avoided.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from textual.binding import Binding

from engine.errors import UsageError


@dataclass(frozen=True)
class Entry:
    """One row of the key table."""

    section: str
    binding: Binding
    confirm: bool = False
    """Asks for a confirmation first (the safety actions)."""
    palette: bool = True
    """Offered in the command palette."""
    only: Literal["replay", "live"] | None = None
    """The kind of session the action means something in (None: both). Elsewhere the
    footer, the help screen and the palette leave it out and the key does nothing
    (`CockpitApp.check_action`)."""

    def applies(self, live: bool) -> bool:
        """Whether this entry applies to a live session (`live`) or a replay."""
        return self.only is None or (self.only == "live") == live


def _b(key: str, action: str, description: str, id: str, show: bool = True, **kw) -> Binding:
    return Binding(key, action, description, show=show, id=id, **kw)


TABLE: Final[tuple[Entry, ...]] = (
    # ---- replay
    # (a live session follows the venue: none of these apply to it)
    Entry("Replay", _b("space", "toggle_play", "Play/pause", "play"), only="replay"),
    Entry("Replay", _b("s", "step", "Step", "step"), only="replay"),
    Entry("Replay", _b("n", "step_to('fill')", "Next fill", "next_fill"), only="replay"),
    Entry(
        "Replay",
        _b("a", "step_to('alert')", "Next alert", "next_alert", show=False),
        only="replay",
    ),
    Entry(
        "Replay",
        _b("t", "step_to('trade')", "Next trade", "next_trade", show=False),
        only="replay",
    ),
    Entry(
        "Replay",
        _b("plus,equals_sign", "faster", "Faster", "faster", show=False, key_display="+"),
        only="replay",
    ),
    Entry(
        "Replay",
        _b("minus", "slower", "Slower", "slower", show=False, key_display="-"),
        only="replay",
    ),
    Entry(
        "Replay",
        _b("x", "max_speed", "As fast as possible", "max_speed", show=False),
        only="replay",
    ),
    Entry("Replay", _b("g", "jump", "Jump to time", "jump", show=False), only="replay"),
    # ---- trading (safety actions first)
    Entry(
        "Trading",
        _b("ctrl+f", "flatten", "Flatten", "flatten", priority=True),
        confirm=True,
    ),
    Entry(
        "Trading",
        _b("ctrl+x", "cancel_all", "Cancel all", "cancel_all", show=False, priority=True),
        confirm=True,
    ),
    Entry(
        "Trading",
        _b("ctrl+k", "kill", "Kill", "kill", priority=True),
        confirm=True,
    ),
    Entry(
        "Trading",
        _b("ctrl+r", "resume", "Resume trading", "resume", show=False, priority=True),
        confirm=True,
    ),
    Entry(
        "Trading",
        _b("u", "reconcile", "Reconcile unknown orders", "reconcile", show=False),
    ),
    Entry("Trading", _b("b", "manual('buy')", "Buy at price", "buy", show=False)),
    Entry("Trading", _b("v", "manual('sell')", "Sell at price", "sell", show=False)),
    # ---- view
    Entry("View", _b("c", "recentre", "Re-centre ladder", "recentre", show=False)),
    Entry(
        "View",
        _b(
            "right_square_bracket",
            "regroup(1)",
            "Coarser ticks",
            "group_coarser",
            show=False,
            key_display="]",
        ),
    ),
    Entry(
        "View",
        _b(
            "left_square_bracket",
            "regroup(-1)",
            "Finer ticks",
            "group_finer",
            show=False,
            key_display="[",
        ),
    ),
    Entry("View", _b("i", "next_instrument", "Next instrument", "instrument", show=False)),
    Entry("View", _b("f", "filter_orders", "Filter orders", "filter_orders", show=False)),
    Entry("View", _b("m", "maximise", "Maximise pane", "maximise", show=False)),
    Entry("View", _b("1", "show_pane('orders')", "Orders pane", "pane_orders", show=False)),
    Entry(
        "View", _b("2", "show_pane('positions')", "Positions pane", "pane_positions", show=False)
    ),
    Entry("View", _b("3", "show_pane('alerts')", "Alerts pane", "pane_alerts", show=False)),
    Entry("View", _b("4", "show_pane('trades')", "Trades pane", "pane_trades", show=False)),
    Entry("View", _b("5", "show_pane('chart')", "Chart pane", "pane_chart", show=False)),
    Entry(
        "View", _b("6", "show_pane('optimizer')", "Optimizer pane", "pane_optimizer", show=False)
    ),
    Entry("View", _b("ctrl+t", "next_theme", "Next theme", "theme", show=False)),
    # ---- optimizer (cockpit/optimizer_job.py; the pane is cockpit/widgets/optimizer.py)
    # (it searches the app's recorded data: a live session has none, and loading
    # parameters into a strategy trading real orders is not a palette entry away)
    Entry(
        "Optimizer",
        _b("o", "optimize", "Start optimization…", "optimize", show=False),
        only="replay",
    ),
    Entry(
        "Optimizer",
        _b("ctrl+o", "optimize_cancel", "Cancel optimization", "optimize_cancel", show=False),
        only="replay",
    ),
    Entry(
        "Optimizer",
        _b("l", "optimize_load", "Load best parameters", "optimize_load", show=False),
        only="replay",
    ),
    # ---- app
    Entry("App", _b("question_mark,h", "help", "Help", "help", key_display="?")),
    Entry("App", _b("q", "quit", "Quit", "quit")),
)

BINDINGS: Final[list[Binding]] = [e.binding for e in TABLE]
"""What CockpitApp.BINDINGS holds."""

BY_ID: Final[dict[str, Entry]] = {e.binding.id: e for e in TABLE if e.binding.id}
SECTIONS: Final[tuple[str, ...]] = ("Replay", "Trading", "View", "Optimizer", "App")
CONFIRM_ACTIONS: Final[frozenset[str]] = frozenset(e.binding.action for e in TABLE if e.confirm)
ONLY: Final[dict[str, Literal["replay", "live"]]] = {
    e.binding.action.split("(")[0]: e.only for e in TABLE if e.only is not None
}
"""Action name (without arguments) -> the only kind of session it applies to."""


def entries_for(live: bool) -> tuple[Entry, ...]:
    """The entries of `TABLE` that apply to a live session (`live`) or to a replay."""
    return tuple(e for e in TABLE if e.applies(live))


def applies(action: str, live: bool) -> bool:
    """Whether an action name (as `check_action` receives it) applies to this session."""
    only = ONLY.get(action)
    return only is None or (only == "live") == live


def default_keymap_path() -> Path:
    """$XDG_CONFIG_HOME/cockpit/keymap.toml (~/.config/cockpit/keymap.toml)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cockpit" / "keymap.toml"


def load_keymap(path: str | os.PathLike | None) -> dict[str, str]:
    """Read a keymap file: `binding id = "keys"` lines, at top level or under `[keys]`.

    Without a path, the default file is read if it exists. Unknown ids and keys that are
    not strings are a UsageError naming the file and the id.

        # ~/.config/cockpit/keymap.toml
        [keys]
        flatten = "ctrl+l"
        step = "period,s"
    """
    explicit = path is not None
    p = Path(path) if explicit else default_keymap_path()
    if not p.is_file():
        if explicit:
            raise UsageError(f"{p}: no such keymap file")
        return {}
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{p}: unreadable keymap: {exc}") from None
    keys = data.get("keys", data)
    if not isinstance(keys, dict):
        raise UsageError(f'{p}: [keys] must be a table of binding id = "keys"')
    out: dict[str, str] = {}
    for ident, value in keys.items():
        if ident not in BY_ID:
            known = ", ".join(sorted(BY_ID))
            raise UsageError(f"{p}: unknown binding id {ident!r} (known: {known})")
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"{p}: {ident} must be a non-empty string of keys, got {value!r}")
        out[ident] = value.strip()
    return out


def key_for(entry: Entry, keymap: dict[str, str]) -> str:
    """The keys that trigger an entry under a keymap (comma-separated Textual key names)."""
    return keymap.get(entry.binding.id or "", entry.binding.key)


def first_key(ident: str, keymap: dict[str, str]) -> str:
    """The first key of a binding id under a keymap (for "press X to ..." hints)."""
    return key_for(BY_ID[ident], keymap).split(",")[0].strip()
