"""LiveSession's venue events: execution events (its own orders and inherited ones),
the reconciliation at start, USD-M account updates (funding) and position drift.

`ExecutionHandling` is a mixin of `session.LiveSession` (it is not used alone): the state it
works on is created by `LiveSession.__init__` (`execution`, `engine`, `orders`, `journal`,
`md`, `symbols`, `options`, `environment`, `inherited`, `funding`, `drift`,
`reconcile_report`, `_inherited_cancels`, `_inherited_qty`, `_reconcile_pending`,
`_records`, `_books`, `_wake`, `_closed`), and it uses the class's `futures` and
`engine_positions`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal

from adapters.live.binance_futures_exec import BinanceFuturesExec
from adapters.live.binance_futures_messages import AccountUpdate
from adapters.live.exec_events import ExecEvent
from adapters.live.order_records import Marker, Record
from adapters.live.order_state import rebuild
from adapters.live.secrets import VenueRequestError
from adapters.live.session_drift import PositionDrift, drift_markers
from adapters.live.session_inherited import book_inherited_fill, inherited_event
from adapters.live.session_positions import (
    book_positions,
    journal_positions,
    with_venue_positions,
)
from adapters.live.session_reconcile import BinanceQueries, reconcile
from adapters.live.session_stepping import LOGGER_NAME
from engine.commands import CMD_HALT, Command

log = logging.getLogger(LOGGER_NAME)


class ExecutionHandling:
    """Execution events, reconciliation, funding and drift (a LiveSession part)."""

    def _on_exec(self, ev: ExecEvent) -> None:
        """One execution event (on the event loop): to the engine, and to the journal."""
        assert self.orders is not None and self.engine is not None
        ts = max(ev.recv_ts_ns or time.time_ns(), self.engine.now)
        self._records.extend(self.orders.on_exec(ev, ts))
        self._wake.set()

    def _foreign(self, ev: ExecEvent) -> list[Record]:
        """An event about an order this run did not place (`session_inherited`); an
        inherited order's fill is also booked into the engine's manual row."""
        entry = self.inherited.get(ev.client_id)
        records = inherited_event(ev, self.inherited, self._inherited_cancels)
        if entry is not None and ev.kind == "fill":
            if book_inherited_fill(self.engine, self.md.instruments, self._books, ev, entry[1]):
                self._wake.set()
            qty = self._inherited_qty.get(ev.client_id)
            if qty is not None and ev.cum_qty is not None and ev.cum_qty >= qty:
                del self.inherited[ev.client_id]  # filled: nothing left to cancel
        return records

    # -- reconciliation ---------------------------------------------------------------------

    async def _reconcile(self, records: list[Record]) -> None:
        assert self.engine is not None and self.journal is not None
        ex, now = self.execution, time.time_ns()
        report = await reconcile(
            records,
            BinanceQueries(ex),
            self.symbols,
            now,
            amend_in_place=ex.amends_in_place,
        )
        venue = self.venue_positions()
        if isinstance(ex, BinanceFuturesExec):
            report = with_venue_positions(report, venue, self.symbols, now)
        self.journal.append_batch(report.records)
        self.reconcile_report = report
        rebuilt = rebuild([*records, *report.records]).orders
        if isinstance(ex, BinanceFuturesExec):
            book_positions(self.engine, self.md.instruments, self._books, venue, "the venue's")
        else:
            held = journal_positions([*records, *report.records])
            book_positions(self.engine, self.md.instruments, self._books, held, "the journal's")
        self.inherited = {vid: (root, sym) for vid, root, sym in report.inherited}
        self._inherited_qty = {
            vid: rebuilt[root].qty for vid, root, _ in report.inherited if root in rebuilt
        }
        for line in report.lines():
            log.info("reconcile: %s", line)
        if report.halts:
            self._reconcile_pending = report
            self.engine.command(Command(CMD_HALT))
            log.warning(
                "live session: trading halted: the venue differs from the journal "
                "(%d item(s)); acknowledge to trade",
                len(report.diff),
            )

    def venue_positions(self) -> dict[str, tuple[Decimal, Decimal]]:
        """USD-M: the venue's one-way positions as last read or updated, symbol ->
        (signed qty, entry price); empty for spot."""
        ex = self.execution
        if not isinstance(ex, BinanceFuturesExec):
            return {}
        return {
            sym: (p.qty, p.entry_price) for (sym, side), p in ex.positions.items() if side == "BOTH"
        }

    def _on_account(self, update: AccountUpdate) -> None:
        """A USD-M ACCOUNT_UPDATE: funding fees are journaled and summed per asset (the
        engine's PnL does not include them: see `status().funding`)."""
        if not update.funding_fee:
            return
        ts = update.recv_ts_ns or time.time_ns()
        for b in update.balances:
            self.funding[b.asset] = self.funding.get(b.asset, Decimal(0)) + b.change
            data: dict[str, str | int] = {"asset": b.asset, "amount": format(b.change, "f")}
            self._records.append(Marker("funding_fee", ts, data))
            log.info("live session: funding fee %s %s", b.change, b.asset)
        self._wake.set()

    # -- position drift (USD-M) ------------------------------------------------------------------

    @property
    def halts_on_drift(self) -> bool:
        """Whether a drift alert halts trading (`options.halt_on_drift`)."""
        opt = self.options.halt_on_drift
        return self.environment != "sandbox" if opt is None else opt

    async def _watch_drift(self) -> None:
        period = min(0.25, max(self.options.drift_grace / 4, 0.01))
        ex = self.execution
        while not self._closed:
            await asyncio.sleep(period)
            try:
                if self.drift.overdue(time.time_ns()) and isinstance(ex, BinanceFuturesExec):
                    try:  # confirm over REST before an alert (the user stream may be stale)
                        await ex.fetch_positions()
                    except (VenueRequestError, OSError, TimeoutError) as exc:
                        log.warning("live session: positions not re-read: %s", exc)
                self.check_drift()
            except Exception:
                log.exception("live session: the position drift check failed")

    def check_drift(self) -> tuple[PositionDrift, ...]:
        """Compare the engine's positions with the venue's now (USD-M; called on a timer):
        a new alert is logged and journaled (`position_drift`) and, if `halts_on_drift`,
        halts trading until the user resumes. Returns the current alerts."""
        if not self.futures or self.engine is None:
            return ()
        venue = {s: q for s, (q, _) in self.venue_positions().items()}
        now = time.time_ns()
        raised, cleared = self.drift.observe(self.engine_positions(), venue, now)
        halt = self.halts_on_drift
        self._records.extend(drift_markers(raised, cleared, halt, now))
        if raised and halt:
            self.engine.command(Command(CMD_HALT))
        if raised or cleared:
            self._wake.set()
        return self.drift.alerts()
