"""After a restart: what the journal says about our orders against what the venue says.

`reconcile(records, queries, symbols, now_ns)` rebuilds the orders from the journal
(`order_state.rebuild`), asks the venue about every one not known to have ended (by the
client id the venue knows it by: an amended order lives on under the amend's id) and sweeps
the open orders of every symbol. Each order gets a verdict:

- `never_sent`: journaled (so maybe sent) with no answer, and the venue does not have it:
  the crash came between the journal and the send. Marked rejected in the journal; nothing
  is sent again (its client id is never reused).
- `resolved`: journaled with no answer, and the venue has it: its state is journaled.
- `caught_up`: the venue is further along than the journal (fills, an end), which is what
  a crash loses: events are journaled without a sync. The missing facts are journaled.
- `agrees`: nothing to do.
- `mismatch`: the venue contradicts the journal (fewer fills, other terms, an order the
  journal says ended is still open, an acknowledged order the venue does not know).
- `external`: an open order the journal never placed (another program, a person, or a lost
  journal). Reported, never cancelled.

Any `mismatch` or `external` halts trading until the user acknowledges the report. Orders
still open at the venue are *inherited*: the new engine does not manage them (it starts
with no orders and no position), the session lists them and cancels them on shutdown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Literal, Protocol

from adapters.live.binance_exec_messages import OrderStatus, trade_fills
from adapters.live.exec_events import ExecEvent
from adapters.live.order_records import Event, Intent, Marker, Record, Reply
from adapters.live.order_state import UNKNOWN, OrderState, Rebuilt, rebuild
from adapters.live.secrets import VenueRequestError

Verdict = Literal["never_sent", "resolved", "caught_up", "agrees", "mismatch", "external"]
HALTING: Final = frozenset({"mismatch", "external"})
_ENDED_EXEC: Final = {
    "CANCELED": "canceled",
    "EXPIRED": "expired",
    "EXPIRED_IN_MATCH": "expired",
    "REJECTED": "rejected",
}


class VenueQueries(Protocol):
    """What reconciliation asks a venue (`BinanceQueries` for Binance and the sandbox)."""

    async def order_status(self, symbol: str, client_id: str) -> OrderStatus | None:
        """The venue's view of one order; None when it does not know it."""
        ...

    async def open_orders(self, symbol: str) -> list[OrderStatus]:
        """Every open order of the account on `symbol`."""
        ...

    async def fills(self, client_id: str, status: OrderStatus) -> list[ExecEvent]:
        """The order's trades, oldest first, as fill events."""
        ...


@dataclass(frozen=True)
class ReconcileItem:
    """The verdict about one order."""

    client_id: str
    """The journal's id of the order (its first client id), or the venue's for external."""
    symbol: str
    verdict: Verdict
    journal: str
    """What the journal said: status and filled quantity."""
    venue: str
    """What the venue said."""
    detail: str = ""


@dataclass(frozen=True)
class ReconcileReport:
    """The outcome of a reconciliation."""

    items: tuple[ReconcileItem, ...]
    inherited: tuple[tuple[str, str, str], ...]
    """(venue client id, journal client id, symbol) of journal orders still open at the
    venue."""
    ts_ns: int
    records: tuple[Record, ...] = field(default=(), repr=False)
    """What to journal: the venue's facts the journal lacked, and a marker."""
    journal_positions: tuple[tuple[str, Decimal], ...] = ()
    """Net base quantity the journal's fills add up to per symbol (after this
    reconciliation's facts). The new engine starts flat: this is what it does not hold."""

    @property
    def diff(self) -> tuple[ReconcileItem, ...]:
        """The items the user must look at (they halt trading)."""
        return tuple(i for i in self.items if i.verdict in HALTING)

    @property
    def halts(self) -> bool:
        """Trading stays halted until the user acknowledges the report."""
        return bool(self.diff)

    def lines(self) -> list[str]:
        """One line per item that is not `agrees`, for a terminal."""
        return [
            f"{i.verdict:<10} {i.symbol} {i.client_id}: journal {i.journal}; venue {i.venue}"
            + (f" ({i.detail})" if i.detail else "")
            for i in self.items
            if i.verdict != "agrees"
        ]


def venue_ids(rebuilt: Rebuilt, *, amend_in_place: bool = False) -> dict[str, str]:
    """For each journal order (by first id), the client id the venue knows it by now (its
    first one when the venue amends in place)."""
    out = {cid: cid for cid in rebuilt.orders}
    if amend_in_place:
        return out
    for req in rebuilt.requests.values():
        intent = req.intent
        if intent.action == "amend" and req.status == "ack" and intent.orig_client_id in out:
            out[intent.orig_client_id] = intent.client_id
    return out


def _journal_text(order: OrderState) -> str:
    return f"{order.status} {order.filled_qty.normalize():f}/{order.qty.normalize():f}"


def _venue_text(st: OrderStatus | None) -> str:
    if st is None:
        return "does not know it"
    return f"{st.status} {st.executed_qty.normalize():f}/{st.qty.normalize():f}"


