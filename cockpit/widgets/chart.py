"""Equity and price sparklines: the engine's equity samples and recent trade prices."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline

from cockpit import fmt
from cockpit.snapshot import Snapshot
from cockpit.widgets.textline import TextLine
from cockpit.widgets.throttle import DeferredDraw, Throttle

SERIES_POINTS = 256
"""Most recent points drawn (a sparkline has one column per point bucket anyway)."""


def _series(values) -> list[float]:
    """Sparkline data; a flat series draws nothing (Sparkline would draw full bars)."""
    if len(values) < 2 or values.min() == values.max():
        return []
    return [float(x) for x in values]


class Chart(DeferredDraw, Vertical, can_focus=True):
    """Two labelled sparklines: equity (all strategy rows) and the last trade prices."""

    ALLOW_MAXIMIZE = True
    DEFAULT_CSS = """
    Chart { background: $surface; height: 1fr; }
    Chart > TextLine { color: $text-muted; padding: 0 1; }
    Chart > Sparkline { height: 1fr; margin: 0 1; }
    Chart > #equity > .sparkline--max-color { color: $gain; }
    Chart > #equity > .sparkline--min-color { color: $loss; }
    Chart > #price > .sparkline--max-color { color: $ask; }
    Chart > #price > .sparkline--min-color { color: $bid; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._seen: tuple[int, int] = (-1, -1)
        self._throttle = Throttle()
        self._pending: Snapshot | None = None
        self._ready = False

    def compose(self) -> ComposeResult:
        """Labels above their sparklines."""
        yield TextLine("equity", id="equity-label")
        yield Sparkline([], id="equity")
        yield TextLine("price", id="price-label")
        yield Sparkline([], id="price")

    def show(self, snap: Snapshot) -> None:
        """Draw a new snapshot (only when the series changed)."""
        if not self._ready:
            self._pending = snap
            return
        key = (
            len(snap.equity) and int(snap.equity_ts[-1]),
            len(snap.trades.ts) and int(snap.trades.ts[-1]),
        )
        if key == self._seen:
            return
        if not self._throttle.due(snap, bool(self.region)):
            self._pending = snap  # hidden (another tab) or drawn recently: later
            return
        self._pending = None
        self._seen = key
        eq = snap.equity
        inst = snap.instrument
        eq = eq[-SERIES_POINTS:]
        if len(eq):
            lo, hi = fmt.money(float(eq.min())), fmt.money(float(eq.max()))
            text = f"equity {fmt.money(float(eq[-1]))} [{lo} … {hi}]"
        else:
            text = "equity: no samples yet"
        self.query_one("#equity-label", TextLine).set(Text(text))
        self.query_one("#equity", Sparkline).data = _series(eq)
        px = snap.trades.price[-SERIES_POINTS:]
        if len(px):
            lo, hi = fmt.price(inst, int(px.min())), fmt.price(inst, int(px.max()))
            text = f"price {fmt.price(inst, int(px[-1]))} [{lo} … {hi}]"
        else:
            text = "trades: none yet"
        self.query_one("#price-label", TextLine).set(Text(text))
        self.query_one("#price", Sparkline).data = _series(px)
