"""The sandbox venue's matching: the engine's venue model behind Binance-style orders.

The sandbox does not have a matcher of its own. It runs an `engine.runner.Engine` (no
strategy) over the same market the sandbox replays, advanced in step with the replay clock
(`advance(i)` after the i-th replayed message), and turns orders into the engine's manual
commands. What the engine's simulated venue does (queue position behind displayed size,
fills only from trades the data shows, consumed liquidity, self-trade prevention) is what
the sandbox's clients get, reported in Binance's terms by `EngineMatcher._collect` from the
engine's audit journal and fills (read incrementally, by row count).

Times: the engine's clock is the replay's (message receive times, made strictly increasing
by a nanosecond where two messages share one, so that `advance(i)` applies exactly the
first i messages; the starting book lies 1 ns before the first). Entry and report
latencies are 0: an order reaches the engine's venue at the engine time it is placed and
its outcome is known before the call returns. Times shown to clients (transactTime, event
times) come from the sandbox's wall clock, like a live venue's.

What the engine's commands cannot say, emulated here (documented, not hidden):

- `CMD_MANUAL_LIMIT` is GTC only. IOC: the order is placed, and a remainder left resting
  after its arrival is canceled at once and reported EXPIRED. FOK: the displayed depth up
  to the limit is checked first (not the liquidity our own fills consumed, which the engine
  keeps internally); too little expires the order without it reaching the engine, enough
  places it as IOC.
- `Command` has no flags, so no post-only: LIMIT_MAKER is checked against
  `engine.book.best_bid/best_ask` here and refused (-2010 'Order would immediately match
  and take.') before any command.
- There is no amend command in this checkout (`engine.commands` has no CMD_AMEND), and
  Binance's cancel-replace is itself a cancel and a new order: the server does exactly
  that with two commands. Amend-keep-priority is not offered.
- Self-trade prevention is the engine's (the incoming order expires): reported as
  execution type TRADE_PREVENTION, status EXPIRED_IN_MATCH (Binance's EXPIRE_TAKER).
- Commission: maker/taker rate on the trade, in the base asset for a buyer and the quote
  asset for a seller (Binance's default without BNB), exact decimals rounded to 8 places.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

import numpy as np

from adapters.binance_ws import VENUE_SPOT
from adapters.live.rows import MS, book_rows, quote_rows, trade_rows
from adapters.live.sandbox_replay import Replay, SymbolSpec
from engine.book import best_ask, best_bid
from engine.codes import (
    BREAK_TIME,
    R_AMEND_BAD_QUANTITY,
    R_AMEND_REJECTED,
    R_AMEND_WOULD_CROSS,
    R_AMENDED,
    R_CANCEL_REJECTED,
    R_FILL,
    R_INVALID_TRANSITION,
    R_SELF_TRADE_PREVENTED,
    R_TOO_MANY_LEVELS,
    R_VENUE_ACK,
    REASON_NAMES,
    ST_ACCEPTED,
    ST_CANCELED,
    ST_EXPIRED,
    ST_FILLED,
    ST_PARTIALLY_FILLED,
    ST_PENDING_CANCEL,
    ST_REJECTED,
)
from engine.commands import CMD_AMEND, CMD_CANCEL, CMD_MANUAL_LIMIT, CMD_MANUAL_MARKET, Command
from engine.config import EngineConfig
from engine.data.stream import EventStream
from engine.events import SIDE_BUY, SIDE_SELL
from engine.instruments import Instrument, InstrumentRegistry
from engine.runner import Engine
from engine.state import (
    F_LIQ,
    F_OID,
    F_PRICE,
    F_QTY,
    J_OID,
    J_PRICE,
    J_QTY,
    J_REASON,
    J_TO,
)

log = logging.getLogger(__name__)

EIGHT: Final = Decimal("0.00000001")
OPEN_STATUSES: Final = frozenset({"NEW", "PARTIALLY_FILLED"})
SANDBOX_ENGINE_CONFIG: Final = EngineConfig(
    entry_latency_ns=0,
    cancel_latency_ns=0,
    report_latency_ns=0,
    maker_fee=0.0,
    taker_fee=0.0,
    equity_interval_ns=0,
    max_orders=4096,
    heap_capacity=4096,
    journal_capacity=1 << 14,
    fills_capacity=1 << 13,
    alerts_capacity=1 << 10,
    equity_capacity=64,
)
"""Zero latencies (the sandbox's network is the latency); fees are charged here, exactly."""


_AMEND_OUTCOMES: Final = frozenset(
    {R_AMENDED, R_AMEND_REJECTED, R_AMEND_WOULD_CROSS, R_AMEND_BAD_QUANTITY, R_TOO_MANY_LEVELS}
)
"""Reasons of the journal row that settles an amend (the order goes back to working)."""


def fmt8(value: Decimal) -> str:
    """Binance prints prices and quantities with 8 decimals."""
    return f"{value:.8f}"


@dataclass(frozen=True)
class SandboxTrade:
    """One trade of one of our orders."""

    trade_id: int
    order_id: int
    symbol: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    is_buyer: bool
    is_maker: bool


@dataclass
class SandboxOrder:
    """An order as the venue holds it."""

    order_id: int
    client_id: str
    symbol: str
    side: str
    """BUY or SELL."""
    type: str
    """LIMIT, LIMIT_MAKER or MARKET."""
    tif: str | None
    price: Decimal
    """0 for a market order."""
    qty: Decimal
    time_ms: int
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    update_ms: int = 0
    oid: int = -1
    """The engine's order id (-1: never reached the engine)."""
    client_ids: list[str] = field(default_factory=list)
    """Every client id it had (a cancel gives it the cancel's newClientOrderId)."""
    trades: list[SandboxTrade] = field(default_factory=list)
    expire_remainder: bool = False
    """IOC/FOK: a remainder canceled after arrival is reported EXPIRED."""
    acked: bool = False

    @property
    def open(self) -> bool:
        """Still working on the book."""
        return self.status in OPEN_STATUSES


@dataclass(frozen=True)
class Execution:
    """What happened to an order: the content of one executionReport."""

    order: SandboxOrder
    exec_type: str
    """NEW, TRADE, CANCELED, EXPIRED, REJECTED, TRADE_PREVENTION."""
    status: str
    executed: Decimal
    cum_quote: Decimal
    time_ms: int
    client_id: str
    """`c`: the order's id, or the cancel request's new id for a cancel."""
    orig_client_id: str = ""
    """`C`: the canceled order's previous id (cancels only)."""
    trade: SandboxTrade | None = None
    reject_reason: str = "NONE"


class MatchError(Exception):
    """An order the engine refused before it reached its venue (Binance -2010)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EngineMatcher:
    """An engine running the sandbox's market, taking orders as manual commands.

    Args:
        replay: the sandbox's timeline (the same object the server replays).
        clock_ms: the venue's wall clock in ms (for the times shown to clients).
        maker_fee, taker_fee: commission rates.
        config: engine configuration (latencies should stay 0).
    """

    def __init__(
        self,
        replay: Replay,
        *,
        clock_ms: Callable[[], int],
        maker_fee: Decimal = Decimal("0.001"),
        taker_fee: Decimal = Decimal("0.001"),
        config: EngineConfig = SANDBOX_ENGINE_CONFIG,
    ) -> None:
        self.replay = replay
        self._clock_ms = clock_ms
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.registry = InstrumentRegistry()
        self.insts: dict[str, tuple[int, Instrument]] = {}
        for sym, spec in replay.specs.items():
            inst = Instrument(sym, VENUE_SPOT, spec.tick_size, spec.step_size)
            self.insts[sym] = (self.registry.add(inst), inst)
        events, self.times, self.start_ts = self._events()
        self.engine = Engine(EventStream(events, self.registry), None, None, config)
        self.engine.run(break_mask=BREAK_TIME, stop_ts=self.start_ts)
        self.orders: dict[int, SandboxOrder] = {}
        self.by_client: dict[str, SandboxOrder] = {}
        self._by_oid: dict[int, SandboxOrder] = {}
        self._next_order_id = 1
        self._next_trade_id: dict[str, int] = {sym: 1 for sym in replay.specs}
        self._journal_chunks = 0
        self._fill_chunks = 0
        self._pending_fills: dict[int, deque[tuple[int, int, int]]] = {}
        self._events_out: list[Execution] = []
        self._cancel_id: tuple[str, str] | None = None
        """(new client id, previous client id) while a cancel request is applied."""
        self._amending = -1
        """The engine order id of an amend being applied (its outcome row is noted)."""
        self._amend_result = R_AMEND_REJECTED
        self.advanced = 0
        """Replayed messages applied to the engine."""

    # -- the market -------------------------------------------------------------------------

    def _events(self) -> tuple[np.ndarray, list[int], int]:
        """The engine's event rows: each symbol's starting book, then every message."""
        msgs = self.replay.messages
        first = msgs[0].ts if msgs else 1
        start = first - 1
        chunks = []
        for sym, book in self.replay.books.items():
            iid, inst = self.insts[sym]
            chunks.append(
                book_rows(
                    iid,
                    inst,
                    list(book.bids.values()),
                    list(book.asks.values()),
                    ts_exch=start,
                    ts_local=start,
                    snapshot=True,
                )
            )
        times = []
        prev = start
        for m in msgs:
            ts = max(m.ts, prev + 1)
            prev = ts
            times.append(ts)
            iid, inst = self.insts[m.symbol]
            d = m.data
            if m.channel == "depth":
                rows = book_rows(
                    iid, inst, d["b"], d["a"], ts_exch=int(d["E"]) * MS, ts_local=ts, snapshot=False
                )
            elif m.channel == "trade":
                side = SIDE_SELL if d["m"] else SIDE_BUY
                rows = trade_rows(
                    iid, inst, [(d["p"], d["q"], side, int(d["T"]) * MS)], ts_local=ts
                )
            else:
                rows = quote_rows(
                    iid, inst, d["b"], d["B"], d["a"], d["A"], ts_exch=ts, ts_local=ts
                )
            chunks.append(rows)
        return np.concatenate(chunks), times, start

    def advance(self, i: int) -> list[Execution]:
        """Apply the first `i` replayed messages; returns what happened to our orders."""
        if i <= self.advanced:
            return []
        self.advanced = i
        self.engine.run(break_mask=BREAK_TIME, stop_ts=self.times[i - 1])
        self._collect()
        return self._drain()

    def spec(self, symbol: str) -> SymbolSpec:
        """exchangeInfo's view of a symbol."""
        return self.replay.specs[symbol]

    def best(self, symbol: str) -> tuple[Decimal | None, Decimal | None]:
        """The engine book's best bid and ask (None for an empty side)."""
        iid, inst = self.insts[symbol]
        book = self.engine.state.book
        bid = ask = None
        if book.bid_n[iid] > 0:
            bid = inst.ticks_to_price(int(best_bid(book, iid)))
        if book.ask_n[iid] > 0:
            ask = inst.ticks_to_price(int(best_ask(book, iid)))
        return bid, ask

    def would_take(self, symbol: str, side: str, price: Decimal) -> bool:
        """A limit order at `price` would cross the book (post-only check)."""
        bid, ask = self.best(symbol)
        if side == "BUY":
            return ask is not None and price >= ask
        return bid is not None and price <= bid

    def displayed_up_to(self, symbol: str, side: str, price: Decimal | None) -> Decimal:
        """Displayed quantity an order of `side` could take up to `price` (None: any)."""
        iid, inst = self.insts[symbol]
        book = self.engine.state.book
        if side == "BUY":
            n = int(book.ask_n[iid])
            px, qty = book.ask_px[iid, :n], book.ask_qty[iid, :n]
            ok = px <= inst.price_to_ticks(price) if price is not None else np.ones(n, bool)
        else:
            n = int(book.bid_n[iid])
            px, qty = book.bid_px[iid, :n], book.bid_qty[iid, :n]
            ok = px >= inst.price_to_ticks(price) if price is not None else np.ones(n, bool)
        return inst.lots_to_size(int(qty[ok].sum()))

    # -- orders -----------------------------------------------------------------------------

    def place(
        self,
        *,
        symbol: str,
        side: str,
        type: str,
        tif: str | None,
        price: Decimal | None,
        qty: Decimal,
        client_id: str,
    ) -> tuple[SandboxOrder, list[Execution]]:
        """Send an order to the engine's venue (validated by the caller).

        Raises:
            MatchError: the engine refused it (its reason in the message).
        """
        iid, inst = self.insts[symbol]
        now = self._clock_ms()
        order = SandboxOrder(
            order_id=self._next_order_id,
            client_id=client_id,
            symbol=symbol,
            side=side,
            type=type,
            tif=tif,
            price=price if price is not None else Decimal(0),
            qty=qty,
            time_ms=now,
            update_ms=now,
            client_ids=[client_id],
            expire_remainder=tif in ("IOC", "FOK"),
        )
        sign = 1 if side == "BUY" else -1
        lots = inst.size_to_lots(qty)
        if tif == "FOK" and self.displayed_up_to(symbol, side, price) < qty:
            self._register(order)
            self._ack(order)
            self._finish(order, "EXPIRED", "EXPIRED")
            return order, self._drain()
        if type == "MARKET":
            cmd = Command(CMD_MANUAL_MARKET, a=iid, b=sign, d=lots)
        else:
            assert price is not None
            cmd = Command(CMD_MANUAL_LIMIT, a=iid, b=sign, c=inst.price_to_ticks(price), d=lots)
        oid = self.engine.command(cmd)
        if oid < 0:
            raise MatchError(f"engine refused the order: {REASON_NAMES.get(-oid, -oid)}")
        order.oid = oid
        self._register(order)
        self._run_now()
        if order.expire_remainder and order.open:
            self.engine.command(Command(CMD_CANCEL, a=oid))
            self._run_now()
        return order, self._drain()

    def cancel(self, order: SandboxOrder, new_client_id: str) -> list[Execution] | None:
        """Cancel an open order; None when the venue had nothing to cancel (-2011)."""
        if not order.open or order.oid < 0:
            return None
        order.client_ids.append(new_client_id)
        self._cancel_id = (new_client_id, order.client_id)
        sent = self.engine.command(Command(CMD_CANCEL, a=order.oid))
        if not sent:
            self._cancel_id = None
            order.client_ids.pop()
            return None
        self._run_now()
        self._cancel_id = None
        if order.open:  # the cancel was rejected (too late)
            order.client_ids.pop()
            return None
        order.client_id = new_client_id
        self.by_client[new_client_id] = order
        return self._drain()

    def amend(self, order: SandboxOrder, price: Decimal, qty: Decimal) -> list[Execution] | int:
        """Move an open limit order to `price` / total `qty` in place (the engine's amend:
        a new price or a larger quantity loses the queue place). Returns the executions
        (an AMENDMENT report), or the engine's reason code when it refused."""
        _, inst = self.insts[order.symbol]
        if not order.open or order.oid < 0:
            return R_AMEND_REJECTED
        cmd = Command(
            CMD_AMEND, a=order.oid, c=inst.price_to_ticks(price), d=inst.size_to_lots(qty)
        )
        refused = self.engine.command(cmd)
        if refused:
            return int(refused)
        self._amending, self._amend_result = order.oid, R_AMEND_REJECTED
        try:
            self._run_now()
        finally:
            self._amending = -1
        if self._amend_result != R_AMENDED:
            return self._amend_result
        order.price, order.qty = price, qty
        order.update_ms = self._clock_ms()
        self._emit(order, "AMENDMENT")
        return self._drain()

    def fill_now(self, order: SandboxOrder) -> list[Execution]:
        """Fill what is left of an open order at its own price, whatever the market (a test
        hook: the market reached an order while a client was not looking); the engine's copy
        of the order is withdrawn silently. Returns the executions (one TRADE)."""
        if not order.open or order.oid < 0 or order.price <= 0:
            return []
        _, inst = self.insts[order.symbol]
        lots = inst.size_to_lots(order.qty - order.executed)
        self._fill(order, inst.price_to_ticks(order.price), lots)  # FILLED: no longer open
        self.engine.command(Command(CMD_CANCEL, a=order.oid))  # its CANCELED is not reported
        self._run_now()
        return self._drain()

    def open_orders(self, symbol: str) -> list[SandboxOrder]:
        """Open orders of a symbol, oldest first."""
        return [o for o in self.orders.values() if o.symbol == symbol and o.open]

    def find(self, client_id: str | None, order_id: int | None) -> SandboxOrder | None:
        """An order by venue id or by any client id it had (the latest with that id)."""
        if order_id is not None:
            order = self.orders.get(order_id)
            if order is not None and client_id is not None and client_id not in order.client_ids:
                return None
            return order
        if client_id is None:
            return None
        return self.by_client.get(client_id)

    def open_by_client(self, client_id: str) -> SandboxOrder | None:
        """The open order using `client_id` now, if any (duplicate check)."""
        order = self.by_client.get(client_id)
        if order is not None and order.open and order.client_id == client_id:
            return order
        return None

    # -- reading the engine back ----------------------------------------------------------

    def _register(self, order: SandboxOrder) -> None:
        self._next_order_id += 1
        self.orders[order.order_id] = order
        self.by_client[order.client_id] = order
        if order.oid >= 0:
            self._by_oid[order.oid] = order

    def _run_now(self) -> None:
        eng = self.engine
        eng.run(break_mask=BREAK_TIME, stop_ts=eng.now)
        self._collect()

    def _drain(self) -> list[Execution]:
        out, self._events_out = self._events_out, []
        return out

    def _collect(self) -> None:
        """Executions (to `_events_out`) from the journal and fill rows written since."""
        eng = self.engine
        eng.drain()
        d = eng.drained
        for chunk in d.fills[self._fill_chunks :]:
            for row in chunk:
                self._pending_fills.setdefault(int(row[F_OID]), deque()).append(
                    (int(row[F_PRICE]), int(row[F_QTY]), int(row[F_LIQ]))
                )
        self._fill_chunks = len(d.fills)
        rows = d.journal[self._journal_chunks :]
        self._journal_chunks = len(d.journal)
        for chunk in rows:
            for row in chunk:
                order = self._by_oid.get(int(row[J_OID]))
                if order is not None:
                    self._journal_row(order, row)

    def _journal_row(self, order: SandboxOrder, row: np.ndarray) -> None:
        to, reason = int(row[J_TO]), int(row[J_REASON])
        if order.oid == self._amending and reason in _AMEND_OUTCOMES:
            self._amend_result = reason
            return
        if reason == R_VENUE_ACK and to in (ST_ACCEPTED, ST_PENDING_CANCEL):
            self._ack(order)
        elif to in (ST_PARTIALLY_FILLED, ST_FILLED) and reason in (R_FILL, R_INVALID_TRANSITION):
            self._fill(order, int(row[J_PRICE]), int(row[J_QTY]))
        elif reason == R_CANCEL_REJECTED:
            pass  # the order goes on; `cancel` sees it still open
        elif to == ST_CANCELED:
            if order.expire_remainder:
                self._finish(order, "EXPIRED", "EXPIRED")
            else:
                self._finish(order, "CANCELED", "CANCELED")
        elif to == ST_EXPIRED:
            if reason == R_SELF_TRADE_PREVENTED:
                self._finish(order, "TRADE_PREVENTION", "EXPIRED_IN_MATCH")
            else:
                self._finish(order, "EXPIRED", "EXPIRED")
        elif to == ST_REJECTED:
            self._finish(order, "REJECTED", "REJECTED", reject=REASON_NAMES.get(reason, ""))

    def _ack(self, order: SandboxOrder) -> None:
        if order.acked:
            return
        order.acked = True
        self._emit(order, "NEW")

    def _fill(self, order: SandboxOrder, price_ticks: int, lots: int) -> None:
        pending = self._pending_fills.get(order.oid)
        liq = 1
        if pending:
            p, q, liq = pending.popleft()
            if (p, q) != (price_ticks, lots):
                log.error("sandbox: fill rows out of step with the journal for %d", order.oid)
        _, inst = self.insts[order.symbol]
        price = inst.ticks_to_price(price_ticks)
        qty = inst.lots_to_size(lots)
        maker = liq == 0
        rate = self.maker_fee if maker else self.taker_fee
        spec = self.replay.specs[order.symbol]
        base, quote = _assets(spec)
        buyer = order.side == "BUY"
        commission = (qty * rate) if buyer else (price * qty * rate)
        tid = self._next_trade_id[order.symbol]
        self._next_trade_id[order.symbol] = tid + 1
        now = self._clock_ms()
        trade = SandboxTrade(
            trade_id=tid,
            order_id=order.order_id,
            symbol=order.symbol,
            price=price,
            qty=qty,
            commission=commission.quantize(EIGHT, ROUND_HALF_UP),
            commission_asset=base if buyer else quote,
            time_ms=now,
            is_buyer=buyer,
            is_maker=maker,
        )
        order.trades.append(trade)
        order.executed += qty
        order.cum_quote += price * qty
        order.update_ms = now
        if order.executed >= order.qty:
            order.status = "FILLED"
        else:
            order.status = "PARTIALLY_FILLED"
        self._emit(order, "TRADE", trade=trade)

    def _finish(self, order: SandboxOrder, exec_type: str, status: str, reject: str = "") -> None:
        if not order.open and order.acked:
            return
        self._ack(order)
        order.status = status
        order.update_ms = self._clock_ms()
        if exec_type == "CANCELED" and self._cancel_id is not None:
            self._emit(order, exec_type, client_id=self._cancel_id[0], orig=self._cancel_id[1])
        else:
            self._emit(order, exec_type, reject=reject or "NONE")

    def _emit(
        self,
        order: SandboxOrder,
        exec_type: str,
        *,
        trade: SandboxTrade | None = None,
        client_id: str | None = None,
        orig: str = "",
        reject: str = "NONE",
    ) -> None:
        self._events_out.append(
            Execution(
                order=order,
                exec_type=exec_type,
                status=order.status,
                executed=order.executed,
                cum_quote=order.cum_quote,
                time_ms=order.update_ms if trade is None else trade.time_ms,
                client_id=client_id or order.client_id,
                orig_client_id=orig,
                trade=trade,
                reject_reason=reject,
            )
        )


def _assets(spec: SymbolSpec) -> tuple[str, str]:
    info = spec.info()
    return str(info["baseAsset"]), str(info["quoteAsset"])
