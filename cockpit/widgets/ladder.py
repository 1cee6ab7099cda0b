"""The order book ladder: a fixed price axis, asks above bids, our orders at their price.

Professional layout (a "DOM" ladder): one row per price (or per group of `group` ticks),
prices descending downwards; bid sizes left of the price column, ask sizes right of it,
each with a size bar growing out from the price; our own working orders and their queue
position (lots ahead of us at the venue) in their own column at their price (two columns,
buy left and sell right, when the pane is wide enough; one otherwise). The axis stays put
while the touch moves, so a price is always on the same row; it re-centres on the mid when
the touch leaves the view or when asked. The last row says the spread and the mid.

Drawn with the Line API: `render_line` builds one row from a precomputed row model, and
Strips are cached by row content (cleared when the theme changes), so a frame where only a
few levels changed re-renders only those rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Final

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.strip import Strip
from textual.widget import Widget

from cockpit import fmt
from cockpit.snapshot import BookView, Snapshot
from engine.book import NO_PRICE
from engine.events import SIDE_BUY
from engine.instruments import Instrument

GROUPS: Final[tuple[int, ...]] = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)
"""Ticks per ladder row, in the order the grouping keys step through."""

_NO_Q: Final = np.iinfo(np.int64).max


@dataclass
class LadderState:
    """What the user set on the ladder; kept by the app so a re-layout keeps it."""

    group_index: int = 0
    centre: int | None = None
    """Price (ticks, a multiple of the group) of the middle row; None: centre on the mid."""

    @property
    def group(self) -> int:
        """Ticks per row."""
        return GROUPS[self.group_index]


@dataclass(frozen=True)
class _Row:
    """One ladder row's content (hashable: the key of the strip cache)."""

    price: int
    bid: int = 0
    ask: int = 0
    own_bid: int = 0
    own_bid_q: int = -1  # lots ahead of our first buy order here, -1: none resting
    own_bid_pending: bool = False
    own_ask: int = 0
    own_ask_q: int = -1
    own_ask_pending: bool = False
    zone: str = "empty"  # "ask", "bid", "both", "spread", "empty"
    touch: bool = False
    last: bool = False


@dataclass
class _Model:
    rows: list[_Row] = field(default_factory=list)
    max_qty: int = 1
    price_width: int = 6
    size_width: int = 7
    footer: str = ""


