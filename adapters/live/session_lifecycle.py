"""LiveSession's lifecycle: start-up (journal, instruments, engine, execution, positions,
reconciliation, feeds), stop (flatten, cancel, wait, close) and abort.

`SessionLifecycle` is a mixin of `session.LiveSession` (it is not used alone): the state it
works on is created by `LiveSession.__init__` (`md`, `md_extra`, `execution`, `options`,
`journal_path`, `engine`, `orders`, `journal`, `inherited`, `_books`, `_in_sync`, the tasks
and flags), and it calls the other parts: `_cycle`, `_step_loop`, `_send`, `_fail`,
`_flush_records` (session_stepping), `_on_md_rows`, `_mid` (session_market), `_on_exec`,
`_on_account`, `_foreign`, `_reconcile`, `_watch_drift` (session_execution), and the
class's `futures`, `command`, `working_orders`, `engine_positions`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from adapters.live.binance_futures_exec import BinanceFuturesExec
from adapters.live.binance_spot_md import BinanceSpotMarketData
from adapters.live.client_ids import ClientIdAllocator
from adapters.live.event_loop import cancel_and_wait
from adapters.live.order_journal import OrderJournal
from adapters.live.order_records import Marker, Record
from adapters.live.secrets import VenueRequestError, redact
from adapters.live.session_inherited import cancel_requests
from adapters.live.session_orders import LiveOrders
from adapters.live.session_stepping import LOGGER_NAME, busy_poll
from engine.commands import CMD_FLATTEN, CMD_HALT, Command
from engine.errors import CockpitError, UsageError
from engine.live import LiveEngine

log = logging.getLogger(LOGGER_NAME)


def _registered(md: BinanceSpotMarketData, symbol: str) -> bool:
    try:
        md.instrument_of(symbol)
    except KeyError:
        return False
    return True


class SessionLifecycle:
    """Start, stop, flatten, abort and close (a LiveSession part)."""

    async def start(self) -> None:
        """Open the journal, load the instruments, build the engine, connect for orders,
        reconcile with the venue if the journal had orders, then start the market data.

        Raises:
            UsageError: started twice, or the journal is locked by another process.
            CockpitError: the venue did not answer (instruments, execution set-up or the
                reconciliation queries); nothing was traded.
        """
        if self._started:
            raise UsageError("the live session was already started")
        self._started = True
        self.journal = OrderJournal.open(self.journal_path)
        records = list(self.journal.recovered.records)
        try:
            await self._set_up(records)
        except (OSError, TimeoutError) as exc:  # connection refused, DNS, TLS...
            await self._close(flush=False)
            raise CockpitError(
                f"cannot reach the venue at {self.md.rest.base_url}: {redact(str(exc))}"
            ) from None
        except BaseException:
            await self._close(flush=False)
            raise
        self._running = True

    async def _set_up(self, records: list[Record]) -> None:
        md, ex = self.md, self.execution
        opts = self.options
        ids = ClientIdAllocator.resume(opts.session_prefix, records)
        if not all(_registered(md, sym) for sym in self.symbols):
            await md.load_instruments()
        for sym in self.symbols:
            iid = md.instrument_of(sym)[0]
            self._books[sym] = iid
            self._in_sync[iid] = False
        for extra in self.md_extra:  # its rows must name the same instruments
            await extra.load_instruments()
            if any(extra.instrument_of(s)[0] != self._books[s] for s in self.symbols):
                raise CockpitError(f"{extra!r}: instrument ids differ from the book client's")
        engine = LiveEngine(
            md.instruments,
            self.strategy_cls,
            self.instances,
            self.config,
            capacity=opts.engine_capacity,
        )
        self.engine = engine
        self.orders = LiveOrders(
            engine,
            md.instruments,
            ids,
            filters=ex.filters,
            ref_price=self._mid,
            foreign=self._foreign,
            amend_in_place=ex.amends_in_place,
        )
        ex.on_exec = self._on_exec
        if isinstance(ex, BinanceFuturesExec):
            ex.on_account = self._on_account
        await ex.start()
        try:
            await ex.wait_ready(opts.ready_timeout)
        except TimeoutError:
            raise CockpitError(
                f"the execution connection to {ex.ws_url} was not ready within "
                f"{opts.ready_timeout:g} s (state {ex.state})"
            ) from None
        if isinstance(ex, BinanceFuturesExec):
            try:  # the venue's positions are the truth: no trading without them
                await ex.fetch_positions()
            except VenueRequestError as exc:
                raise CockpitError(f"cannot read the venue's positions: {exc}") from None
        for sym, iid in self._books.items():
            filt = ex.filters.get(sym)
            if filt is not None and filt.min_notional:
                engine.set_min_notional(iid, float(filt.min_notional))
        await self._reconcile(records)  # also on a new journal: no foreign open orders
        assert self.journal is not None
        self.journal.append(
            Marker(
                "session_start",
                time.time_ns(),
                {"environment": self.environment, "prefix": opts.session_prefix},
            )
        )
        md.on_events = self._on_md_rows
        await md.start()
        for extra in self.md_extra:
            extra.on_events = self._on_md_rows
            await extra.start()
        self._stepper = asyncio.create_task(self._step_loop(), name="live-session:step")
        if opts.busy_poll:
            self._spawn(busy_poll(), "live-session:busy-poll")
        if self.futures:
            self._spawn(self._watch_drift(), "live-session:drift")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, *, cancel: bool = True, flatten: bool | None = None) -> None:
        """Halt the engine, cancel every order (ours and inherited ones, never external
        ones), wait up to `options.cancel_timeout` for the venue, then close everything.

        Args:
            cancel: False closes without cancelling (orders stay open at the venue).
            flatten: first close the engine's positions (`flatten_positions`); None:
                `options.flatten_at_stop`.
        """
        if self._closed:
            return
        if flatten is None:
            flatten = self.options.flatten_at_stop
        if cancel and flatten and self._running and self.engine is not None:
            await self.flatten_positions()
        if cancel and self._running and self.engine is not None:
            try:
                self.engine.command(Command(CMD_HALT))
                self._cycle()
            except Exception:
                log.exception("live session: halting and cancelling failed")
            await self.cancel_inherited()
            deadline = time.monotonic() + self.options.cancel_timeout
            while time.monotonic() < deadline and (self.working_orders() or self.inherited):
                await asyncio.sleep(0.01)
            if self.working_orders() or self.inherited:
                log.warning(
                    "live session: %d order(s) not confirmed canceled at shutdown",
                    len(self.working_orders()) + len(self.inherited),
                )
        await self._close(flush=True)

    async def flatten_positions(self, timeout: float | None = None, attempts: int = 3) -> bool:
        """Halt the strategies, cancel every order (inherited ones too), and close the
        engine's positions with market orders (CMD_FLATTEN; reduce-only on futures); wait up
        to `timeout` seconds (`options.flatten_timeout`) for the venue. A flatten that left
        something open (an IOC partly filled, a refusal) is sent again, `attempts` in all.
        Returns whether the engine ended flat with nothing working.

        Spot sells (or buys back) what the engine holds, the journal's carried position
        included; futures close the position the engine booked from the venue's.
        """
        engine = self.engine
        if engine is None or not self._running:
            return False
        limit = self.options.flatten_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        try:
            engine.command(Command(CMD_HALT))  # strategies stop; flatten orders still go
            self._cycle()
        except Exception:
            log.exception("live session: halting before the flatten failed")
            return False
        await self.cancel_inherited()
        sent = 0
        while time.monotonic() < deadline:
            try:
                self._cycle()  # fills reported since the last step move the position
            except Exception:
                log.exception("live session: the engine step failed during the flatten")
                return False
            busy = self.working_orders() or (self.orders is not None and self.orders.unknown)
            # An inherited order being cancelled may still fill (booked, then flattened).
            flat = not any(self.engine_positions().values())
            if not busy and flat and not self.inherited:
                log.info("live session: flat at the stop (%d flatten round(s))", sent)
                return True
            if not busy and not flat and sent < attempts:
                sent += 1
                self.command(Command(CMD_FLATTEN))
            await asyncio.sleep(0.01)
        held = {s: q for s, q in self.engine_positions().items() if q}
        log.warning("live session: not flat at the stop after %g s: %s", limit, held)
        return False

    async def cancel_inherited(self) -> int:
        """Cancel the open orders inherited from an earlier run; returns requests sent."""
        if not self.inherited or self.orders is None or self.journal is None:
            return 0
        prepared = cancel_requests(
            self.inherited, self._inherited_cancels, self.orders.ids, time.time_ns()
        )
        try:
            self._flush_records()
            self.journal.append_batch([p.intent for p in prepared])
        except CockpitError as exc:
            self._journal_failed = True
            self._fail(f"order journal: {exc}")
            return 0
        for p in prepared:
            self._send(p)
        return len(prepared)

    async def abort(self) -> None:
        """Stop at once, as a crash would: no cancels, nothing more journaled."""
        await self._close(flush=False)

    async def _close(self, *, flush: bool) -> None:
        if self._closed:
            return
        self._closed = True
        self._running = False
        for iid in self._in_sync:
            self._in_sync[iid] = False  # no feed, no book
        if self._timer is not None:
            self._timer.cancel()
        await cancel_and_wait((self._stepper, *self._tasks))
        for md in (self.md, *self.md_extra):
            await md.stop()
        await self.execution.stop()
        journal = self.journal
        if journal is None:
            return
        if flush and not self._journal_failed:
            self._flush_records()
            try:
                journal.append(Marker("session_stop", time.time_ns()))
            except CockpitError as exc:
                log.error("live session: the last journal records were not written: %s", exc)
        journal.close()