def _contradiction(order: OrderState, st: OrderStatus | None, amended: bool) -> str:
    """Why the venue's view cannot follow from the journal's ('' when it can).

    An amended order is compared by side and state only: the venue's order is the last
    cancel-replace leg (for what remained), the journal's sums every leg.
    """
    if st is None:
        return "the venue lost an order it had acknowledged" if order.acked else ""
    if st.side != order.side:
        return f"side {st.side} at the venue"
    if amended:
        return ""
    if st.qty != order.qty:
        return f"quantity {st.qty.normalize():f} at the venue"
    if order.price is not None and st.price and st.price != order.price:
        return f"price {st.price.normalize():f} at the venue"
    if st.executed_qty < order.filled_qty:
        return "the journal has more fills than the venue"
    if order.closed is not None and st.open:
        return f"the journal says {order.closed}, the venue has it open"
    return ""


def _pending_amend_applied(order: OrderState, rebuilt: Rebuilt, st: OrderStatus) -> str | None:
    """The client id of an unanswered in-place amend of `order` whose terms the venue's
    order shows (so it was carried out), else None."""
    for cid in order.pending:
        intent = rebuilt.requests[cid].intent
        if intent.action != "amend" or intent.qty is None:
            continue
        if Decimal(intent.qty) == st.qty and (
            intent.price is None or Decimal(intent.price) == st.price
        ):
            return cid
    return None


async def _venue_facts(
    root: str, order: OrderState, st: OrderStatus, queries: VenueQueries, now_ns: int
) -> list[Record]:
    """Journal records that bring a journal order up to the venue's state `st`."""
    out: list[Record] = []
    if not order.acked:
        out.append(Reply(root, "ack", now_ns, venue_order_id=st.venue_order_id))
    if st.executed_qty > order.filled_qty:
        for ev in await queries.fills(root, st):
            if ev.trade_id is None or ev.trade_id in order.trade_ids:
                continue
            assert ev.qty is not None and ev.price is not None
            out.append(
                Event(
                    root,
                    "trade",
                    now_ns,
                    venue_order_id=st.venue_order_id,
                    trade_id=ev.trade_id,
                    last_qty=format(ev.qty, "f"),
                    last_price=format(ev.price, "f"),
                )
            )
    ended = _ENDED_EXEC.get(st.status)
    if ended is not None and order.closed is None:
        out.append(Event(root, ended, now_ns, venue_order_id=st.venue_order_id))  # type: ignore[arg-type]
    return out


async def reconcile(
    records: Iterable[Record],
    queries: VenueQueries,
    symbols: Sequence[str],
    now_ns: int,
    *,
    amend_in_place: bool = False,
) -> ReconcileReport:
    """Compare the journal with the venue (see the module docstring).

    Args:
        records: the journal's records (a replay).
        queries: the venue.
        symbols: symbols to sweep for open orders (besides those the journal names).
        now_ns: local wall-clock time, for the records written.
        amend_in_place: the venue amends in place (USD-M order.modify): an amended order
            keeps its first client id and is compared with the journal's amended terms.

    Raises:
        VenueRequestError: the venue did not answer a query (nothing is decided then).
    """
    rebuilt_records = list(records)
    rebuilt = rebuild(rebuilt_records)
    ids = venue_ids(rebuilt, amend_in_place=amend_in_place)
    known = set(ids) | set(ids.values())
    items: list[ReconcileItem] = []
    out: list[Record] = []
    inherited: list[tuple[str, str, str]] = []
    for order in rebuilt.to_reconcile():
        root = order.client_id
        st = await queries.order_status(order.instrument, ids[root])
        journal, venue = _journal_text(order), _venue_text(st)
        if amend_in_place and st is not None:
            applied = _pending_amend_applied(order, rebuilt, st)
            if applied is not None:  # modified, then the crash lost the answer
                out.append(Reply(applied, "ack", now_ns, venue_order_id=st.venue_order_id))
                order.qty, order.price = st.qty, st.price
        why = _contradiction(order, st, ids[root] != root)
        if why:
            verdict: Verdict = "mismatch"
        elif st is None:  # never acknowledged and the venue does not have it
            verdict = "never_sent"
            why = "journaled, then not sent (a crash before sending)"
            out.append(
                Reply(
                    root,
                    "reject",
                    now_ns,
                    code=-2013,
                    message="not at the venue after a restart: never sent",
                )
            )
        elif order.status == UNKNOWN:
            verdict = "resolved"
        elif st.executed_qty > order.filled_qty or not st.open:
            verdict = "caught_up"
        else:
            verdict = "agrees"
        if st is not None and verdict != "mismatch":
            out += await _venue_facts(root, order, st, queries, now_ns)
        if st is not None and st.open:
            inherited.append((ids[root], root, order.instrument))
        items.append(ReconcileItem(root, order.instrument, verdict, journal, venue, why))
    reconciled = {i.client_id for i in items}
    by_venue_id = {v: k for k, v in ids.items()}
    sweep = sorted({*symbols, *(o.instrument for o in rebuilt.orders.values())})
    for symbol in sweep:
        for st in await queries.open_orders(symbol):
            root = by_venue_id.get(st.client_id, st.client_id)
            if root in reconciled:
                continue
            if st.client_id not in known:
                items.append(
                    ReconcileItem(
                        st.client_id,
                        symbol,
                        "external",
                        "never placed by this journal",
                        _venue_text(st),
                        f"{st.side} {st.qty.normalize():f} at {st.price.normalize():f}",
                    )
                )
                continue
            order = rebuilt.orders[root]
            inherited.append((st.client_id, root, symbol))
            items.append(
                ReconcileItem(
                    root,
                    symbol,
                    "mismatch",
                    _journal_text(order),
                    _venue_text(st),
                    f"the journal says {order.status}, the venue has it open",
                )
            )
    counts: dict[str, str | int] = {}
    for item in items:
        counts[item.verdict] = int(counts.get(item.verdict, 0)) + 1
    out.append(Marker("reconciled", now_ns, counts))
    held = filled_positions(rebuild([*rebuilt_records, *out]))
    return ReconcileReport(
        tuple(items),
        tuple(inherited),
        now_ns,
        tuple(out),
        tuple((sym, qty) for sym, qty in sorted(held.items()) if qty != 0),
    )


