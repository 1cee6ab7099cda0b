"""LiveSession's market data: the clients' rows to the engine, and the books' sync state
applied in band.

`MarketDataIntake` is a mixin of `session.LiveSession` (it is not used alone): the state it
works on is created by `LiveSession.__init__` (`md`, `md_extra`, `engine`, `options`,
`timings`, `book_listeners`, `_books`, `_in_sync`, `_pushed_ts`, `_pushed_at`, `_running`,
`_step_failed`, `_closed`, `_wake`), and it calls `_step` and `_cycle` (session_stepping).
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from time import perf_counter_ns

import numpy as np

from adapters.live.book_sync import SyncState
from adapters.live.session_stepping import LOGGER_NAME
from engine.events import FLAG_RESYNC, KIND_BOOK_CLEAR
from engine.state import MK_MID_X2

log = logging.getLogger(LOGGER_NAME)


class MarketDataIntake:
    """Market data rows and book sync (a LiveSession part)."""

    def _on_md_rows(self, rows: np.ndarray) -> None:
        """The market data client's rows of one message (on the event loop)."""
        if self._closed:  # frames still parsed while the feed closes: no session, no book
            return
        t = time.time_ns()
        self.timings.add("decode", t - int(rows[0]["ts_local"]))
        self._sync_books(rows)
        assert self.engine is not None
        last = self._pushed_ts
        if self.md_extra and int(rows[0]["ts_local"]) < last:
            # Two connections (USD-M books and trades) each stamp in order, but a frame one
            # of them held (a rotation overlap) may be older than what the other pushed.
            rows = rows.copy()
            rows["ts_local"] = np.maximum(rows["ts_local"], last)
        self.engine.push_events(rows)
        self._pushed_ts = int(rows[-1]["ts_local"])
        self._pushed_at = perf_counter_ns()
        if self.options.step_on_data and self._running and not self._step_failed:
            self._step()
        else:
            self._wake.set()

    def _sync_books(self, rows: np.ndarray) -> None:
        """Apply book sync changes in band: step through what came before, then flip."""
        resync_clear = (
            len(rows) == 1
            and rows[0]["kind"] == KIND_BOOK_CLEAR
            and (int(rows[0]["flags"]) & FLAG_RESYNC) != 0
        )
        changed = []
        for sym, iid in self._books.items():
            now_in = self.md.sequencer(sym).state != SyncState.WAIT
            if resync_clear and int(rows[0]["instrument"]) == iid:
                now_in = False  # a lost connection's clear comes before the book's reset
            if now_in != self._in_sync[iid]:
                changed.append((sym, iid, now_in))
        if not changed:
            return
        if self._running:
            self._cycle()
        assert self.engine is not None
        for sym, iid, now_in in changed:
            self.engine.set_in_sync(iid, now_in)
            self._in_sync[iid] = now_in
            log.info("live session: %s book %s", sym, "in sync" if now_in else "NOT in sync")
            for listener in list(self.book_listeners):
                try:
                    listener(sym, now_in)
                except Exception:
                    log.exception("live session: a book listener raised")

    def _mid(self, iid: int) -> Decimal | None:
        """The engine book's mid price (for the notional rule of market orders)."""
        if self.engine is None:
            return None
        m2 = int(self.engine.state.mk[iid, MK_MID_X2])
        if m2 <= 0:
            return None
        return self.md.instruments[iid].ticks_to_price(m2) / 2

    def in_sync(self, symbol: str) -> bool:
        """Whether the engine currently allows orders on `symbol`'s book."""
        iid = self._books.get(symbol)
        return iid is not None and self._in_sync.get(iid, False)
