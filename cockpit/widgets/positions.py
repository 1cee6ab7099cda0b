"""Positions and PnL per strategy row and instrument, as the engine's portfolio has them."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable

from cockpit import fmt
from cockpit.snapshot import Snapshot
from cockpit.widgets.textline import TextLine
from cockpit.widgets.throttle import DeferredDraw, Throttle
from engine.codes import TRADING_STATE_NAMES, TS_ACTIVE

_COLUMNS = ("book", "inst", "position", "avg price", "unrealized", "realized", "fees", "open b/s")


class PositionsTable(DataTable):
    """One row per (strategy row, instrument) that has traded or has orders working."""

    ALLOW_MAXIMIZE = True
    COMPONENT_CLASSES: ClassVar[set[str]] = {"positions--gain", "positions--loss"}
    DEFAULT_CSS = """
    PositionsTable { background: $surface; height: 1fr; }
    PositionsTable > .positions--gain { color: $gain; }
    PositionsTable > .positions--loss { color: $loss; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", **kw)
        self._cells: dict[str, tuple] = {}
        self._snap: Snapshot | None = None
        for label in _COLUMNS:
            self.add_column(label, key=label)

    def _money(self, value: float) -> Text:
        if value > 0:
            style = self.get_component_rich_style("positions--gain")
        elif value < 0:
            style = self.get_component_rich_style("positions--loss")
        else:
            style = ""
        return Text(fmt.money(value), style=style, justify="right")

    def _book_name(self, snap: Snapshot, row: int) -> str:
        n = len(snap.portfolio.equity)
        return "manual" if row == n - 1 else f"{snap.strategy}#{row}"

    def show(self, snap: Snapshot) -> None:
        """Add, update and remove rows to match the snapshot."""
        if self._snap is not None and snap.portfolio is self._snap.portfolio:
            return
        self._snap = snap
        pf = snap.portfolio
        want: dict[str, tuple] = {}
        for p in pf.rows:
            inst = snap.instruments[p.inst] if p.inst < len(snap.instruments) else None
            avg = fmt.price(inst, round(p.avg_price_ticks)) if p.position else ""
            want[f"{p.row}:{p.inst}"] = (
                Text(self._book_name(snap, p.row)),
                Text(inst.symbol if inst else str(p.inst)),
                Text(fmt.size(inst, p.position), justify="right"),
                Text(avg, justify="right"),
                self._money(p.unrealized),
                self._money(p.realized),
                Text(fmt.money(-p.fees), justify="right"),
                Text(f"{fmt.size(inst, p.open_buy)}/{fmt.size(inst, p.open_sell)}"),
            )
        for key in [k for k in self._cells if k not in want]:
            self.remove_row(key)
            del self._cells[key]
        for key, cells in want.items():
            old = self._cells.get(key)
            if old is None:
                self.add_row(*cells, key=key)
            elif old != cells:
                for col, new, was in zip(_COLUMNS, cells, old, strict=True):
                    if new != was:
                        self.update_cell(key, col, new)
            self._cells[key] = cells


class EquityLine(TextLine):
    """Equity, worst drawdown and trading state of each strategy row, on one line."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"equity--gain", "equity--loss", "equity--off"}
    DEFAULT_CSS = """
    EquityLine { background: $panel; padding: 0 1; }
    EquityLine > .equity--gain { color: $gain; }
    EquityLine > .equity--loss { color: $loss; }
    EquityLine > .equity--off { color: $alert-critical; text-style: bold; }
    """

    def show(self, snap: Snapshot) -> None:
        """Draw a new snapshot."""
        pf = snap.portfolio
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append("equity ")
        t.append_text(self._money(pf.total_equity))
        n = len(pf.equity)
        for row, eq in enumerate(pf.equity):
            if row == n - 1 and not eq and not any(p.row == row for p in pf.rows):
                continue  # manual trading that never traded
            name = "manual" if row == n - 1 else f"{snap.strategy}#{row}"
            t.append(f" │ {name} ")
            t.append_text(self._money(eq))
            t.append(f" dd {fmt.money(-pf.max_drawdown[row])}")
            if not pf.enabled[row]:
                t.append(" DISABLED", self.get_component_rich_style("equity--off"))
            elif pf.row_state[row] != TS_ACTIVE:
                state = TRADING_STATE_NAMES.get(pf.row_state[row], "?").upper()
                t.append(f" {state}", self.get_component_rich_style("equity--off"))
        self.set(t)

    def _money(self, value: float) -> Text:
        if value > 0:
            return Text(fmt.money(value), style=self.get_component_rich_style("equity--gain"))
        if value < 0:
            return Text(fmt.money(value), style=self.get_component_rich_style("equity--loss"))
        return Text(fmt.money(value))


class PositionsPane(DeferredDraw, Vertical, can_focus=False):
    """The equity line above the positions table."""

    ALLOW_MAXIMIZE = True
    DEFAULT_CSS = """
    PositionsPane { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        """Equity line, then the table."""
        yield EquityLine(id="equity-line")
        yield PositionsTable(id="positions-table")

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._throttle = Throttle()
        self._pending: Snapshot | None = None
        self._ready = False

    def show(self, snap: Snapshot) -> None:
        """Draw a new snapshot (at most SLOW_PANE_HZ while the replay runs)."""
        if not self._ready:
            self._pending = snap
            return
        if not self._throttle.due(snap, bool(self.region)):
            self._pending = snap  # hidden (another tab) or drawn recently: later
            return
        self._pending = None
        for child in self.children:
            child.show(snap)
