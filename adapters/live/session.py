"""A live session: one venue's market data and execution wired to the engine, on asyncio.

    session = LiveSession.for_venue(endpoints_for("ws://127.0.0.1:8765", "binance-usdm"),
                                    ["BTCUSDT"], api_key=key, signer=signer,
                                    strategy_cls=MyStrategy, journal_path="orders.journal")
    await session.start()          # journal, instruments, engine, reconciliation, feeds
    print(session.status().line())
    await session.stop()           # halt, cancel every order, wait for the venue, close
    # stop(flatten=True) (or SessionOptions(flatten_at_stop=True)) first closes the positions

The flow (one event loop, one thread):

- Market data: the client's rows (stamped with the local clock on arrival) are appended to
  `LiveEngine.push_events`; each book's sync state goes to `set_in_sync`. A change of state
  is applied in band: the engine first processes every row received before it, so the rows
  before a gap are traded under "in sync" and the rows of a new snapshot are the first the
  strategy sees with orders allowed again.
- Stepping: a task runs `step_until(time.time_ns())` after every batch of messages or
  execution events, and on a timer (at the engine's next scheduled event, timers included,
  at most `step_interval` apart).
- After each step, `take_outbox()` -> `LiveOrders.prepare` (client ids, Decimals, the
  venue's filters: a refused order becomes an engine reject) -> the step's intents in ONE
  `OrderJournal.append_batch` (fsync) -> only then are they handed to the execution client.
  If the journal fails, nothing is sent, the orders are rejected in the engine and trading
  is halted.
- Execution events -> `LiveOrders.on_exec` (engine reports) and the journal (replies and
  events, appended unsynced before the next intents; a crash loses at most those, and the
  venue is asked again at the restart).
- Start and restart: `session_reconcile.reconcile` compares the journal (empty or not)
  with the venue before the market data starts; a mismatch or an order the journal does not
  know halts trading (`CMD_HALT`) until `acknowledge_reconcile()` (`CMD_RESUME`). Client
  ids continue after the highest in the journal. Positions (`session_positions`): spot
  carries what the journal's fills left open; USD-M books the venue's (positionRisk, read
  first), and a difference from the journal is one more mismatch.
- USD-M (`session_venues`): books and quotes on the `/public` route, trades on `/market`
  (a second market data client, `status().more_market_data`), amends as `order.modify` in
  place, funding fees journaled (`funding_fee` markers) and summed in `status().funding`.
  The engine's position is compared with the venue's on a timer (`check_drift`): a
  difference lasting `options.drift_grace` is an alert (`status().drift`, a
  `position_drift` marker) and halts trading unless `options.halt_on_drift` says not.
- Orders an earlier run left open (inherited) are cancelled at the stop; their fills until
  then are booked into the engine's manual row (`session_inherited.book_inherited_fill`).

`status()` is a snapshot for a UI; `timings` holds the hot path's section times.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import numpy as np

from adapters.live.binance_futures_exec import BinanceFuturesExec
from adapters.live.binance_futures_messages import AccountUpdate
from adapters.live.binance_spot_exec import BinanceSpotExec
from adapters.live.binance_spot_md import BinanceSpotMarketData
from adapters.live.book_sync import SyncState
from adapters.live.client_ids import ClientIdAllocator
from adapters.live.exec_events import ExecEvent
from adapters.live.order_journal import OrderJournal
from adapters.live.order_records import Marker, Record
from adapters.live.order_state import rebuild
from adapters.live.secrets import VenueRequestError, redact
from adapters.live.session_drift import DriftMonitor, PositionDrift, drift_markers
from adapters.live.session_env import Endpoints, Environment
from adapters.live.session_inherited import (
    book_inherited_fill,
    cancel_requests,
    inherited_event,
)
from adapters.live.session_orders import LiveOrders, Prepared
from adapters.live.session_positions import (
    book_positions,
    journal_positions,
    with_venue_positions,
)
from adapters.live.session_reconcile import BinanceQueries, ReconcileReport, reconcile
from adapters.live.session_status import SessionStatus, Timings, build_status
from adapters.live.session_venues import binance_spot_clients, binance_usdm_clients
from engine.commands import CMD_FLATTEN, CMD_HALT, CMD_RESUME, Command
from engine.config import EngineConfig
from engine.errors import CockpitError, UsageError
from engine.events import FLAG_RESYNC, KIND_BOOK_CLEAR
from engine.live import LiveEngine
from engine.state import (
    H_TS,
    MK_MID_X2,
    N_HEAP,
    PI_POS,
)

log = logging.getLogger(__name__)

BookListener = Callable[[str, bool], object]
_CLIENT_ARGS = ("api_key", "signer", "md_config", "exec_config", "resolve_after")
"""`for_venue` arguments that go to the venue clients (`session_venues`)."""


@dataclass(frozen=True)
class SessionOptions:
    """How a session behaves; the defaults suit a real venue."""

    session_prefix: str = "ck"
    """Client ids are `<prefix>-<n>` (1-20 of A-Z a-z 0-9 _)."""
    step_interval: float = 0.005
    """Longest time between two engine steps when nothing arrives, seconds."""
    busy_poll: bool = False
    """Keep the event loop polling its sockets instead of sleeping in the kernel between
    messages: a core at 100%, for the wake-up of an idle process (~50-80 us on a virtual
    machine) off every tick's path. For a trading server with a core to spare."""
    step_on_data: bool = True
    """Step the engine in the callback that delivers market data (the strategy answers a
    tick at once); False: on the stepping task's next turn, like every other wake-up."""
    ready_timeout: float = 15.0
    """Seconds to wait for the execution connection at start."""
    cancel_timeout: float = 5.0
    """Seconds `stop()` waits for the venue to confirm the cancels."""
    engine_capacity: int = 1 << 20
    """Rows the engine buffers between steps."""
    flatten_at_stop: bool = False
    """`stop()` first closes the engine's positions (CMD_FLATTEN: market orders, reduce-only
    on futures) and waits for their fills, then cancels and closes."""
    flatten_timeout: float = 10.0
    """Seconds `stop()` waits for the flatten's fills (then it stops regardless)."""
    drift_grace: float = 2.0
    """USD-M: seconds the engine's position may differ from the venue's before that is an
    alert (a fill and the position update arrive in some order)."""
    halt_on_drift: bool | None = None
    """USD-M: a position drift alert also halts trading. None: yes, except in the sandbox
    (whose faults and test hooks move positions on purpose)."""


