"""A scrollable list of one-line rows drawn with the Line API (the tape and the alerts).

Subclasses say how many rows there are, what identifies a row's content (the cache key) and
how to draw one row. Rows are drawn only when visible, and Strips are cached by content in
an LRU cache cleared when the theme changes (the Toolong pattern).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip


class LineList(ScrollView, can_focus=True):
    """Rows 0..n-1 top to bottom, each one terminal line."""

    ALLOW_MAXIMIZE = True
    COMPONENT_CLASSES: ClassVar[set[str]] = {"lines--empty"}
    DEFAULT_CSS = """
    LineList { background: $surface; }
    LineList > .lines--empty { color: $text-muted; text-style: italic; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._cache: LRUCache[tuple, Strip] = LRUCache(2048)
        self._styles: dict[str, Style] = {}
        self._n = 0

    def row_count(self) -> int:
        """Rows to show."""
        return 0

    def row_key(self, i: int) -> Hashable:
        """What row i shows (equal keys draw equal strips)."""
        return i

    def row_segments(self, i: int, width: int) -> list[Segment]:
        """The segments of row i (padded or cut to width by the caller)."""
        return []

    def empty_text(self) -> str:
        """Shown on the first line when there are no rows."""
        return ""

    def style(self, component: str) -> Style:
        """The widget's style with a component class on top (cached until the theme changes)."""
        style = self._styles.get(component)
        if style is None:
            style = self.rich_style + self.get_component_rich_style(component)
            self._styles[component] = style
        return style

    def rows_changed(self) -> None:
        """Call after the data changed: resizes the virtual area and redraws."""
        self._n = self.row_count()
        self.virtual_size = Size(self.size.width, self._n)
        self.refresh()

    def notify_style_update(self) -> None:
        """The theme changed: cached strips carry old colours."""
        super().notify_style_update()
        self._cache.clear()
        self._styles.clear()

    def render_line(self, y: int) -> Strip:
        """Line y of the visible area."""
        scroll_x, scroll_y = self.scroll_offset
        i = y + scroll_y
        width = self.scrollable_content_region.width
        if i >= self._n:
            if i == 0 and self._n == 0:
                text = self.empty_text()
                return Strip(
                    [Segment(text[:width], self.style("lines--empty"))]
                ).adjust_cell_length(width, self.rich_style)
            return Strip.blank(width, self.rich_style)
        key = (self.row_key(i), width, self.app.theme)
        strip = self._cache.get(key)
        if strip is None:
            strip = Strip(self.row_segments(i, width)).adjust_cell_length(width, self.rich_style)
            self._cache[key] = strip
        return strip.crop(scroll_x, scroll_x + width)
