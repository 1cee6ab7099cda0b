"""The orders pane: OMS state of working and recent orders, updated by key, filterable."""

from __future__ import annotations

from typing import ClassVar, Final

import numpy as np
from rich.text import Text
from textual.widgets import DataTable

from cockpit import fmt
from cockpit.snapshot import (
    OV_CID,
    OV_FILLED,
    OV_FLAGS,
    OV_INST,
    OV_OID,
    OV_PRICE,
    OV_QAHEAD,
    OV_QTY,
    OV_REASON,
    OV_SIDE,
    OV_STATUS,
    OV_STRAT,
    OV_TS,
    OV_TYPE,
    OV_VSTATE,
    Snapshot,
)
from cockpit.widgets.throttle import DeferredDraw, Throttle
from engine.codes import (
    OF_FLATTEN,
    OF_MANUAL,
    OT_MARKET,
    REASON_NAMES,
    ST_CANCELED,
    ST_DENIED,
    ST_EXPIRED,
    ST_FILLED,
    ST_PARTIALLY_FILLED,
    ST_REJECTED,
    STATE_NAMES,
    TERMINAL_STATES,
)
from engine.events import SIDE_BUY, SIDE_SELL

SHOW_DONE: Final = 30
"""Finished orders in the table at most (the most recent), after every working one. Each
finished order that scrolls out is a row removal, which costs a DataTable milliseconds."""

TRIM_AT: Final = 200
"""Rows in the table at which a running replay's finished orders are trimmed back."""

FILTERS: Final[tuple[str, ...]] = ("all", "working", "filled", "done")
"""Order filters the filter key cycles through ("done": canceled, rejected, denied, expired)."""

_COLUMNS: Final = (
    ("id", "id"),
    ("side", "side"),
    ("price", "price"),
    ("qty", "qty"),
    ("filled", "filled"),
    ("state", "state"),
    ("reason", "reason"),
    ("queue", "queue"),
    ("by", "by"),
    ("time", "time"),
)
"""Most useful first: a narrow pane shows the left columns and scrolls for the rest."""
_DONE = (ST_CANCELED, ST_REJECTED, ST_DENIED, ST_EXPIRED)


def matches(status: np.ndarray, flt: str) -> np.ndarray:
    """Which orders a filter keeps."""
    if flt == "working":
        return ~np.isin(status, TERMINAL_STATES)
    if flt == "filled":
        return (status == ST_FILLED) | (status == ST_PARTIALLY_FILLED)
    if flt == "done":
        return np.isin(status, _DONE)
    return np.ones(len(status), bool)


