"""The engine's orders at the venue: outbox rows to requests, execution events to reports.

`LiveOrders` is the translation layer of a live session, with no I/O of its own:

- `prepare(out)` turns one outbox row of `engine.live.LiveEngine` (ticks, lots, engine
  codes) into the venue request (`exec_events.OrderRequest`, exact Decimals, a fresh client
  id from `ClientIdAllocator`) and the journal record (`order_records.Intent`) that must be
  on disk before it is sent. An order the venue's filters would refuse is refused here: the
  engine is told `ST_REJECTED` with an engine reason code and nothing is journaled or sent.
- `on_exec(ev, ts)` applies one `ExecEvent` to the engine (acknowledge, fill, report,
  amended) and returns the journal records it calls for (replies and events).

Client ids. An order keeps its first client id (`root`) in the journal for its whole life,
so `order_state.rebuild` sees one order; at the venue it is known by `venue_cid`, which an
amend changes (Binance's cancel-replace places a new order under the amend's client id).
Cancels and amends have their own ids, journaled with the root as `orig_client_id` and sent
with the venue id. Journaled amend quantities are the new *total* (what `rebuild` applies);
the venue's new order is for what remains unfilled.

Amends. Cancel-replace reports the old order's `canceled` before the outcome of the amend:
while an amend is pending that cancel is held back; `amended` makes it moot, and
`amend_rejected` (the new order failed after the old one was canceled) reports it then.

Amends in place (`amend_in_place`, Binance USD-M `order.modify`): the amend request still
has its own client id (journal and tracker key) but the order keeps its `venue_cid`; the
request asks for the new *total* quantity (the venue's modify takes the order's quantity,
not what remains); a cancel or expiry of the order while it is pending is the order's own
end (a modify may cancel it), never held back.

Events about client ids this session did not place (orders inherited from a previous run,
or placed elsewhere) do not touch the engine; they are counted and journaled as markers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Literal

from adapters.live.client_ids import ClientIdAllocator
from adapters.live.exec_events import ExecEvent, OrderRequest
from adapters.live.order_records import Event, Intent, Marker, Record, Reply
from adapters.live.venue_filters import VenueFilters
from engine.codes import (
    LIQ_MAKER,
    LIQ_TAKER,
    OF_FLATTEN,
    OF_POST_ONLY,
    OF_REDUCE_ONLY,
    OT_MARKET,
    R_AMEND_REJECTED,
    R_AMENDED,
    R_BAD_PRICE,
    R_BAD_QUANTITY,
    R_BELOW_MIN_NOTIONAL,
    R_CANCEL_REJECTED,
    R_CANCELED,
    R_FOK_UNFILLABLE,
    R_IOC_REMAINDER,
    R_NO_LIQUIDITY,
    R_NONE,
    R_POST_ONLY_WOULD_CROSS,
    R_RISK_NO_MARKET,
    R_SELF_TRADE_PREVENTED,
    R_UNKNOWN_ORDER,
    R_VENUE_ACK,
    SIDE_BUY_CODE,
    ST_CANCELED,
    ST_EXPIRED,
    ST_REJECTED,
    TIF_FOK,
    TIF_GTC,
    TIF_IOC,
)
from engine.instruments import InstrumentRegistry
from engine.live import (
    OUT_AMEND,
    OUT_CANCEL,
    OUT_NEW,
    REPORT_AMEND_REJECTED,
    REPORT_CANCEL_REJECTED,
    LiveEngine,
    Outbound,
)

TIF_TEXT: Final = {TIF_GTC: "GTC", TIF_IOC: "IOC", TIF_FOK: "FOK"}
_END_EXEC: Final = {"canceled": "canceled", "expired": "expired"}


def reject_reason(message: str, code: int | None = None) -> int:
    """The engine reason code (engine/codes.py) closest to a venue's reject message.

    Binance words its refusals: filter failures name the filter, -2010 says why the order
    could not be placed, -2013 that the venue never had it. R_NONE when nothing fits (the
    venue's code and message stay in the journal).
    """
    text = message.lower()
    if "price_filter" in text or "percent_price" in text:
        return R_BAD_PRICE
    if "lot_size" in text:
        return R_BAD_QUANTITY
    if "notional" in text:
        return R_BELOW_MIN_NOTIONAL
    if "immediately match" in text:
        return R_POST_ONLY_WOULD_CROSS
    if "market is closed" in text:
        return R_RISK_NO_MARKET
    if code == -2013 or "does not exist" in text:
        return R_UNKNOWN_ORDER
    return R_NONE


def expire_reason(ev: ExecEvent, tif: int, otype: int) -> int:
    """Why the venue expired an order, as an engine reason code."""
    if "EXPIRED_IN_MATCH" in ev.reason or "PREVENTION" in ev.reason:
        return R_SELF_TRADE_PREVENTED
    if otype == OT_MARKET:
        return R_NO_LIQUIDITY
    if tif == TIF_FOK:
        return R_FOK_UNFILLABLE
    if tif == TIF_IOC:
        return R_IOC_REMAINDER
    return R_NONE


@dataclass
class LiveOrder:
    """One engine order as the session knows it."""

    oid: int
    root: str
    """The client id it was placed with (its key in the journal)."""
    venue_cid: str
    """The client id the venue knows it by now (an amend's id after a cancel-replace)."""
    inst: int
    symbol: str
    side: Literal["buy", "sell"]
    otype: int
    tif: int
    post_only: bool
    price: Decimal | None
    qty: Decimal
    """Total ordered quantity (after amends)."""
    sent_ns: int
    filled: Decimal = Decimal(0)
    acked: bool = False
    done: bool = False
    cancel_cid: str | None = None
    amend_cid: str | None = None
    amend_price: Decimal | None = None
    amend_total: Decimal | None = None
    old_leg_canceled: bool = False
    code: int | None = None
    message: str = ""


@dataclass(frozen=True)
class Prepared:
    """A request ready to go: journal `intent` first, then send `request`."""

    request: OrderRequest
    intent: Intent
    oid: int


@dataclass(frozen=True)
class UnknownRequest:
    """A request whose outcome nobody knows yet (shown to the user until resolved)."""

    client_id: str
    kind: str
    symbol: str
    since_ns: int
    reason: str


@dataclass
class Counts:
    """What went through the session (for `status()`)."""

    sent: int = 0
    """Requests handed to the venue client (new orders, cancels, amends)."""
    orders: int = 0
    """New orders sent."""
    acked: int = 0
    fills: int = 0
    rejected: int = 0
    refused_locally: int = 0
    """Refused by the venue's filters before sending."""
    canceled: int = 0
    expired: int = 0
    unknown: int = 0
    """Requests that went UNKNOWN (resolved or not)."""
    resolved: int = 0
    foreign_events: int = 0
    """Events about orders this session did not place."""


@dataclass
class LiveOrders:
    """Translation between the engine's outbox and the venue (see the module docstring).

    Args:
        engine: the live engine (told about venue answers).
        instruments: the engine's registry (ticks and lots to decimals).
        ids: client ids for new requests.
        filters: the venue's rules by symbol (checked before sending; missing: unchecked).
        ref_price: mid price of an instrument for the notional rule of market orders.
    """

    engine: LiveEngine
    instruments: InstrumentRegistry
    ids: ClientIdAllocator
    filters: Mapping[str, VenueFilters] = field(default_factory=dict)
    ref_price: Callable[[int], Decimal | None] = lambda inst: None
    by_oid: dict[int, LiveOrder] = field(default_factory=dict)
    by_cid: dict[str, LiveOrder] = field(default_factory=dict)
    """Order legs by client id: roots and the new orders of amends."""
    requests: dict[str, tuple[str, LiveOrder]] = field(default_factory=dict)
    """Cancel and amend requests by their client id: (kind, order)."""
    unknown: dict[str, UnknownRequest] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)
    foreign: Callable[[ExecEvent], list[Record]] | None = None
    """Called with events about client ids this session did not place (inherited orders)."""
    amend_in_place: bool = False
    """The venue amends an order in place (it keeps its client id), see the module doc."""

    # -- outbound -------------------------------------------------------------------------

    def prepare(self, out: Outbound, now_ns: int) -> Prepared | None:
        """The request and journal record of one outbox row, or None when it goes nowhere
        (refused by the filters: the engine was told; or about an order we do not know)."""
        if out.kind == OUT_NEW:
            return self._prepare_new(out, now_ns)
        order = self.by_oid.get(out.oid)
        if order is None or order.done:
            return None  # ended meanwhile at the venue: the engine hears it from the report
        if out.kind == OUT_CANCEL:
            cid = self.ids.next()
            order.cancel_cid = cid
            self.requests[cid] = ("cancel", order)
            req = OrderRequest("cancel", cid, order.symbol, orig_client_id=order.venue_cid)
            intent = Intent("cancel", cid, order.symbol, now_ns, orig_client_id=order.root)
            return Prepared(req, intent, out.oid)
        if out.kind == OUT_AMEND:
            return self._prepare_amend(out, order, now_ns)
        return None

    def _prepare_new(self, out: Outbound, now_ns: int) -> Prepared | None:
        inst = self.instruments[out.inst]
        market = out.otype == OT_MARKET
        side: Literal["buy", "sell"] = "buy" if out.side == SIDE_BUY_CODE else "sell"
        tif = TIF_TEXT.get(out.tif, "GTC")
        post_only = bool(out.flags & OF_POST_ONLY)
        price = None if market else inst.ticks_to_price(out.price)
        qty = inst.lots_to_size(out.qty)
        cid = self.ids.next()
        req = OrderRequest(
            "new",
            cid,
            inst.symbol,
            side=side,
            type="market" if market else "limit",
            tif="GTC" if market else tif,  # type: ignore[arg-type]
            post_only=post_only and not market,
            price=price,
            qty=qty,
            # Futures: a reduce-only or flatten order must not open a position if the
            # venue's differs from the engine's (spot's parameters leave it out).
            reduce_only=bool(out.flags & (OF_REDUCE_ONLY | OF_FLATTEN)),
        )
        why = self._refusal(req, out.inst)
        if why is not None:
            self.counts.refused_locally += 1
            self.engine.report(out.oid, ST_REJECTED, reject_reason(why), now_ns)
            return None
        order = LiveOrder(
            oid=out.oid,
            root=cid,
            venue_cid=cid,
            inst=out.inst,
            symbol=inst.symbol,
            side=side,
            otype=out.otype,
            tif=out.tif,
            post_only=req.post_only,
            price=price,
            qty=qty,
            sent_ns=now_ns,
        )
        self.by_oid[out.oid] = order
        self.by_cid[cid] = order
        intent = Intent(
            "new",
            cid,
            inst.symbol,
            now_ns,
            side=side,
            price=None if price is None else _text(price),
            qty=_text(qty),
            order_type=req.type,
            tif=None if market else req.tif,
            post_only=req.post_only,
        )
        return Prepared(req, intent, out.oid)

    def _prepare_amend(self, out: Outbound, order: LiveOrder, now_ns: int) -> Prepared | None:
        inst = self.instruments[out.inst]
        price = inst.ticks_to_price(out.price)
        total = inst.lots_to_size(out.qty)
        cid = self.ids.next()
        req = OrderRequest(
            "amend",
            cid,
            order.symbol,
            orig_client_id=order.venue_cid,
            side=order.side,
            tif=TIF_TEXT.get(order.tif, "GTC"),  # type: ignore[arg-type]
            post_only=order.post_only,
            price=price,
            # cancel-replace: the new order is for what remains; modify: the new total
            qty=total if self.amend_in_place else total - order.filled,
        )
        why = self._refusal(req, out.inst)
        if why is not None:
            self.counts.refused_locally += 1
            self.engine.report(out.oid, REPORT_AMEND_REJECTED, R_AMEND_REJECTED, now_ns)
            return None
        order.amend_cid = cid
        order.amend_price = price
        order.amend_total = total
        order.old_leg_canceled = False
        self.requests[cid] = ("amend", order)
        if not self.amend_in_place:
            self.by_cid[cid] = order  # the new order of a cancel-replace reports under it
        intent = Intent(
            "amend",
            cid,
            order.symbol,
            now_ns,
            price=_text(price),
            qty=_text(total),
            orig_client_id=order.root,
        )
        return Prepared(req, intent, out.oid)

    def _refusal(self, req: OrderRequest, inst: int) -> str | None:
        filt = self.filters.get(req.symbol)
        if filt is None:
            return None
        return filt.check(req, ref_price=self.ref_price(inst) if req.type == "market" else None)

    def not_sent(self, prepared: Prepared, why: str, now_ns: int) -> None:
        """A prepared request could not be journaled or sent: the engine hears it failed."""
        order = self.by_oid.get(prepared.oid)
        kind = prepared.request.kind
        if kind == "new":
            self.engine.report(prepared.oid, ST_REJECTED, R_NONE, now_ns)
            if order is not None:
                order.done, order.message = True, why
        elif kind == "cancel":
            self.engine.report(prepared.oid, REPORT_CANCEL_REJECTED, R_CANCEL_REJECTED, now_ns)
            if order is not None:
                order.cancel_cid = None
        else:
            self.engine.report(prepared.oid, REPORT_AMEND_REJECTED, R_AMEND_REJECTED, now_ns)
            if order is not None:
                order.amend_cid = None

    def working(self) -> list[LiveOrder]:
        """Orders not known to have ended."""
        return [o for o in self.by_oid.values() if not o.done]

    # -- inbound --------------------------------------------------------------------------

    def on_exec(self, ev: ExecEvent, ts: int) -> list[Record]:
        """Apply one execution event to the engine (at local time `ts`); returns the journal
        records it calls for."""
        kind = ev.kind
        cid = ev.client_id
        if kind == "unknown":
            self.counts.unknown += 1
            self.unknown[cid] = UnknownRequest(cid, self._kind_of(cid), ev.symbol, ts, ev.reason)
            return [Marker("unknown", ts, {"client_id": cid, "reason": ev.reason[:200]})]
        if kind == "resolved":
            if self.unknown.pop(cid, None) is not None:
                self.counts.resolved += 1
            return [Marker("resolved", ts, {"client_id": cid, "reason": ev.reason[:200]})]
        if kind in ("cancel_rejected", "amended", "amend_rejected"):
            entry = self.requests.get(cid)
            if entry is None:
                return self._foreign(ev)
            return self._request_outcome(ev, entry[1], ts)
        order = self.by_cid.get(cid)
        if order is None:
            return self._foreign(ev)
        if kind == "ack":
            if cid != order.root or order.acked:
                return []  # the new order of an amend: `amended` told the engine
            order.acked = True
            self.counts.acked += 1
            self.engine.acknowledge(order.oid, R_VENUE_ACK, ts)
            return [Reply(order.root, "ack", ts, venue_order_id=ev.venue_order_id)]
        if kind == "fill":
            return self._fill(ev, order, ts)
        if kind == "reject":
            order.done = True
            order.code, order.message = ev.code, ev.message
            self.counts.rejected += 1
            self.engine.report(order.oid, ST_REJECTED, reject_reason(ev.message, ev.code), ts)
            return [Reply(cid, "reject", ts, code=ev.code, message=ev.message[:200])]
        # canceled / expired
        if order.amend_cid is not None and cid != order.amend_cid and not self.amend_in_place:
            order.old_leg_canceled = True  # the cancel half of a cancel-replace: held back
            return []
        return self._end(ev, order, ts)

    def _fill(self, ev: ExecEvent, order: LiveOrder, ts: int) -> list[Record]:
        inst = self.instruments[order.inst]
        assert ev.qty is not None and ev.price is not None
        liq = LIQ_MAKER if ev.liquidity == "maker" else LIQ_TAKER
        self.engine.fill(
            order.oid, inst.size_to_lots(ev.qty), inst.price_to_ticks(ev.price), liq, ts
        )
        order.filled += ev.qty
        self.counts.fills += 1
        if order.filled >= order.qty:
            order.done = True
        trade_id = ev.trade_id or f"{ev.venue_order_id}-{order.filled}"
        return [
            Event(
                order.root,
                "trade",
                ts,
                venue_order_id=ev.venue_order_id,
                trade_id=trade_id,
                last_qty=_text(ev.qty),
                last_price=_text(ev.price),
            )
        ]

    def _end(self, ev: ExecEvent, order: LiveOrder, ts: int) -> list[Record]:
        order.done = True
        records: list[Record] = [
            Event(order.root, _END_EXEC[ev.kind], ts, venue_order_id=ev.venue_order_id)  # type: ignore[arg-type]
        ]
        if ev.kind == "canceled":
            self.counts.canceled += 1
            self.engine.report(order.oid, ST_CANCELED, R_CANCELED, ts)
        else:
            self.counts.expired += 1
            self.engine.report(order.oid, ST_EXPIRED, expire_reason(ev, order.tif, order.otype), ts)
        if order.cancel_cid is not None:
            records.append(Reply(order.cancel_cid, "ack", ts, venue_order_id=ev.venue_order_id))
            order.cancel_cid = None
        return records

    def _request_outcome(self, ev: ExecEvent, order: LiveOrder, ts: int) -> list[Record]:
        cid = ev.client_id
        if ev.kind == "cancel_rejected":
            if order.cancel_cid == cid:
                order.cancel_cid = None
            self.engine.report(order.oid, REPORT_CANCEL_REJECTED, R_CANCEL_REJECTED, ts)
            return [Reply(cid, "reject", ts, code=ev.code, message=ev.message[:200])]
        if ev.kind == "amended":
            inst = self.instruments[order.inst]
            assert order.amend_price is not None and order.amend_total is not None
            reply = Reply(cid, "ack", ts, venue_order_id=ev.venue_order_id)
            if self.amend_in_place:
                if order.amend_cid == cid:
                    order.amend_cid = None
                if order.done:
                    return [reply]  # ended meanwhile (filled): that state stands
            else:
                order.venue_cid = cid
            order.price, order.qty = order.amend_price, order.amend_total
            order.amend_cid = None
            order.old_leg_canceled = False
            self.engine.amended(
                order.oid,
                inst.price_to_ticks(order.price),
                inst.size_to_lots(order.qty),
                R_AMENDED,
                ts,
            )
            return [reply]
        # amend_rejected: the order keeps its terms, unless its old leg was canceled
        order.amend_cid = None
        self.engine.report(order.oid, REPORT_AMEND_REJECTED, R_AMEND_REJECTED, ts)
        records: list[Record] = [Reply(cid, "reject", ts, code=ev.code, message=ev.message[:200])]
        if order.old_leg_canceled:
            order.old_leg_canceled = False
            cancel = ExecEvent("canceled", order.venue_cid, symbol=order.symbol, reason="amend")
            records += self._end(cancel, order, ts)
        return records

    def _foreign(self, ev: ExecEvent) -> list[Record]:
        self.counts.foreign_events += 1
        if self.foreign is not None:
            return self.foreign(ev)
        return []

    def _kind_of(self, cid: str) -> str:
        entry = self.requests.get(cid)
        if entry is not None:
            return entry[0]
        return "new" if cid in self.by_cid else "?"


def _text(value: Decimal) -> str:
    """Plain decimal text (no exponent), as the journal wants it."""
    text = format(value, "f")
    return text
