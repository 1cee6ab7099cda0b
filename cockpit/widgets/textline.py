"""One line of text that can change every frame without a layout pass.

`Static.update` and `Label.update` ask for a new layout (the text might need another
size), and a layout pass re-renders the whole screen: at 20 frames a second that costs more
than every pane's drawing together. A TextLine is always one row high and only repaints.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class TextLine(Widget):
    """A single row of rich text."""

    DEFAULT_CSS = """
    TextLine { height: 1; width: 1fr; }
    """

    def __init__(self, text: str | Text = "", **kw) -> None:
        super().__init__(**kw)
        self._text = Text(text) if isinstance(text, str) else text

    @property
    def text(self) -> Text:
        """What the line shows."""
        return self._text

    def set(self, text: str | Text) -> None:
        """Show new text (repaints only if it changed)."""
        new = Text(text) if isinstance(text, str) else text
        if new.plain != self._text.plain or new.spans != self._text.spans:
            self._text = new
            self.refresh()

    def render(self) -> Text:
        """The text, cut at the edge."""
        t = self._text.copy()
        t.no_wrap = True
        t.overflow = "ellipsis"
        return t