class OrdersTable(DeferredDraw, DataTable):
    """One row per order (key: order id); cells change in place, never a full clear."""

    ALLOW_MAXIMIZE = True
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "orders--buy",
        "orders--sell",
        "orders--done",
        "orders--filled",
    }
    DEFAULT_CSS = """
    OrdersTable { background: $surface; height: 1fr; }
    OrdersTable > .orders--buy { color: $bid; }
    OrdersTable > .orders--sell { color: $ask; }
    OrdersTable > .orders--done { color: $text-muted; }
    OrdersTable > .orders--filled { color: $own-order; }
    """

    def __init__(self, filter_name: str = "all", **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kw)
        self.filter_name = filter_name
        self._cells: dict[str, tuple] = {}
        self._snap: Snapshot | None = None
        self._throttle = Throttle(hz=2.0)
        self._pending: Snapshot | None = None
        self._ready = False  # drawn from on_mount on (a pane before layout has no region)
        for label, key in _COLUMNS:
            self.add_column(label, key=key)

    def on_mount(self) -> None:
        """Its title (DeferredDraw.on_mount then draws what arrived before)."""
        self.border_title = self.title()

    def title(self) -> str:
        """Pane title with the filter."""
        return f"Orders · {self.filter_name}"

    def set_filter(self, name: str) -> None:
        """Show only orders in a state group (see FILTERS)."""
        self.filter_name = name
        self.border_title = self.title()
        if self._snap is not None:
            self.show(self._snap)

    def show(self, snap: Snapshot) -> None:
        """Add, update and remove rows to match the snapshot."""
        if not self._ready:
            self._pending = snap
            return
        if self._snap is not None and snap.orders is self._snap.orders and not self._dirty_filter():
            return
        if not self._dirty_filter() and not self._throttle.due(snap, bool(self.region)):
            self._pending = snap  # hidden (another tab) or drawn recently: later
            return
        self._pending = None
        self._snap = snap
        rows = snap.orders
        rows = rows[matches(rows[:, OV_STATUS], self.filter_name)] if len(rows) else rows
        done = np.isin(rows[:, OV_STATUS], TERMINAL_STATES)
        rows = np.concatenate([rows[~done], rows[done][:SHOW_DONE]])
        want: dict[str, tuple] = {}
        for r in rows:
            want[str(int(r[OV_OID]))] = self._cells_of(r, snap)
        gone = [k for k in self._cells if k not in want]
        running = snap.status.mode in ("playing", "seeking")
        # Each removal asks for a layout pass of the whole screen (tens of ms at 160x48):
        # while the replay runs, finished orders that scroll out are removed in batches.
        if not running or len(self._cells) > TRIM_AT:
            for key in gone:
                self.remove_row(key)
                del self._cells[key]
        for key, cells in want.items():
            old = self._cells.get(key)
            if old is None:
                self.add_row(*cells, key=key)
            elif old != cells:
                for (_, col), new, was in zip(_COLUMNS, cells, old, strict=True):
                    if new != was:
                        self.update_cell(key, col, new)
            self._cells[key] = cells
        self._filter_seen = self.filter_name

    def _dirty_filter(self) -> bool:
        return getattr(self, "_filter_seen", None) != self.filter_name

    def _cells_of(self, r: np.ndarray, snap: Snapshot) -> tuple:
        inst_id = int(r[OV_INST])
        inst = snap.instruments[inst_id] if 0 <= inst_id < len(snap.instruments) else None
        status = int(r[OV_STATUS])
        side = int(r[OV_SIDE])
        flags = int(r[OV_FLAGS])
        if status in TERMINAL_STATES and status != ST_FILLED:
            style = self.get_component_rich_style("orders--done")
        elif status in (ST_FILLED, ST_PARTIALLY_FILLED):
            style = self.get_component_rich_style("orders--filled")
        else:
            style = None
        side_style = {
            SIDE_BUY: self.get_component_rich_style("orders--buy"),
            SIDE_SELL: self.get_component_rich_style("orders--sell"),
        }.get(side)
        if flags & OF_FLATTEN:
            by = "flatten"
        elif flags & OF_MANUAL or int(r[OV_STRAT]) < 0:
            by = "manual"
        else:
            by = f"s{int(r[OV_STRAT])}"
        price = "market" if int(r[OV_TYPE]) == OT_MARKET else fmt.price(inst, int(r[OV_PRICE]))
        queue = fmt.size(inst, int(r[OV_QAHEAD])) if int(r[OV_VSTATE]) == 1 else ""

        def cell(text: str, st=style) -> Text:
            return Text(text, style=st or "", justify="right" if text[:1].isdigit() else "left")

        return (
            cell(str(int(r[OV_CID]))),
            # The journal has no side: an order that began and ended within one chunk is "·".
            Text({SIDE_BUY: "buy", SIDE_SELL: "sell"}.get(side, "·"), style=side_style or ""),
            cell(price),
            cell(fmt.size(inst, int(r[OV_QTY]))),
            cell(fmt.size(inst, int(r[OV_FILLED]))),
            cell(STATE_NAMES.get(status, str(status))),
            cell(REASON_NAMES.get(int(r[OV_REASON]), str(int(r[OV_REASON])))),
            cell(queue),
            cell(by),
            cell(fmt.clock_time(int(r[OV_TS]))),
        )
