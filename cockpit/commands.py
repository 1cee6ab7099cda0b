"""The command palette: every action of the key table, plus the cockpit's themes."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from cockpit.bindings import entries_for, key_for
from themes import THEME_NAMES


def palette_entries(app) -> Iterator[tuple[str, str, str]]:
    """(name, action, help) of every palette entry that applies to the app's session
    (replay or live), with the app's keymap."""
    keymap = getattr(app, "keymap_overrides", {})
    live = getattr(getattr(app, "bridge", None), "live", False)
    for e in entries_for(live):
        if not e.palette:
            continue
        keys = key_for(e, keymap)
        shown = " / ".join(app.get_key_display(Binding(k.strip(), "")) for k in keys.split(","))
        note = " · asks to confirm" if e.confirm else ""
        yield e.binding.description, e.binding.action, f"{e.section} · {shown}{note}"
    for name in THEME_NAMES:
        yield f"Theme: {name}", f"set_theme('{name}')", "View · switch theme"


class CockpitCommands(Provider):
    """Generated from cockpit.bindings.TABLE, so a new key is a new palette entry."""

    def _entries(self) -> Iterator[tuple[str, str, str]]:
        return palette_entries(self.app)

    async def discover(self) -> Hits:
        """Every action, for an empty query."""
        for name, action, help_text in self._entries():
            yield DiscoveryHit(name, partial(self.app.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        """Actions whose name matches the query."""
        matcher = self.matcher(query)
        for name, action, help_text in self._entries():
            score = matcher.match(name)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(name),
                    partial(self.app.run_action, action),
                    help=help_text,
                )
