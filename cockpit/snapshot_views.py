"""The snapshot's views of an engine's state, kept incrementally between snapshots.

`SnapshotViews` belongs to one bridge and runs on its engine thread only (it reads the
engine's tables and drains). Each call copies what one part of a `Snapshot` shows: the
selected instrument's book with our working orders in it, the recent trades, the orders
(working ones from the order table, finished ones remembered from the journal since the
engine reuses order slots), the alerts, the equity series and the portfolio. What was
drained so far is remembered, so building a snapshot reads only the new journal, fill,
alert and equity chunks.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

import numpy as np

from cockpit.snapshot import (
    OV_CID,
    OV_FILLED,
    OV_FLAGS,
    OV_INST,
    OV_N,
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
    BookView,
    Portfolio,
    PositionRow,
    Trades,
    frozen,
)
from engine.book import top_levels
from engine.codes import OT_LIMIT, R_NONE, TERMINAL_STATES
from engine.events import KIND_TRADE, SIDE_BUY, SIDE_SELL
from engine.portfolio import equity as row_equity
from engine.portfolio import unrealized
from engine.runner import Engine
from engine.state import (
    F_OID,
    F_QTY,
    F_SIDE,
    J_OID,
    J_PRICE,
    J_QTY,
    J_REASON,
    J_TO,
    J_TS,
    MK_LAST_PX,
    N_PEAK_LIVE,
    O_CID,
    O_FILLED,
    O_FLAGS,
    O_GEN,
    O_INST,
    O_OID,
    O_OTYPE,
    O_PRICE,
    O_QAHEAD,
    O_QTY,
    O_SIDE,
    O_STATUS,
    O_STRAT,
    O_TS_LAST,
    O_VSTATE,
    PF_COST,
    PF_FEES,
    PF_REALIZED,
    PI_OPEN_BUY,
    PI_OPEN_SELL,
    PI_POS,
    PI_VOLUME,
    RF_MAX_DD,
    RI_ENABLED,
    RI_STATE,
    SLOT_BITS,
    SLOT_MASK,
)
from engine.venue import V_RESTING

# ---- snapshot sizes ------------------------------------------------------------------------
BOOK_DEPTH: Final = 1024
"""Levels per side copied into a snapshot (covers a tall ladder with tick grouping)."""
TAPE_WINDOW: Final = 50_000
"""Events before the cursor searched for recent trades."""
TAPE_KEEP: Final = 512
"""Recent trades in a snapshot (the tape and the price series)."""
ENDED_KEEP: Final = 200
"""Finished orders kept in the orders view, most recent first."""
LIVE_KEEP: Final = 2000
"""Working orders in the orders view at most (the ladder gets all of them)."""
ALERTS_KEEP: Final = 500
EQUITY_KEEP: Final = 1024

_TERMINAL = np.array(TERMINAL_STATES, dtype=np.int64)


class SnapshotViews:
    """The parts of a snapshot from one engine, with what they remember between two.

    Call from the engine thread only, between chunks, after `engine.drain()`; call
    `orders()` before `book()` (the book marks our working orders from its result).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # What was drained so far and the orders we remember.
        self._drained = {"journal": 0, "fills": 0, "alerts": 0, "equity": 0}
        self._prev_live: dict[int, np.ndarray] = {}
        self._ended: OrderedDict[int, np.ndarray] = OrderedDict()
        self._alerts = np.zeros((0, 8), np.int64)
        self._alerts_total = 0
        self._eq_ts = np.zeros(0, np.int64)
        self._eq = np.zeros(0, np.float64)
        self._bid_px = np.zeros(BOOK_DEPTH, np.int64)
        self._bid_qty = np.zeros(BOOK_DEPTH, np.int64)
        self._ask_px = np.zeros(BOOK_DEPTH, np.int64)
        self._ask_qty = np.zeros(BOOK_DEPTH, np.int64)

    def _new_chunks(self, name: str, chunks: list[np.ndarray]) -> list[np.ndarray]:
        """The chunks of a drained list not seen by the previous call."""
        k = self._drained[name]
        self._drained[name] = len(chunks)
        return chunks[k:]

    def book(self, inst: int, live_ov: np.ndarray) -> BookView:
        """The book of instrument `inst`; our working limit orders from `live_ov`."""
        st = self.engine.state
        nb = int(top_levels(st.book, inst, SIDE_BUY, BOOK_DEPTH, self._bid_px, self._bid_qty))
        na = int(top_levels(st.book, inst, SIDE_SELL, BOOK_DEPTH, self._ask_px, self._ask_qty))
        own = live_ov[
            (live_ov[:, OV_INST] == inst)
            & (live_ov[:, OV_TYPE] == OT_LIMIT)
            & ~np.isin(live_ov[:, OV_STATUS], _TERMINAL)
        ]
        return BookView(
            inst=inst,
            bid_px=frozen(self._bid_px[:nb].copy()),
            bid_qty=frozen(self._bid_qty[:nb].copy()),
            ask_px=frozen(self._ask_px[:na].copy()),
            ask_qty=frozen(self._ask_qty[:na].copy()),
            own_px=frozen(own[:, OV_PRICE].copy()),
            own_side=frozen(own[:, OV_SIDE].copy()),
            own_qty=frozen(own[:, OV_QTY] - own[:, OV_FILLED]),
            own_qahead=frozen(own[:, OV_QAHEAD].copy()),
            own_resting=frozen(own[:, OV_VSTATE] == V_RESTING),
            last_trade_px=int(st.mk[inst, MK_LAST_PX]),
        )

    def trades(self, inst: int) -> Trades:
        """Recent market trades of instrument `inst`."""
        eng = self.engine
        cur = eng.cursor
        win = eng.events[max(0, cur - TAPE_WINDOW) : cur]
        sel = win[(win["kind"] == KIND_TRADE) & (win["instrument"] == inst)][-TAPE_KEEP:]
        return Trades(
            ts=frozen(sel["ts_local"].copy()),
            price=frozen(sel["price"].copy()),
            size=frozen(sel["size"].copy()),
            side=frozen(sel["side"].astype(np.int64)),
        )

    def orders(self) -> tuple[np.ndarray, np.ndarray]:
        """Working orders from the order table, finished ones from the journal.

        Returns:
            (the snapshot's orders table, frozen; the working orders' rows).
        """
        st = self.engine.state
        d = self.engine.drained
        peak = int(st.ctl[N_PEAK_LIVE])  # LIFO slot reuse: slots in use are all below peak
        slots = st.o[:peak]
        live = slots[slots[:, O_OID] >= 0]
        live_ov = _ov_rows(live)
        live_ov[:, OV_REASON] = R_NONE
        live_ids = set(live_ov[:, OV_OID].tolist())

        new_j = self._new_chunks("journal", d.journal)
        new_f = self._new_chunks("fills", d.fills)
        fills = np.concatenate(new_f) if new_f else np.zeros((0, 9), np.int64)
        fill_qty: dict[int, int] = {}
        fill_side: dict[int, int] = {}
        if len(fills):
            ids, inv = np.unique(fills[:, F_OID], return_inverse=True)
            sums = np.bincount(inv, weights=fills[:, F_QTY]).astype(np.int64)
            sides = np.zeros(len(ids), np.int64)
            sides[inv] = fills[:, F_SIDE]
            fill_qty = dict(zip(ids.tolist(), sums.tolist(), strict=True))
            fill_side = dict(zip(ids.tolist(), sides.tolist(), strict=True))
        jr = np.concatenate(new_j) if new_j else np.zeros((0, 10), np.int64)
        # Last journal row of each order in this batch (most recent orders only).
        last_rows: dict[int, np.ndarray] = {}
        if len(jr):
            rev = jr[::-1, J_OID]
            ids, idx = np.unique(rev, return_index=True)
            pos = len(jr) - 1 - idx
            keep = np.argsort(pos)[-(ENDED_KEEP + len(live_ids)) :]
            for oid, p in zip(ids[keep].tolist(), pos[keep].tolist(), strict=True):
                last_rows[oid] = jr[p]
        # Orders that stopped working since the last snapshot.
        gone = [o for o in self._prev_live if o not in live_ids]
        for oid in gone + [o for o in last_rows if o not in live_ids]:
            slot, gen = oid & SLOT_MASK, oid >> SLOT_BITS
            if 0 <= slot < len(st.o) and st.o[slot, O_GEN] == gen:
                # A freed slot keeps its last order's row until it is reused: exact figures.
                row = _ov_rows(st.o[slot : slot + 1])[0]
                row[OV_OID] = oid
                prev = self._prev_live.get(oid)
                row[OV_REASON] = prev[OV_REASON] if prev is not None else R_NONE
            else:
                base = self._prev_live.get(oid)
                if base is None:
                    base = self._ended.get(oid)
                if base is None:
                    jrow = last_rows.get(oid)
                    if jrow is None:
                        continue
                    base = np.zeros(OV_N, np.int64)
                    base[OV_OID] = oid
                    base[OV_CID] = jrow[2]
                    base[OV_INST] = jrow[3]
                    base[OV_STRAT] = jrow[4]
                    base[OV_PRICE] = jrow[J_PRICE]
                    base[OV_QTY] = jrow[J_QTY]
                    base[OV_SIDE] = fill_side.get(oid, 0)
                row = base.copy()
                row[OV_FILLED] += fill_qty.get(oid, 0)
            jrow = last_rows.get(oid)
            if jrow is not None:
                row[OV_STATUS] = jrow[J_TO]
                row[OV_REASON] = jrow[J_REASON]
                row[OV_TS] = jrow[J_TS]
            row[OV_QAHEAD] = 0
            self._ended[oid] = row
            self._ended.move_to_end(oid)
        while len(self._ended) > ENDED_KEEP:
            self._ended.popitem(last=False)
        # Reasons of the working orders' latest transitions.
        for i, oid in enumerate(live_ov[:, OV_OID].tolist()):
            jrow = last_rows.get(oid)
            if jrow is not None:
                live_ov[i, OV_REASON] = jrow[J_REASON]
            else:
                prev = self._prev_live.get(oid)
                if prev is not None:
                    live_ov[i, OV_REASON] = prev[OV_REASON]
        self._prev_live = {int(r[OV_OID]): r for r in live_ov[:LIVE_KEEP]}
        ended = list(self._ended.values())[::-1]
        rows = np.vstack([live_ov[:LIVE_KEEP], *ended]) if ended else live_ov[:LIVE_KEEP].copy()
        return frozen(rows.reshape(-1, OV_N)), live_ov

    def alerts(self) -> tuple[np.ndarray, int]:
        """(the most recent alerts, frozen; how many alerts there were in all)."""
        new = self._new_chunks("alerts", self.engine.drained.alerts)
        if new:
            rows = np.concatenate(new)
            self._alerts_total += len(rows)
            self._alerts = np.concatenate([self._alerts, rows])[-ALERTS_KEEP:]
        return frozen(self._alerts.copy()), self._alerts_total

    def equity(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, equity values) of the most recent equity samples, frozen."""
        d = self.engine.drained
        k = self._drained["equity"]
        new_ts, new_v = d.equity[k:], d.equity_value[k:]
        self._drained["equity"] = len(d.equity)
        if new_ts:
            ts = np.concatenate([self._eq_ts, *(c[:, 0] for c in new_ts)])
            self._eq_ts = ts[-EQUITY_KEEP:]
            self._eq = np.concatenate([self._eq, *new_v])[-EQUITY_KEEP:]
        return frozen(self._eq_ts.copy()), frozen(self._eq.copy())

    def portfolio(self) -> Portfolio:
        """Positions and PnL of every strategy row and instrument with activity."""
        st = self.engine.state
        n_rows, n_inst = st.pi.shape[0], st.pi.shape[1]
        rows = []
        for r in range(n_rows):
            strat = r if r < n_rows - 1 else -1
            for i in range(n_inst):
                pi, pf = st.pi[r, i], st.pf[r, i]
                if not (pi[PI_VOLUME] or pi[PI_POS] or pi[PI_OPEN_BUY] or pi[PI_OPEN_SELL]):
                    continue
                pos = int(pi[PI_POS])
                rows.append(
                    PositionRow(
                        row=r,
                        strat=strat,
                        inst=i,
                        position=pos,
                        avg_price_ticks=float(pf[PF_COST]) / pos if pos else 0.0,
                        realized=float(pf[PF_REALIZED]),
                        unrealized=float(unrealized(st, r, i)),
                        fees=float(pf[PF_FEES]),
                        open_buy=int(pi[PI_OPEN_BUY]),
                        open_sell=int(pi[PI_OPEN_SELL]),
                        volume=int(pi[PI_VOLUME]),
                    )
                )
        return Portfolio(
            rows=tuple(rows),
            equity=tuple(float(row_equity(st, r)) for r in range(n_rows)),
            max_drawdown=tuple(float(x) for x in st.rf[:, RF_MAX_DD]),
            row_state=tuple(int(x) for x in st.ri[:, RI_STATE]),
            enabled=tuple(bool(x) for x in st.ri[:, RI_ENABLED]),
        )


_OV_FROM_O: Final = (
    (OV_OID, O_OID),
    (OV_CID, O_CID),
    (OV_INST, O_INST),
    (OV_STRAT, O_STRAT),
    (OV_SIDE, O_SIDE),
    (OV_TYPE, O_OTYPE),
    (OV_PRICE, O_PRICE),
    (OV_QTY, O_QTY),
    (OV_FILLED, O_FILLED),
    (OV_STATUS, O_STATUS),
    (OV_QAHEAD, O_QAHEAD),
    (OV_TS, O_TS_LAST),
    (OV_FLAGS, O_FLAGS),
    (OV_VSTATE, O_VSTATE),
)


def _ov_rows(o_rows: np.ndarray) -> np.ndarray:
    """Orders-view rows from rows of the engine's order table."""
    out = np.zeros((len(o_rows), OV_N), np.int64)
    for dst, src in _OV_FROM_O:
        out[:, dst] = o_rows[:, src]
    return out
