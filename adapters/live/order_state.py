"""The orders as the journal knows them: where reconciliation after a crash starts.

`rebuild(records)` replays a journal's records into one `OrderState` per new-order intent,
keyed by its client id. What it can know:

- an intent with no reply and no report is `unknown`: it was journaled, so it may have been
  sent, and only the venue can say (query the order by client id);
- a reply or a `new` report with the venue's order id makes it `accepted`;
- fills are summed from trade reports deduplicated by trade id, so a fill reported twice
  (WebSocket and REST, or replayed after a reconnect) counts once; the order is
  `partially_filled` or `filled` (a fill proves the order reached the venue even when the
  ack was lost);
- `canceled` / `expired` / `rejected` from the venue's reply or report (a fill of the full
  quantity wins over a cancel that raced it);
- cancel and amend requests without a reply are listed in `pending` on their target order.

The status names are the engine's (engine/codes.py `STATE_NAMES`) plus `unknown`. Records are
applied in journal order, and the result does not depend on whether a fill was journaled
before or after its order's ack.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Literal

from adapters.live.order_records import Event, Intent, Marker, Record, Reply
from engine.errors import DataError

UNKNOWN: Final = "unknown"
ACCEPTED: Final = "accepted"
PARTIALLY_FILLED: Final = "partially_filled"
FILLED: Final = "filled"
CANCELED: Final = "canceled"
EXPIRED: Final = "expired"
REJECTED: Final = "rejected"
TERMINAL: Final = frozenset({FILLED, CANCELED, EXPIRED, REJECTED})

_CLOSING_EVENTS: Final = {"canceled": CANCELED, "expired": EXPIRED, "rejected": REJECTED}


@dataclass
class OrderState:
    """One order rebuilt from the journal (mutable while `rebuild` runs)."""

    client_id: str
    instrument: str
    side: str
    order_type: str
    qty: Decimal
    """Ordered quantity (after any acknowledged amend)."""
    price: Decimal | None
    tif: str | None = None
    venue_order_id: str | None = None
    acked: bool = False
    """The venue confirmed the order (reply ack, `new` report, or any fill)."""
    closed: str | None = None
    """canceled, expired or rejected, as the venue said; None while it may be working."""
    filled_qty: Decimal = Decimal(0)
    filled_notional: Decimal = Decimal(0)
    """Sum of fill quantity times price (for the average fill price)."""
    trade_ids: set[str] = field(default_factory=set)
    duplicate_fills: int = 0
    """Trade reports ignored because their trade id was already counted."""
    pending: list[str] = field(default_factory=list)
    """Client ids of cancel/amend requests about this order with no reply yet."""
    code: int | None = None
    """The venue's error code of the last reject about this order (or a request on it)."""
    message: str = ""

    @property
    def status(self) -> str:
        """unknown, accepted, partially_filled, filled, canceled, expired or rejected."""
        if self.filled_qty >= self.qty:
            return FILLED
        if self.closed is not None:
            return self.closed
        if self.filled_qty > 0:
            return PARTIALLY_FILLED
        return ACCEPTED if self.acked else UNKNOWN

    @property
    def open_qty(self) -> Decimal:
        """Quantity still working (zero once terminal)."""
        return Decimal(0) if self.status in TERMINAL else self.qty - self.filled_qty

    @property
    def avg_price(self) -> Decimal | None:
        """Average fill price, None before any fill."""
        return self.filled_notional / self.filled_qty if self.filled_qty else None


@dataclass
class Request:
    """A cancel or amend request and what became of it."""

    intent: Intent
    status: Literal["pending", "ack", "reject"] = "pending"
    code: int | None = None
    message: str = ""


@dataclass
class Rebuilt:
    """The result of `rebuild`."""

    orders: dict[str, OrderState]
    """By client id, in the order the intents were journaled."""
    requests: dict[str, Request]
    """Cancel and amend requests by their own client id."""
    orphans: list[Reply | Event]
    """Replies and reports about client ids the journal has no intent for."""
    markers: list[Marker]

    def to_reconcile(self) -> list[OrderState]:
        """Orders whose fate the venue must confirm: every one not known to be terminal."""
        return [o for o in self.orders.values() if o.status not in TERMINAL]


