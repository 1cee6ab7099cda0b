"""Binance spot's execution messages, to and from the venue-neutral `ExecEvent`s.

Pure functions (no I/O), so each mapping is tested on its own and shared by the client's
live path (execution reports, replies) and its recovery path (order.status, myTrades):

- `order_params`: an OrderRequest as `order.place` / `order.cancelReplace` parameters
  (LIMIT with timeInForce, LIMIT_MAKER for post-only, which takes no timeInForce, MARKET;
  exact decimal text; newOrderRespType ACK).
- `report_events`: an `executionReport` as candidate events. `c` is the order's client id
  except on a cancel, where it is the cancel request's new id and `C` the order's.
- `canceled_event`: an order.cancel result (or an openOrders.cancelAll item).
- `OrderStatus` (order.status), `trade_fills` (myTrades) and `status_facts`: the events
  that bring an order whose story we missed to the venue's state.
- `is_unknown_error`, `retry_after_seconds`: what an error reply means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from adapters.live.exec_events import ExecEvent, OrderRequest
from adapters.live.signing import format_value
from adapters.live.ws_venue import ParseError

UNKNOWN_CODES: Final = frozenset({-1006, -1007})
"""UNEXPECTED_RESP and TIMEOUT: 'execution status unknown'."""
OPEN_STATUSES: Final = frozenset({"NEW", "PARTIALLY_FILLED", "PENDING_NEW"})
ENDED: Final = {
    "CANCELED": "canceled",
    "EXPIRED": "expired",
    "EXPIRED_IN_MATCH": "expired",
    "REJECTED": "reject",
}
"""Final order statuses and the event that ends an order in each."""


def dec(value: Any) -> Decimal:
    """A decimal from the venue's text (ParseError otherwise)."""
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ParseError(f"not a decimal: {value!r}") from None


def str_or_none(value: Any) -> str | None:
    """`str(value)`, keeping None."""
    return None if value is None else str(value)


def order_params(req: OrderRequest) -> dict[str, Any]:
    """The new-order parameters of a new or amend request (our client id included)."""
    params: dict[str, Any] = {
        "symbol": req.symbol,
        "side": "BUY" if req.side == "buy" else "SELL",
        "quantity": format_value("quantity", req.qty),
        "newClientOrderId": req.client_id,
        "newOrderRespType": "ACK",
    }
    if req.type == "market":
        params["type"] = "MARKET"
    elif req.post_only:
        params["type"] = "LIMIT_MAKER"
        params["price"] = format_value("price", req.price)
    else:
        params["type"] = "LIMIT"
        params["timeInForce"] = req.tif
        params["price"] = format_value("price", req.price)
    return params


def report_events(e: Mapping[str, Any], recv_ts_ns: int) -> tuple[list[ExecEvent], str | None]:
    """The candidate events of one executionReport, and its execution type when it is one
    we do not know (None otherwise).

    Raises:
        ParseError: a report of an unusable shape.
    """
    try:
        x, status = str(e["x"]), str(e["X"])
        c, orig = str(e["c"]), str(e.get("C") or "")
        base: dict[str, Any] = {
            "symbol": str(e["s"]),
            "venue_order_id": str(e["i"]),
            "side": str(e["S"]).lower(),
            "venue_ts_ms": e.get("T") or e.get("E"),
            "recv_ts_ns": recv_ts_ns,
            "reason": status,
        }
        cum = dec(e["z"])
        if x == "NEW":
            return [ExecEvent("ack", c, price=dec(e["p"]), qty=dec(e["q"]), **base)], None
        if x == "TRADE":
            fee_asset = e.get("N")
            fill = ExecEvent(
                "fill",
                c,
                price=dec(e["L"]),
                qty=dec(e["l"]),
                cum_qty=cum,
                trade_id=str(e["t"]),
                liquidity="maker" if e["m"] else "taker",
                fee=dec(e["n"]),
                fee_asset=str(fee_asset) if fee_asset is not None else None,
                **base,
            )
            return [fill], None
        if x == "CANCELED":
            return [ExecEvent("canceled", orig or c, cum_qty=cum, **base)], None
        if x == "EXPIRED" or (x == "TRADE_PREVENTION" and status == "EXPIRED_IN_MATCH"):
            return [ExecEvent("expired", c, cum_qty=cum, **base)], None
        if x == "TRADE_PREVENTION":
            return [], None  # a prevented match that left the order working (DECREMENT)
        if x == "REJECTED":
            return [ExecEvent("reject", c, message=str(e.get("r", "")), **base)], None
        if x == "REPLACED":  # order.amend.keepPriority (from any session of the account)
            amended = ExecEvent(
                "amended",
                c,
                orig_client_id=orig or None,
                price=dec(e["p"]),
                qty=dec(e["q"]),
                **base,
            )
            return [amended], None
    except (KeyError, TypeError, ValueError) as exc:
        raise ParseError(f"executionReport: {exc!r}") from None
    return [], x


