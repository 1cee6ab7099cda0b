"""The main screen: status bar, ladder and the other panes, footer.

Two arrangements, chosen by terminal size and recomposed when a resize crosses the
breakpoint: "wide" (at least `WIDE_COLUMNS` x `WIDE_ROWS`) shows every pane at once;
"narrow" (80x24 and up) shows the ladder beside tabs holding the other panes. Panes keep no
state of their own that matters: the app holds the ladder's axis and grouping, the orders
filter and the open tab, and the next poll redraws the new panes from the newest snapshot.
"""

from __future__ import annotations

from typing import Final

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, TabbedContent, TabPane

from cockpit.snapshot import Snapshot
from cockpit.widgets.alerts import AlertsLog
from cockpit.widgets.chart import Chart
from cockpit.widgets.ladder import Ladder
from cockpit.widgets.optimizer import OptimizerPane
from cockpit.widgets.orders import OrdersTable
from cockpit.widgets.positions import PositionsPane
from cockpit.widgets.status import StatusBar
from cockpit.widgets.trades import Tape
from cockpit.widgets.venue import VenueBar

WIDE_COLUMNS: Final = 120
WIDE_ROWS: Final = 32

PANES: Final[tuple[tuple[str, str, str], ...]] = (
    ("orders", "Orders", "Orders"),
    ("positions", "Positions & PnL", "PnL"),
    ("alerts", "Alerts", "Alerts"),
    ("trades", "Trades", "Tape"),
    ("chart", "Chart", "Chart"),
    ("optimizer", "Optimizer", "Opt"),
)
"""Pane ids, titles, and short titles for the tabs of the narrow layout, in tab order."""


def layout_for(width: int, height: int) -> str:
    """'wide' or 'narrow' for a terminal size."""
    return "wide" if width >= WIDE_COLUMNS and height >= WIDE_ROWS else "narrow"


class MainScreen(Screen):
    """Status bar, panes, footer."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.layout_name = "narrow"
        self._panes: list[Widget] | None = None

    def _pane(self, name: str) -> Widget:
        app = self.app
        pane: Widget
        if name == "orders":
            pane = OrdersTable(app.orders_filter, id="orders")
        elif name == "positions":
            pane = PositionsPane(id="positions")
        elif name == "alerts":
            pane = AlertsLog(id="alerts")
        elif name == "trades":
            pane = Tape(id="trades")
        elif name == "chart":
            pane = Chart(id="chart")
        else:
            pane = OptimizerPane(id="optimizer")
        pane.add_class("pane")
        pane.border_title = {p[0]: p[1] for p in PANES}[name]
        return pane

    def compose(self) -> ComposeResult:
        """The arrangement for the current terminal size."""
        app = self.app
        self.layout_name = layout_for(app.size.width, app.size.height)
        self._panes = None
        yield StatusBar(app.bridge_clock, id="status")
        yield VenueBar(id="venue")  # hidden unless the bridge follows a live session
        ladder = Ladder(app.ladder_state, id="ladder", classes="pane")
        ladder.border_title = "Book"
        if self.layout_name == "wide":
            with Horizontal(id="body", classes="wide"):
                yield ladder
                with Vertical(id="middle"):
                    yield self._pane("trades")
                    yield self._pane("chart")
                with Vertical(id="right"):
                    yield self._pane("orders")
                    yield self._pane("positions")
                    yield self._pane("alerts")
                    yield self._pane("optimizer")
        else:
            with Horizontal(id="body", classes="narrow"):
                yield ladder
                with TabbedContent(id="tabs", initial=f"tab-{app.current_tab}"):
                    for name, _, short in PANES:
                        with TabPane(short, id=f"tab-{name}"):
                            yield self._pane(name)
        yield Footer(compact=self.layout_name == "narrow")

    def on_mount(self) -> None:
        """Keys go to the ladder first."""
        self.query_one(Ladder).focus()

    def on_resize(self) -> None:
        """Re-arrange when the terminal crosses the wide/narrow breakpoint."""
        want = layout_for(self.app.size.width, self.app.size.height)
        if want != self.layout_name:
            self.layout_name = want
            self._panes = None
            self.refresh(recompose=True)
            self.app.force_redraw()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """Remember the open tab across re-layouts."""
        pane_id = event.pane.id or ""
        self.app.current_tab = pane_id.removeprefix("tab-")
        self.app.force_redraw()  # hidden panes skip snapshots: draw the newest now

    def panes(self) -> list[Widget]:
        """Every widget that draws snapshots."""
        if self._panes is None:
            self._panes = [
                w for w in self.query(".pane, StatusBar, VenueBar") if hasattr(w, "show")
            ]
        return self._panes

    def show(self, snap: Snapshot) -> None:
        """Hand a new snapshot to every pane."""
        for pane in self.panes():
            if pane.is_attached:
                pane.show(snap)

    def tick(self) -> None:
        """No new snapshot: only the status bar's staleness moves."""
        for pane in self.panes():
            if isinstance(pane, StatusBar):
                pane.tick()

    def show_pane(self, name: str) -> None:
        """Bring a pane forward (its tab) and focus it."""
        tabs = self.query(TabbedContent)
        if tabs:
            tabs.first().active = f"tab-{name}"
            self.app.current_tab = name
        target = self.query(f"#{name}")
        if target:
            self.set_focus(target.first())