class BinanceQueries:
    """`VenueQueries` over a connected `BinanceSpotExec` (order.status, openOrders.status,
    myTrades), within its rate limits."""

    def __init__(self, exec_client) -> None:  # BinanceSpotExec (imported lazily by callers)
        self.exec = exec_client

    async def order_status(self, symbol: str, client_id: str) -> OrderStatus | None:
        return await self.exec.order_status(client_id, symbol)

    async def open_orders(self, symbol: str) -> list[OrderStatus]:
        result = await self._signed("openOrders.status", {"symbol": symbol}, 6)
        if not isinstance(result, list):
            raise VenueRequestError(f"openOrders.status {symbol}: unexpected answer")
        return [OrderStatus.from_result(r) for r in result]

    async def fills(self, client_id: str, status: OrderStatus) -> list[ExecEvent]:
        params = {"symbol": status.symbol, "orderId": int(status.venue_order_id)}
        result = await self._signed("myTrades", params, 5)
        if not isinstance(result, list):
            raise VenueRequestError(f"myTrades {client_id}: unexpected answer")
        return trade_fills(result, client_id, status, 0)

    async def _signed(self, method: str, params: dict, weight: int) -> object:
        await self.exec.limiter.acquire({"REQUEST_WEIGHT": weight})
        reply = await self.exec.request({"method": method, "params": params}, signed=True)
        if not reply.ok:
            raise VenueRequestError(
                f"{method}: no usable answer ({reply.outcome.name.lower()}: "
                f"{reply.reason or 'error'})"
            )
        return reply.result


def filled_positions(rebuilt: Rebuilt) -> dict[str, Decimal]:
    """Net base quantity bought minus sold per symbol, from the journal's fills."""
    out: dict[str, Decimal] = {}
    for o in rebuilt.orders.values():
        sign = 1 if o.side == "buy" else -1
        out[o.instrument] = out.get(o.instrument, Decimal(0)) + sign * o.filled_qty
    return out


def carried_positions(records: Iterable[Record]) -> dict[str, tuple[Decimal, Decimal]]:
    """Net base quantity and its average price per symbol, from the journal's fills.

    What an earlier run of the session left open, for the new engine to start from. The
    fills are taken in journal order (the order they arrived in) with the engine's own
    average-cost rule: a fill that adds to the position adds its cost; one that reduces it
    keeps the average; one that crosses zero starts the new side at its own price. A trade id
    reported twice counts once.
    """
    orders: dict[str, tuple[str, str]] = {}  # client id -> (symbol, side)
    seen: set[tuple[str, str]] = set()
    held: dict[str, list[Decimal]] = {}  # symbol -> [signed qty, signed cost]
    for r in records:
        if isinstance(r, Intent) and r.action == "new" and r.side is not None:
            orders[r.client_id] = (r.instrument, r.side)
        elif isinstance(r, Event) and r.exec_type == "trade":
            order = orders.get(r.client_id)
            if order is None or r.last_qty is None or r.last_price is None:
                continue
            key = (r.client_id, r.trade_id or "")
            if key in seen:
                continue
            seen.add(key)
            sym, side = order
            qty = Decimal(r.last_qty) * (1 if side == "buy" else -1)
            pos_cost = held.setdefault(sym, [Decimal(0), Decimal(0)])
            _add_fill(pos_cost, qty, Decimal(r.last_price))
    return {sym: (pos, cost / pos) for sym, (pos, cost) in sorted(held.items()) if pos != 0}


def _add_fill(pos_cost: list[Decimal], qty: Decimal, price: Decimal) -> None:
    """Average cost: [position, cost] after a signed fill of `qty` at `price`."""
    pos, cost = pos_cost
    new = pos + qty
    if pos == 0 or (pos > 0) == (qty > 0):  # opening or adding
        cost += qty * price
    elif new == 0:
        cost = Decimal(0)
    elif (new > 0) == (pos > 0):  # reducing: the average stays
        cost = cost * new / pos
    else:  # crossing zero: what is left is new, at this fill's price
        cost = new * price
    pos_cost[0], pos_cost[1] = new, cost