class Ladder(Widget, can_focus=True):
    """Order book ladder on a fixed tick axis."""

    ALLOW_MAXIMIZE = True
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "ladder--header",
        "ladder--footer",
        "ladder--price",
        "ladder--touch",
        "ladder--spread",
        "ladder--bid",
        "ladder--ask",
        "ladder--bid-bar",
        "ladder--ask-bar",
        "ladder--own",
        "ladder--own-pending",
        "ladder--last",
        "ladder--rule",
        "ladder--resyncing",
    }
    DEFAULT_CSS = """
    Ladder {
        background: $surface;
        color: $foreground;
        height: 1fr;
    }
    Ladder > .ladder--header { background: $panel; color: $text-muted; text-style: bold; }
    Ladder > .ladder--footer { background: $panel; color: $text-muted; }
    Ladder > .ladder--price { color: $text; }
    Ladder > .ladder--touch { color: $text; background: $boost; text-style: bold; }
    Ladder > .ladder--spread { color: $text-disabled; }
    Ladder > .ladder--bid { color: $bid; }
    Ladder > .ladder--ask { color: $ask; }
    Ladder > .ladder--bid-bar { color: $text; background: $bid 35%; }
    Ladder > .ladder--ask-bar { color: $text; background: $ask 35%; }
    Ladder > .ladder--own { color: $own-order; text-style: bold; }
    Ladder > .ladder--own-pending { color: $own-order; text-style: italic; }
    Ladder > .ladder--last { color: $accent; text-style: bold; }
    Ladder > .ladder--rule { color: $panel-lighten-2; }
    Ladder > .ladder--resyncing { background: $warning; color: $text; text-style: bold; }
    Ladder.-resyncing { text-opacity: 50%; }
    """

    def __init__(self, state: LadderState | None = None, **kw) -> None:
        super().__init__(**kw)
        self.state = state or LadderState()
        self._snap: Snapshot | None = None
        self._model = _Model()
        self._cache: LRUCache[tuple, Strip] = LRUCache(1024)
        self._styles: dict[str, Style] = {}
        self.resyncing = False
        """A live session's book is being rebuilt: the levels shown are not the venue's."""

    # ---------------------------------------------------------------- public API

    def show(self, snap: Snapshot) -> None:
        """Draw a new snapshot (dimmed and labelled while a live book resyncs)."""
        self._snap = snap
        resyncing = _resyncing(snap)
        if resyncing != self.resyncing:
            self.resyncing = resyncing
            self.set_class(resyncing, "-resyncing")
            self.border_title = "Book · RESYNCING" if resyncing else "Book"
        self._rebuild()
        self.refresh()

    def recentre(self) -> None:
        """Put the mid back in the middle row."""
        self.state.centre = None
        self._rebuild()
        self.refresh()

    def regroup(self, delta: int) -> None:
        """Coarser (delta > 0) or finer (delta < 0) tick grouping; re-centres."""
        i = min(max(self.state.group_index + delta, 0), len(GROUPS) - 1)
        self.state.group_index = i
        self.recentre()

    @property
    def visible_prices(self) -> list[int]:
        """Price (ticks) of each body row, top to bottom (for tests)."""
        return [r.price for r in self._model.rows]

    # ---------------------------------------------------------------- Textual hooks

    def notify_style_update(self) -> None:
        """The theme changed: cached strips carry old colours."""
        super().notify_style_update()
        self._cache.clear()
        self._styles.clear()

    def on_resize(self) -> None:
        """A new height shows another number of rows."""
        self._rebuild()
        self.refresh()

    def render_line(self, y: int) -> Strip:
        """One row of the ladder."""
        width = self.size.width
        height = self.size.height
        m = self._model
        if y == 0:
            if self.resyncing:
                return self._text_line(
                    " RESYNCING: not the venue's book", width, "ladder--resyncing"
                )
            return self._header(width)
        if y == height - 1 and height > 2:
            return self._text_line(m.footer, width, "ladder--footer")
        r = y - 1
        if r >= len(m.rows):
            return Strip.blank(width, self.rich_style)
        row = m.rows[r]
        key = (row, width, m.max_qty, m.price_width, m.size_width, self.app.theme)
        strip = self._cache.get(key)
        if strip is None:
            strip = self._row_strip(row, width)
            self._cache[key] = strip
        return strip

    # ---------------------------------------------------------------- model

    def _rebuild(self) -> None:
        snap = self._snap
        body = max(0, self.size.height - 2)
        if snap is None or body == 0:
            self._model = _Model()
            return
        book = snap.book
        inst = snap.instrument
        g = self.state.group
        bb, ba = book.best_bid, book.best_ask
        centre = self.state.centre
        mid = _mid_ticks(bb, ba, book.last_trade_px)
        half = body // 2
        if mid is not None:
            touch = [p // g * g for p in (bb, ba) if p != NO_PRICE]
            if centre is None or any(abs(p - centre) > (half - 1) * g for p in touch):
                centre = mid // g * g  # re-centre: the touch left the view
        if centre is None:
            self._model = _Model(footer=" no market yet")
            return
        self.state.centre = centre
        top = centre + half * g
        bid_q = _bucket_sums(book.bid_px, book.bid_qty, top, g, body)
        ask_q = _bucket_sums(book.ask_px, book.ask_qty, top, g, body)
        own = _own_rows(book, top, g, body)
        bb_row = (top - bb // g * g) // g if bb != NO_PRICE else -1
        ba_row = (top - ba // g * g) // g if ba != NO_PRICE else body
        last_row = (top - book.last_trade_px // g * g) // g if book.last_trade_px else -1
        rows = []
        for r in range(body):
            b, a = int(bid_q[r]), int(ask_q[r])
            if a and b:
                zone = "both"
            elif a or (ba != NO_PRICE and r < ba_row):
                zone = "ask"
            elif b or (bb != NO_PRICE and r > bb_row):
                zone = "bid"
            elif ba_row < r < bb_row:
                zone = "spread"
            else:
                zone = "empty"
            rows.append(
                _Row(
                    price=top - r * g,
                    bid=b,
                    ask=a,
                    own_bid=int(own[0][r]),
                    own_bid_q=int(own[1][r]),
                    own_bid_pending=bool(own[2][r]),
                    own_ask=int(own[3][r]),
                    own_ask_q=int(own[4][r]),
                    own_ask_pending=bool(own[5][r]),
                    zone=zone,
                    touch=r in (bb_row, ba_row),
                    last=r == last_row,
                )
            )
        max_qty = int(max(bid_q.max(initial=0), ask_q.max(initial=0), 1))
        widest = max(len(fmt.price(inst, top)), len(fmt.price(inst, top - (body - 1) * g)))
        self._model = _Model(
            rows=rows,
            max_qty=max_qty,
            price_width=widest + 2,
            size_width=max(len(fmt.size(inst, max_qty)) + 2, 7),
            footer=_footer(inst, bb, ba, g),
        )

    # ---------------------------------------------------------------- drawing

    def _columns(self, width: int) -> tuple[int, int, int, bool]:
        """(own width, size width, price width, two own columns) for a pane width."""
        pw = self._model.price_width
        two = width >= 50
        seps = 4 if two else 3
        rest = max(width - pw - seps, 12)
        # Sizes get what their widest number needs (bars fill any extra); own orders the rest.
        n_own = 2 if two else 1
        size = min(self._model.size_width, max((rest - 6 * n_own) // 2, 4))
        own = max((rest - 2 * size) // n_own, 4)
        size = (rest - own * n_own) // 2
        return own, size, pw, two

    def _style(self, name: str) -> Style:
        # Computing a widget's rich style walks its ancestors: once per theme, not per cell.
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = self.rich_style + self.get_component_rich_style(name)
        return style

    def _header(self, width: int) -> Strip:
        own, size, pw, two = self._columns(width)
        parts = [fmt.fit("buy" if two else "own", own, ">"), fmt.fit("bid", size, ">")]
        parts.append(fmt.fit("price", pw, "^"))
        parts.append(fmt.fit("ask", size, "<"))
        if two:
            parts.append(fmt.fit("sell", own, "<"))
        return self._text_line("│".join(parts), width, "ladder--header")

    def _text_line(self, text: str, width: int, component: str) -> Strip:
        style = self._style(component)
        return Strip([Segment(fmt.fit(text, width), style)], width)

    def _own_text(self, qty: int, q: int, pending: bool, width: int) -> str:
        if not qty:
            return ""
        inst = self._inst
        base = fmt.short_size(inst, qty, width)
        if pending:
            extra = " ~"  # still travelling to the venue: no queue position yet
        elif q >= 0:
            extra = " q" + fmt.short_size(inst, q, max(width - len(base) - 2, 1))
        else:
            extra = ""
        return base + extra if len(base) + len(extra) <= width else base

    @property
    def _inst(self) -> Instrument | None:
        return self._snap.instrument if self._snap is not None else None

    def _row_strip(self, row: _Row, width: int) -> Strip:
        own_w, size_w, pw, two = self._columns(width)
        inst = self._inst
        rule = self._style("ladder--rule")
        segs: list[Segment] = []

        def own_cell(qty: int, q: int, pending: bool, align: str) -> None:
            text = self._own_text(qty, q, pending, own_w)
            style = self._style("ladder--own-pending" if pending else "ladder--own")
            segs.append(Segment(fmt.fit(text, own_w, align), style))

        if two:
            own_cell(row.own_bid, row.own_bid_q, row.own_bid_pending, ">")
        else:
            # One own column: the row's side decides whose order is shown.
            if row.own_ask:
                own_cell(row.own_ask, row.own_ask_q, row.own_ask_pending, ">")
            else:
                own_cell(row.own_bid, row.own_bid_q, row.own_bid_pending, ">")
        segs.append(Segment("│", rule))
        segs.extend(self._size_cell(row.bid, size_w, "bid", inst))
        segs.append(Segment("│", rule))
        if row.touch:
            pstyle = self._style("ladder--touch")
        elif row.zone in ("spread", "empty"):
            pstyle = self._style("ladder--spread")
        elif row.zone == "ask":
            pstyle = self._style("ladder--ask")
        else:
            pstyle = self._style("ladder--bid")
        ptext = fmt.fit(fmt.price(inst, row.price), pw - 2, ">")
        segs.append(Segment(" " + ptext, pstyle))
        segs.append(Segment("•" if row.last else " ", self._style("ladder--last")))
        segs.append(Segment("│", rule))
        segs.extend(self._size_cell(row.ask, size_w, "ask", inst))
        if two:
            segs.append(Segment("│", rule))
            own_cell(row.own_ask, row.own_ask_q, row.own_ask_pending, "<")
        strip = Strip(segs)
        return strip.adjust_cell_length(width, self.rich_style)

    def _size_cell(self, qty: int, width: int, side: str, inst: Instrument | None) -> list[Segment]:
        """A size right-aligned (bids) or left-aligned (asks) with a bar from the price."""
        text_style = self._style(f"ladder--{side}")
        if not qty:
            return [Segment(" " * width, text_style)]
        text = fmt.short_size(inst, qty, width - 1)
        bar = max(1, round(qty / self._model.max_qty * width))
        bar_style = self._style(f"ladder--{side}-bar")
        if side == "bid":
            cell = fmt.fit(text + " ", width, ">")
            return [
                Segment(cell[: width - bar], text_style),
                Segment(cell[width - bar :], bar_style),
            ]
        cell = fmt.fit(" " + text, width, "<")
        return [Segment(cell[:bar], bar_style), Segment(cell[bar:], text_style)]


# ---- helpers ----------------------------------------------------------------------------


def _mid_ticks(bb: int, ba: int, last: int) -> int | None:
    """Mid in whole ticks (rounded down), else the one side there is, else the last trade."""
    if bb != NO_PRICE and ba != NO_PRICE:
        return (bb + ba) // 2
    if bb != NO_PRICE:
        return bb
    if ba != NO_PRICE:
        return ba
    return last or None


def _bucket_sums(px: np.ndarray, qty: np.ndarray, top: int, g: int, rows: int) -> np.ndarray:
    """Lots per ladder row (row 0 holds the bucket starting at `top`)."""
    idx = (top - px // g * g) // g
    ok = (idx >= 0) & (idx < rows)
    return np.bincount(idx[ok], weights=qty[ok], minlength=rows).astype(np.int64)[:rows]


def _own_rows(book: BookView, top: int, g: int, rows: int) -> tuple[np.ndarray, ...]:
    """Per row: our buy lots, first queue, pending; our sell lots, first queue, pending."""
    out: list[np.ndarray] = []
    idx = (top - book.own_px // g * g) // g
    ok = (idx >= 0) & (idx < rows)
    for want_buy in (True, False):
        m = ok & ((book.own_side == SIDE_BUY) == want_buy)
        i = idx[m]
        qty = np.bincount(i, weights=book.own_qty[m], minlength=rows).astype(np.int64)
        q = np.full(rows, _NO_Q, np.int64)
        resting = book.own_resting[m]
        np.minimum.at(q, i[resting], book.own_qahead[m][resting])
        q[q == _NO_Q] = -1
        pending = np.bincount(i[~resting], minlength=rows) > 0
        # A level where some of ours rest and some travel shows the resting queue.
        pending &= q < 0
        out += [qty[:rows], q, pending[:rows]]
    return tuple(out)


def _resyncing(snap: Snapshot) -> bool:
    """Whether the snapshot's instrument is a live book out of sync with its venue."""
    venue, inst = snap.venue, snap.instrument
    if venue is None or inst is None:
        return False
    return any(sym == inst.symbol and not ok for sym, ok in venue.books_in_sync)


def _footer(inst: Instrument | None, bb: int, ba: int, g: int) -> str:
    sym = inst.symbol if inst is not None else "?"
    group = f" ×{g}t" if g > 1 else ""
    if bb == NO_PRICE or ba == NO_PRICE:
        return f" {sym}  one-sided book{group}"
    spread_t = ba - bb
    spread = fmt.price(inst, spread_t)
    mid = fmt.half_ticks_price(inst, bb + ba)
    return f" {sym} spr {spread} ({spread_t}t) mid {mid}{group}"