def canceled_event(r: Any, recv_ts_ns: int) -> ExecEvent:
    """The `canceled` event of an order.cancel result or an openOrders.cancelAll item.

    Raises:
        ParseError: a result of an unusable shape.
    """
    try:
        return ExecEvent(
            "canceled",
            str(r["origClientOrderId"]),
            symbol=str(r["symbol"]),
            venue_order_id=str(r["orderId"]),
            side=str(r["side"]).lower(),  # type: ignore[arg-type]
            cum_qty=dec(r["executedQty"]),
            reason=str(r.get("status", "CANCELED")),
            venue_ts_ms=r.get("transactTime"),
            recv_ts_ns=recv_ts_ns,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ParseError(f"cancel result: {exc!r}") from None


@dataclass(frozen=True)
class OrderStatus:
    """The venue's view of one order (`order.status`)."""

    client_id: str
    venue_order_id: str
    symbol: str
    side: str
    status: str
    """NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, EXPIRED_IN_MATCH, REJECTED..."""
    price: Decimal
    qty: Decimal
    executed_qty: Decimal
    update_ms: int | None

    @property
    def open(self) -> bool:
        """Still working."""
        return self.status in OPEN_STATUSES

    @classmethod
    def from_result(cls, r: Mapping[str, Any]) -> OrderStatus:
        """From an order.status result (ParseError on a bad shape)."""
        try:
            return cls(
                client_id=str(r["clientOrderId"]),
                venue_order_id=str(r["orderId"]),
                symbol=str(r["symbol"]),
                side=str(r["side"]).lower(),
                status=str(r["status"]),
                price=dec(r["price"]),
                qty=dec(r["origQty"]),
                executed_qty=dec(r["executedQty"]),
                update_ms=r.get("updateTime"),
            )
        except (KeyError, TypeError) as exc:
            raise ParseError(f"order.status result: {exc!r}") from None


def trade_fills(
    trades: Sequence[Mapping[str, Any]], client_id: str, st: OrderStatus, recv_ts_ns: int
) -> list[ExecEvent]:
    """Fill events of an order from its myTrades result, oldest first.

    Raises:
        ParseError: a trade of an unusable shape.
    """
    out = []
    cum = Decimal(0)
    try:
        for t in sorted(trades, key=lambda t: t["id"]):
            qty = dec(t["qty"])
            cum += qty
            out.append(
                ExecEvent(
                    "fill",
                    client_id,
                    symbol=st.symbol,
                    venue_order_id=st.venue_order_id,
                    side=st.side,  # type: ignore[arg-type]
                    price=dec(t["price"]),
                    qty=qty,
                    cum_qty=cum,
                    trade_id=str(t["id"]),
                    liquidity="maker" if t["isMaker"] else "taker",
                    fee=dec(t["commission"]),
                    fee_asset=str(t["commissionAsset"]),
                    reason="myTrades",
                    venue_ts_ms=t.get("time"),
                    recv_ts_ns=recv_ts_ns,
                )
            )
    except (KeyError, TypeError) as exc:
        raise ParseError(f"myTrades result: {exc!r}") from None
    return out


def status_facts(
    client_id: str, st: OrderStatus | None, fills: Sequence[ExecEvent], recv_ts_ns: int
) -> list[ExecEvent]:
    """The events that bring an order to the venue's status: ack, fills, its end.

    `st` None means the venue does not know the order (-2013): it never arrived, a
    reject. The tracker drops what was already reported.
    """
    if st is None:
        return [
            ExecEvent(
                "reject",
                client_id,
                code=-2013,
                message="Order does not exist.",
                reason="never reached the venue",
                recv_ts_ns=recv_ts_ns,
            )
        ]
    common: dict[str, Any] = {
        "symbol": st.symbol,
        "venue_order_id": st.venue_order_id,
        "side": st.side,
        "venue_ts_ms": st.update_ms,
        "recv_ts_ns": recv_ts_ns,
    }
    if st.status == "REJECTED":
        return [ExecEvent("reject", client_id, reason=st.status, **common)]
    facts = [
        ExecEvent("ack", client_id, price=st.price, qty=st.qty, reason="order.status", **common)
    ]
    facts.extend(fills)
    ended = ENDED.get(st.status)
    if ended is not None:
        facts.append(
            ExecEvent(ended, client_id, cum_qty=st.executed_qty, reason=st.status, **common)  # type: ignore[arg-type]
        )
    return facts


def is_unknown_error(err: Mapping[str, Any]) -> bool:
    """An error reply that does not say whether the request took effect (5xx, -1006, -1007)."""
    status = err.get("status")
    return (isinstance(status, int) and status >= 500) or err.get("code") in UNKNOWN_CODES


def retry_after_seconds(err: Mapping[str, Any], now_ms: int) -> float | None:
    """Seconds until a 429/418 error's `retryAfter` (venue ms), None when it has none.

    The reply's own `serverTime` is the reference when present, else `now_ms`.
    """
    data = err.get("data")
    if not isinstance(data, dict):
        return None
    retry = data.get("retryAfter")
    if not isinstance(retry, int):
        return None
    server = data.get("serverTime")
    ref = server if isinstance(server, int) else now_ms
    return max(retry - ref, 0) / 1000.0
