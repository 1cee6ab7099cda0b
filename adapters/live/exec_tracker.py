"""Each execution fact once, in an order the engine can apply, whatever the venue sent.

A venue reports the same fact more than once (a reply and an execution report both say
"canceled"; a fill is delivered twice around a reconnect), out of order (a fill before the
acknowledgement), late (after we gave up waiting) or never (the reply was lost). The venue
client turns each message into candidate `ExecEvent`s and offers them here; the tracker
emits what is new:

- An order gets one `ack` before anything else about it; when the first thing heard is a
  fill or a cancel, an ack is synthesised from it (the venue could not fill or cancel an
  order it did not accept). Later acks are dropped.
- A fill is emitted once per trade id (`duplicate_fills` counts the rest), also after the
  order ended (a fill racing a cancel is real).
- `canceled`, `expired`, `reject`: once per order.
- A request whose outcome is `unknown` is settled by the first fact that proves its
  outcome (an event about the order it placed, the cancel of its target, a late reply) or
  by the venue client's status query (`resolve`): a `resolved` event, then the facts.
- The new order of an amend (cancel-replace) is its request: a reject of it is reported
  as `amend_rejected`, its ack is preceded by `amended`.
- An amend *in place* (`expect(req, in_place=True)`: Binance USD-M `order.modify`, which
  keeps the order's client id) creates no order: its outcome is `amended` or
  `amend_rejected` under the request's id, and the venue's report of the amendment (an
  `amended` event under the *order's* id) settles the oldest pending in-place amend of that
  order (or is a repeat of what its reply said). The order's terms follow.

It is venue-neutral and does no I/O: the venue client calls it on its event loop.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from adapters.live.exec_events import ExecEvent, OrderRequest
from engine.errors import UsageError

log = logging.getLogger(__name__)

MAX_FINISHED: Final = 10_000
"""Finished orders and requests kept to recognise late and repeated reports about them."""

_ORDER_KINDS: Final = frozenset({"ack", "fill", "canceled", "expired", "reject"})


@dataclass
class TrackedOrder:
    """What we know about one order, by its client id."""

    client_id: str
    symbol: str = ""
    side: str | None = None
    price: Decimal | None = None
    qty: Decimal | None = None
    venue_order_id: str | None = None
    acked: bool = False
    ended: str = ""
    """The terminal kind once it ended (canceled, expired, reject), else ''."""
    cum_qty: Decimal = Decimal(0)
    trade_ids: set[str] = field(default_factory=set)
    orphan: bool = False
    """Reported by the venue but never placed through this tracker."""


@dataclass
class TrackedRequest:
    """A request in flight, settled or unknown."""

    client_id: str
    kind: str
    symbol: str
    target: str | None = None
    """The order a cancel or amend is about."""
    unknown: bool = False
    settled: bool = False
    how: str = ""
    """What settled it (the venue's status, the report that proved it)."""
    result: str = ""
    """For cancel and amend requests: 'amended' or 'failed' once reported."""
    in_place: bool = False
    """An amend that changes its target in place (the order keeps its client id)."""
    price: Decimal | None = None
    qty: Decimal | None = None
    """The terms an in-place amend asks for (to judge a status query against)."""


class OrderTracker:
    """Deduplicates and orders execution facts (see the module docstring).

    Args:
        emit: called with each event to report, in order.
    """

    def __init__(self, emit: Callable[[ExecEvent], None]) -> None:
        self._emit_cb = emit
        self.orders: dict[str, TrackedOrder] = {}
        self.requests: dict[str, TrackedRequest] = {}
        self.duplicate_fills = 0
        self.duplicates = 0
        """Other repeated facts dropped (acks, terminal events, request outcomes)."""
        self.orphans = 0
        self.emitted = 0
        self._batch: list[ExecEvent] | None = None

    # -- registration ------------------------------------------------------------------

    def expect(self, req: OrderRequest, *, in_place: bool = False) -> None:
        """Register a request before it is sent (a new order or a cancel-replace amend
        also registers the order it creates; an `in_place` amend creates none).

        Raises:
            UsageError: the client id was used before (ids are never reused: a second
                request under one id could not be told apart from the first).
        """
        if req.client_id in self.requests or req.client_id in self.orders:
            raise UsageError(f"client id {req.client_id!r} was already used")
        in_place = in_place and req.kind == "amend"
        if req.kind == "new" or (req.kind == "amend" and not in_place):
            self.orders[req.client_id] = TrackedOrder(
                req.client_id, req.symbol, req.side, req.price, req.qty
            )
        self.requests[req.client_id] = TrackedRequest(
            req.client_id,
            req.kind,
            req.symbol,
            req.orig_client_id,
            in_place=in_place,
            price=req.price if in_place else None,
            qty=req.qty if in_place else None,
        )
        self._prune()

    def order(self, client_id: str) -> TrackedOrder | None:
        """The tracked order, if any."""
        return self.orders.get(client_id)

    def request(self, client_id: str) -> TrackedRequest | None:
        """The tracked request, if any."""
        return self.requests.get(client_id)

    def open_orders(self, symbol: str | None = None) -> list[TrackedOrder]:
        """Orders not known to have ended (of one symbol, or all)."""
        return [
            o
            for o in self.orders.values()
            if not o.ended and (symbol is None or o.symbol == symbol)
        ]

    def unknown_requests(self) -> list[TrackedRequest]:
        """Requests whose outcome is still unknown, oldest first."""
        return [r for r in self.requests.values() if r.unknown and not r.settled]

    # -- outcomes of requests -------------------------------------------------------------

    def unknown(self, template: ExecEvent) -> ExecEvent | None:
        """The request `template.client_id` has no known outcome: report `unknown` once.

        Returns None when the request was settled meanwhile (e.g. an execution report
        arrived before the timeout fired).
        """
        req = self.requests.get(template.client_id)
        if req is None:
            req = self.requests[template.client_id] = TrackedRequest(
                template.client_id, "new", template.symbol, template.orig_client_id
            )
        if req.settled or req.unknown:
            return None
        order = self.orders.get(req.client_id) if req.kind in ("new", "amend") else None
        if order is not None and (order.acked or order.ended):
            req.settled = True  # already proven by a report
            return None
        req.unknown = True
        ev = dataclasses.replace(template, kind="unknown")
        self._emit(ev)
        return ev

    def settle(self, client_id: str, reason: str, template: ExecEvent | None = None) -> None:
        """The request `client_id` is settled; emits `resolved` if it was unknown."""
        req = self.requests.get(client_id)
        if req is None or req.settled:
            return
        req.settled = True
        req.how = reason
        if req.unknown:
            base = template or ExecEvent("resolved", client_id, symbol=req.symbol)
            self._emit(
                dataclasses.replace(
                    base,
                    kind="resolved",
                    client_id=client_id,
                    orig_client_id=req.target,
                    reason=reason,
                )
            )

    def resolve(self, client_id: str, reason: str, facts: Iterable[ExecEvent]) -> None:
        """Settle an unknown request from a status query: `resolved`, then the facts."""
        self.settle(client_id, reason)
        for ev in facts:
            self.offer(ev)

    # -- facts ----------------------------------------------------------------------------

    def offer(self, ev: ExecEvent) -> list[ExecEvent]:
        """Report what `ev` adds to what is known; returns the events emitted for it."""
        outer, self._batch = self._batch, []
        try:
            if ev.kind in _ORDER_KINDS:
                self._order_fact(ev)
            elif ev.kind == "amended" and self._amended_in_place(ev):
                pass
            elif ev.kind in ("cancel_rejected", "amend_rejected", "amended"):
                self._request_fact(ev)
            else:
                self._emit(ev)
            return self._batch
        finally:
            if outer is not None:
                outer.extend(self._batch)
            self._batch = outer

    def _order_fact(self, ev: ExecEvent) -> None:
        order = self.orders.get(ev.client_id)
        if order is None:
            order = self.orders[ev.client_id] = TrackedOrder(
                ev.client_id, ev.symbol, ev.side, ev.price, ev.qty, orphan=True
            )
            self.orphans += 1
        if order.venue_order_id is None and ev.venue_order_id is not None:
            order.venue_order_id = ev.venue_order_id
        req = self.requests.get(ev.client_id)
        amend = req is not None and req.kind == "amend"
        if ev.kind == "reject":
            if order.acked or order.ended:
                self.duplicates += 1
                return
            order.ended = "reject"
            if amend:
                assert req is not None
                self.settle(req.client_id, ev.reason or "rejected")
                self._request_fact(
                    dataclasses.replace(ev, kind="amend_rejected", orig_client_id=req.target)
                )
                return
            self.settle(ev.client_id, ev.reason or "rejected")
            self._emit(ev)
            return
        if ev.kind == "ack":
            if order.acked or order.ended:
                self.duplicates += 1
                return
            self._ack(order, ev)
            return
        if ev.kind == "fill":
            tid = ev.trade_id
            if tid is not None and tid in order.trade_ids:
                self.duplicate_fills += 1
                return
            if not order.acked and order.ended != "reject":
                self._ack(order, ev)
            if tid is not None:
                order.trade_ids.add(tid)
            cum = ev.cum_qty
            if cum is None:
                cum = order.cum_qty + (ev.qty or 0)
            order.cum_qty = max(order.cum_qty, cum)
            self._emit(dataclasses.replace(ev, cum_qty=order.cum_qty))
            return
        # canceled / expired
        if order.ended:
            self.duplicates += 1
            return
        if not order.acked:
            self._ack(order, ev)
        order.ended = ev.kind
        if ev.kind == "canceled":
            for r in list(self.requests.values()):
                if r.kind == "cancel" and r.target == ev.client_id and not r.settled:
                    self.settle(r.client_id, ev.reason or "CANCELED")
        self._emit(ev)

    def _amended_in_place(self, ev: ExecEvent) -> bool:
        """An `amended` report under an order's own id (the venue amended it in place):
        settle the oldest pending in-place amend of it. False when `ev` is not one."""
        order = self.orders.get(ev.client_id)
        own = self.requests.get(ev.client_id)
        if order is None or (own is not None and own.kind == "amend"):
            return False  # not an order, or a cancel-replace's new order: a request fact
        if ev.price is not None:
            order.price = ev.price
        if ev.qty is not None:
            order.qty = ev.qty
        for req in self.requests.values():
            if req.in_place and req.target == ev.client_id and not req.result:
                self._request_fact(
                    dataclasses.replace(ev, client_id=req.client_id, orig_client_id=ev.client_id)
                )
                return True
        self.duplicates += 1  # the modify's reply said it first (or another session did it)
        return True

    def _ack(self, order: TrackedOrder, ev: ExecEvent) -> None:
        """Emit the order's ack (the given one, or one made from a later fact)."""
        req = self.requests.get(order.client_id)
        self.settle(order.client_id, ev.reason or ev.kind)
        if req is not None and req.kind == "amend" and req.result != "amended":
            self._request_fact(
                ExecEvent(
                    "amended",
                    order.client_id,
                    symbol=order.symbol,
                    venue_order_id=ev.venue_order_id or order.venue_order_id,
                    orig_client_id=req.target,
                    side=order.side,  # type: ignore[arg-type]
                    price=order.price,
                    qty=order.qty,
                    venue_ts_ms=ev.venue_ts_ms,
                    recv_ts_ns=ev.recv_ts_ns,
                )
            )
        order.acked = True
        if ev.kind == "ack":
            if order.price is None:
                order.price = ev.price
            if order.qty is None:
                order.qty = ev.qty
            self._emit(ev)
            return
        self._emit(
            ExecEvent(
                "ack",
                order.client_id,
                symbol=order.symbol or ev.symbol,
                venue_order_id=order.venue_order_id,
                side=order.side or ev.side,  # type: ignore[arg-type]
                price=order.price,
                qty=order.qty,
                reason=f"implied by {ev.kind}",
                venue_ts_ms=ev.venue_ts_ms,
                recv_ts_ns=ev.recv_ts_ns,
            )
        )

    def _request_fact(self, ev: ExecEvent) -> None:
        req = self.requests.get(ev.client_id)
        if req is None:
            req = self.requests[ev.client_id] = TrackedRequest(
                ev.client_id, "amend" if ev.kind != "cancel_rejected" else "cancel", ev.symbol
            )
            req.target = ev.orig_client_id
        result = "amended" if ev.kind == "amended" else "failed"
        if req.result:
            if req.result != result:
                log.warning(
                    "request %s: %s after %s; keeping the first", ev.client_id, ev.kind, req.result
                )
            self.duplicates += 1
            return
        self.settle(ev.client_id, ev.reason or ev.kind)
        req.result = result
        if req.in_place and ev.kind == "amended":
            target = self.orders.get(req.target or "")
            if target is not None:
                target.price = ev.price if ev.price is not None else target.price
                target.qty = ev.qty if ev.qty is not None else target.qty
        if ev.kind == "amend_rejected":
            order = self.orders.get(ev.client_id)
            if order is not None and not order.ended:
                order.ended = "reject"
        self._emit(dataclasses.replace(ev, orig_client_id=ev.orig_client_id or req.target))

    # -- plumbing -----------------------------------------------------------------------

    def _emit(self, ev: ExecEvent) -> None:
        self.emitted += 1
        if self._batch is not None:
            self._batch.append(ev)
        self._emit_cb(ev)

    def _prune(self) -> None:
        """Forget the oldest finished orders and requests beyond MAX_FINISHED."""
        if len(self.orders) > 2 * MAX_FINISHED:
            done = [k for k, o in self.orders.items() if o.ended]
            for k in done[: len(done) - MAX_FINISHED]:
                del self.orders[k]
        if len(self.requests) > 2 * MAX_FINISHED:
            done = [k for k, r in self.requests.items() if r.settled]
            for k in done[: len(done) - MAX_FINISHED]:
                del self.requests[k]