async def _busy_poll() -> None:
    """Yield to the event loop forever: it then polls with a zero timeout, never sleeps."""
    while True:
        await asyncio.sleep(0)


def _registered(md: BinanceSpotMarketData, symbol: str) -> bool:
    try:
        md.instrument_of(symbol)
    except KeyError:
        return False
    return True


class LiveSession:
    """One venue end to end (see the module docstring).

    Args:
        market_data: the market data client (its `on_events` is taken over).
        execution: the execution client (its `on_exec` is taken over).
        extra_market_data: more market data clients whose rows go to the engine too (USD-M's
            `/market` route: trades); same symbols, so the same instrument ids.
        strategy_cls, instances: the strategy and its instances' parameters.
        config: the engine configuration (`live` is forced on).
        journal_path: the order journal (created, or replayed and reconciled).
        environment: sandbox, testnet or live (shown, and written in the journal).
        options: timing and naming (SessionOptions()).
    """

    def __init__(
        self,
        market_data: BinanceSpotMarketData,
        execution: BinanceSpotExec,
        *,
        extra_market_data: Sequence[BinanceSpotMarketData] = (),
        strategy_cls: type | None = None,
        instances: list[dict[str, Any]] | None = None,
        config: EngineConfig | None = None,
        journal_path: str | Path,
        environment: Environment = "sandbox",
        options: SessionOptions | None = None,
    ) -> None:
        self.md = market_data
        self.md_extra = list(extra_market_data)
        self.execution = execution
        self.strategy_cls = strategy_cls
        self.instances = instances
        self.config = config
        self.journal_path = Path(journal_path)
        self.environment = environment
        self.options = options or SessionOptions()
        ClientIdAllocator(self.options.session_prefix)  # validates the prefix now
        self.symbols = list(market_data.symbols)
        self.timings = Timings()
        self.book_listeners: list[BookListener] = []
        """Called with (symbol, in_sync) when a book's sync state changes (in band)."""
        self.engine: LiveEngine | None = None
        self.orders: LiveOrders | None = None
        self.journal: OrderJournal | None = None
        self.reconcile_report: ReconcileReport | None = None
        """The last reconciliation (None when the journal was new)."""
        self.inherited: dict[str, tuple[str, str]] = {}
        """Open orders of an earlier run: venue client id -> (journal client id, symbol)."""
        self.funding: dict[str, Decimal] = {}
        """USD-M funding fees received (+) or paid (-) this session, per asset."""
        self.drift = DriftMonitor(int(self.options.drift_grace * 1e9))
        """USD-M: the engine's position against the venue's (`check_drift`)."""
        self.error = ""
        self._journal_failed = False
        self._inherited_cancels: dict[str, str] = {}
        """Cancel requests of inherited orders: cancel client id -> venue client id."""
        self._inherited_qty: dict[str, Decimal | None] = {}
        """Inherited orders' quantities (venue client id -> qty): filled -> no longer open."""
        self._reconcile_pending: ReconcileReport | None = None
        self._records: list[Record] = []
        self._books: dict[str, int] = {}
        self._in_sync: dict[int, bool] = {}
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._stepper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_now = 0
        self._pushed_at = 0
        self._pushed_ts = 0
        self._step_failed = False
        self._started = False
        self._running = False
        self._closed = False

    @classmethod
    def for_venue(cls, endpoints: Endpoints, symbols: Sequence[str], **kwargs: Any) -> LiveSession:
        """A session on the venue `endpoints` name (`session_env.endpoints_for(url, venue)`):
        Binance spot or USD-M futures, their testnets, or the sandbox.

        Args:
            endpoints: where to connect, and which venue API.
            symbols: e.g. ["BTCUSDT"] (instrument ids follow this order).
            **kwargs: the clients' (`session_venues`: api_key and signer, the account;
                md_config, exec_config, connection timings; resolve_after, seconds before
                an UNKNOWN request is settled by a status query) and LiveSession's
                (strategy_cls, instances, config, journal_path, options).
        """
        usdm = endpoints.venue == "binance-usdm"
        return cls._build(
            binance_usdm_clients if usdm else binance_spot_clients, endpoints, symbols, **kwargs
        )

    @classmethod
    def binance_spot(
        cls, endpoints: Endpoints, symbols: Sequence[str], **kwargs: Any
    ) -> LiveSession:
        """A session on Binance spot, its testnet or the sandbox (arguments: `for_venue`)."""
        return cls._build(binance_spot_clients, endpoints, symbols, **kwargs)

    @classmethod
    def binance_usdm(
        cls, endpoints: Endpoints, symbols: Sequence[str], **kwargs: Any
    ) -> LiveSession:
        """A session on Binance USD-M futures, its testnet or the futures sandbox
        (arguments: `for_venue`)."""
        return cls._build(binance_usdm_clients, endpoints, symbols, **kwargs)

    @classmethod
    def _build(
        cls,
        make: Callable[..., tuple[Any, Any]],
        endpoints: Endpoints,
        symbols: Sequence[str],
        **kwargs: Any,
    ) -> LiveSession:
        client_kw = {k: kwargs.pop(k) for k in _CLIENT_ARGS if k in kwargs}
        md, ex, *extra = make(endpoints, symbols, **client_kw)
        env = endpoints.environment
        return cls(md, ex, extra_market_data=extra, environment=env, **kwargs)

    @property
    def futures(self) -> bool:
        """The venue holds positions (USD-M): they are read at start and booked."""
        return isinstance(self.execution, BinanceFuturesExec)

    # -- lifecycle -----------------------------------------------------------------------

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
            self._spawn(_busy_poll(), "live-session:busy-poll")
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

    def engine_positions(self) -> dict[str, Decimal]:
        """The engine's net position per symbol (all rows), base quantity."""
        if self.engine is None:
            return {}
        pi, insts = self.engine.state.pi, self.md.instruments
        return {
            sym: insts[iid].lots_to_size(int(pi[:, iid, PI_POS].sum()))
            for sym, iid in self._books.items()
        }

    async def abort(self) -> None:
        """Stop at once, as a crash would: no cancels, nothing more journaled."""
        await self._close(flush=False)

    async def __aenter__(self) -> LiveSession:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _close(self, *, flush: bool) -> None:
        if self._closed:
            return
        self._closed = True
        self._running = False
        for iid in self._in_sync:
            self._in_sync[iid] = False  # no feed, no book
        if self._timer is not None:
            self._timer.cancel()
        tasks = [t for t in (self._stepper, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
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

    # -- commands --------------------------------------------------------------------------

    def acknowledge_reconcile(self) -> bool:
        """The user has seen the reconciliation diff: resume trading (CMD_RESUME).

        Returns False when there was nothing to acknowledge.
        """
        report = self._reconcile_pending
        if report is None or self.engine is None or self.journal is None:
            return False
        self._reconcile_pending = None
        self.engine.command(Command(CMD_RESUME))
        self.journal.append(
            Marker("reconcile_acknowledged", time.time_ns(), {"items": len(report.diff)})
        )
        self._wake.set()
        return True

    def command(self, cmd: Command) -> int:
        """Apply an engine command now (manual orders, cancel all, flatten...) and send
        what it asks for."""
        if self.engine is None:
            raise UsageError("the live session is not started")
        out = self.engine.command(cmd)
        self._wake.set()
        return out

    def resolve_unknown(self) -> int:
        """Ask the venue now about every request whose outcome is unknown (the user's
        "reconcile now"), instead of waiting for `resolve_after`; returns how many queries
        were started. The answers arrive as ordinary execution events (`resolved`, then the
        true state). Call it on the session's event loop."""
        if self.orders is None:
            return 0
        return sum(self.execution.resolve_now(cid) for cid in list(self.orders.unknown))

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

    def working_orders(self) -> list[str]:
        """Client ids of the engine's orders not known to have ended."""
        return [] if self.orders is None else [o.venue_cid for o in self.orders.working()]

    def in_sync(self, symbol: str) -> bool:
        """Whether the engine currently allows orders on `symbol`'s book."""
        iid = self._books.get(symbol)
        return iid is not None and self._in_sync.get(iid, False)

    # -- market data -------------------------------------------------------------------------

    def _on_md_rows(self, rows: np.ndarray) -> None:
        """The market data client's rows of one message (on the event loop)."""
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

    # -- stepping ----------------------------------------------------------------------------

    async def _step_loop(self) -> None:
        while not self._step_failed:
            await self._wake.wait()
            self._wake.clear()
            self._step()

    def _step(self) -> None:
        """A cycle, then the timer for the next; an engine failure stops the stepping."""
        if self._step_failed:
            return
        try:
            self._cycle()
        except Exception as exc:  # the engine itself failed: stop trading, say why
            log.exception("live session: the engine step failed")
            self._step_failed = True
            self._fail(f"engine: {exc}")
            self._wake.set()  # the stepping task sees the flag and ends
            return
        self._arm_timer(asyncio.get_running_loop())

    def _arm_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake at the engine's next scheduled event (a timer, a report), or soon."""
        assert self.engine is not None
        st = self.engine.state
        delay = self.options.step_interval
        if st.ctl[N_HEAP] > 0:
            due = (int(st.hp[0, H_TS]) - time.time_ns()) / 1e9
            delay = min(delay, max(due, 0.0))
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(delay, self._wake.set)

    def _cycle(self) -> None:
        """One step: journal pending venue facts, run the engine to now, send its requests."""
        engine = self.engine
        assert engine is not None
        t0 = perf_counter_ns()
        market = self._pushed_at != 0  # a tick-to-order cycle: time it
        if market:
            self.timings.add("wake", t0 - self._pushed_at)
            self._pushed_at = 0
        self._flush_records()
        now = max(time.time_ns(), self._last_now)
        self._last_now = now
        engine.step_until(now)
        out = engine.take_outbox()
        t1 = perf_counter_ns()
        if market:
            self.timings.add("engine", t1 - t0)
        if out:
            self._dispatch(out, now, t1)

    def _dispatch(self, out: list, now: int, t1: int) -> None:
        orders, journal = self.orders, self.journal
        assert orders is not None and journal is not None
        prepared = [p for p in (orders.prepare(o, now) for o in out) if p is not None]
        t2 = perf_counter_ns()
        self.timings.add("encode", t2 - t1)
        if len(prepared) < len(out):
            self._wake.set()  # refusals were reported to the engine: apply them soon
        if not prepared:
            return
        try:
            journal.append_batch([p.intent for p in prepared])
        except CockpitError as exc:
            # Not journaled, so not sent: the engine hears they failed, and trading stops.
            for p in prepared:
                orders.not_sent(p, "the order journal failed", now)
            self._journal_failed = True
            self._fail(f"order journal: {exc}")
            return
        t3 = perf_counter_ns()
        self.timings.add("journal", t3 - t2)
        for p in prepared:
            self._send(p)
        self.timings.add("send", perf_counter_ns() - t3)

    def _send(self, p: Prepared) -> None:
        assert self.orders is not None
        counts = self.orders.counts
        counts.sent += 1
        ex, req = self.execution, p.request
        try:
            if req.kind == "new":
                counts.orders += 1
                answer = ex.place_now(req)  # written now when the connection is free
            elif req.kind == "cancel":
                answer = ex.cancel(req)
            else:
                answer = ex.amend(req)
        except Exception as exc:  # refused before sending (e.g. no signer)
            self._not_sent(p, exc)
            return
        task = asyncio.create_task(answer, name=f"live-session:{req.client_id}")
        self._tasks.add(task)
        task.add_done_callback(partial(self._answered, p))

    def _answered(self, p: Prepared, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._not_sent(p, task.exception())  # raised before sending (checked first)

    def _not_sent(self, p: Prepared, exc: Exception) -> None:
        req = p.request
        log.error("live session: %s %s not sent: %s", req.kind, req.client_id, exc)
        if self.orders is not None and p.oid >= 0:
            self.orders.not_sent(p, str(exc), time.time_ns())
            self._wake.set()

    # -- execution -----------------------------------------------------------------------------

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

    def _flush_records(self) -> None:
        """Journal the venue's answers received since the last step (not synced: the next
        intents' fsync covers them)."""
        if not self._records or self.journal is None or self._journal_failed:
            return
        records, self._records = self._records, []
        try:
            self.journal.append_batch(records, sync=False)
        except CockpitError as exc:  # the intents that follow fail too: nothing is sent
            self._journal_failed = True
            self._fail(f"order journal: {exc}")

    def _fail(self, why: str) -> None:
        """Stop trading on our own: halt the engine and say why."""
        self.error = why
        log.error("live session: trading halted: %s", why)
        if self.engine is not None:
            try:
                self.engine.command(Command(CMD_HALT))
            except Exception:
                log.exception("live session: halting the engine failed")

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

    # -- status ------------------------------------------------------------------------------

    def status(self) -> SessionStatus:
        """A snapshot for a UI or a status line."""
        return build_status(self)