def rebuild(records: Iterable[Record]) -> Rebuilt:
    """The per-order state from a journal's records (see the module doc).

    Raises:
        DataError: a client id used by two intents (ids are never reused: the journal is
            wrong), naming both record numbers.
    """
    orders: dict[str, OrderState] = {}
    requests: dict[str, Request] = {}
    first_use: dict[str, int] = {}
    orphans: list[Reply | Event] = []
    markers: list[Marker] = []
    for index, record in enumerate(records):
        if isinstance(record, Intent):
            if record.client_id in first_use:
                raise DataError(
                    f"record {index}: client id {record.client_id!r} already used by record "
                    f"{first_use[record.client_id]}",
                    field="client_id",
                )
            first_use[record.client_id] = index
            _apply_intent(record, orders, requests)
        elif isinstance(record, Reply):
            if not _apply_reply(record, orders, requests):
                orphans.append(record)
        elif isinstance(record, Event):
            order = orders.get(record.client_id)
            if order is None:
                orphans.append(record)
            else:
                _apply_event(record, order)
        else:
            markers.append(record)
    return Rebuilt(orders, requests, orphans, markers)


def _apply_intent(
    intent: Intent, orders: dict[str, OrderState], requests: dict[str, Request]
) -> None:
    if intent.action == "new":
        assert intent.side is not None and intent.order_type is not None
        assert intent.qty is not None
        orders[intent.client_id] = OrderState(
            client_id=intent.client_id,
            instrument=intent.instrument,
            side=intent.side,
            order_type=intent.order_type,
            qty=Decimal(intent.qty),
            price=None if intent.price is None else Decimal(intent.price),
            tif=intent.tif,
        )
        return
    requests[intent.client_id] = Request(intent)
    target = orders.get(intent.orig_client_id or "")
    if target is not None:
        target.pending.append(intent.client_id)


def _apply_reply(reply: Reply, orders: dict[str, OrderState], requests: dict[str, Request]) -> bool:
    order = orders.get(reply.client_id)
    if order is not None:
        if reply.venue_order_id is not None:
            order.venue_order_id = reply.venue_order_id
        if reply.status == "ack":
            order.acked = True
        else:
            order.closed = REJECTED
            order.code, order.message = reply.code, reply.message
        return True
    request = requests.get(reply.client_id)
    if request is None:
        return False
    request.status = reply.status
    request.code, request.message = reply.code, reply.message
    target = orders.get(request.intent.orig_client_id or "")
    if target is None:
        return True
    if reply.client_id in target.pending:
        target.pending.remove(reply.client_id)
    if reply.status == "reject":
        target.code, target.message = reply.code, reply.message
    elif request.intent.action == "cancel":
        target.acked = True
        target.closed = target.closed or CANCELED
    else:  # amend acknowledged: the new total quantity (and price)
        assert request.intent.qty is not None
        target.acked = True
        target.qty = Decimal(request.intent.qty)
        if request.intent.price is not None:
            target.price = Decimal(request.intent.price)
    return True


def _apply_event(event: Event, order: OrderState) -> None:
    if event.venue_order_id is not None:
        order.venue_order_id = event.venue_order_id
    order.acked = True  # any report means the venue has the order
    if event.exec_type == "trade":
        assert event.trade_id is not None
        if event.trade_id in order.trade_ids:
            order.duplicate_fills += 1
            return
        assert event.last_qty is not None and event.last_price is not None
        order.trade_ids.add(event.trade_id)
        qty = Decimal(event.last_qty)
        order.filled_qty += qty
        order.filled_notional += qty * Decimal(event.last_price)
    elif event.exec_type in _CLOSING_EVENTS:
        order.closed = order.closed or _CLOSING_EVENTS[event.exec_type]
