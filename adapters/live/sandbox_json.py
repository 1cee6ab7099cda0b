"""The JSON the sandbox's WebSocket API sends: execution reports and order replies.

Shapes as Binance documents them for the spot WebSocket API (web-socket-api.md,
user-data-stream.md): prices and quantities as text with 8 decimals, times in ms. Fields
the sandbox has no use for are sent with Binance's neutral values (stop price 0, order
list -1, STP mode EXPIRE_TAKER, the engine's).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from adapters.live.sandbox_matching import Execution, SandboxOrder, SandboxTrade, fmt8

ZERO8: Final = "0.00000000"


def execution_report(ex: Execution, now_ms: int) -> dict:
    """The executionReport of one execution."""
    o, t = ex.order, ex.trade
    return {
        "e": "executionReport",
        "E": now_ms,
        "s": o.symbol,
        "c": ex.client_id,
        "S": o.side,
        "o": o.type,
        "f": o.tif or "GTC",
        "q": fmt8(o.qty),
        "p": fmt8(o.price),
        "P": ZERO8,
        "F": ZERO8,
        "g": -1,
        "C": ex.orig_client_id,
        "x": ex.exec_type,
        "X": ex.status,
        "r": ex.reject_reason,
        "i": o.order_id,
        "l": fmt8(t.qty) if t else ZERO8,
        "z": fmt8(ex.executed),
        "L": fmt8(t.price) if t else ZERO8,
        "n": fmt8(t.commission) if t else "0",
        "N": t.commission_asset if t else None,
        "T": ex.time_ms,
        "t": t.trade_id if t else -1,
        "w": ex.status in ("NEW", "PARTIALLY_FILLED") and o.type != "MARKET",
        "m": t.is_maker if t else False,
        "M": False,
        "O": o.time_ms,
        "Z": fmt8(ex.cum_quote),
        "Y": fmt8(t.price * t.qty) if t else ZERO8,
        "Q": ZERO8,
        "W": o.time_ms,
        "V": "EXPIRE_TAKER",
    }


def rejected_report(new: Mapping[str, Any], why: str, now: int) -> dict:
    """The REJECTED executionReport of a cancel-replace's new order (never placed)."""
    price = new["price"] if new["price"] is not None else Decimal(0)
    return {
        "e": "executionReport",
        "E": now,
        "s": new["symbol"],
        "c": new["client_id"],
        "S": new["side"],
        "o": new["type"],
        "f": new["tif"] or "GTC",
        "q": fmt8(new["qty"]),
        "p": fmt8(price),
        "C": "",
        "x": "REJECTED",
        "X": "REJECTED",
        "r": why,
        "i": -1,
        "l": ZERO8,
        "z": ZERO8,
        "L": ZERO8,
        "n": "0",
        "N": None,
        "T": now,
        "t": -1,
        "w": False,
        "m": False,
        "M": False,
        "O": now,
        "Z": ZERO8,
        "Y": ZERO8,
        "Q": ZERO8,
        "V": "EXPIRE_TAKER",
    }


def order_json(o: SandboxOrder) -> dict:
    """An order as order.status describes it."""
    return {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_id,
        "price": fmt8(o.price),
        "origQty": fmt8(o.qty),
        "executedQty": fmt8(o.executed),
        "cummulativeQuoteQty": fmt8(o.cum_quote),
        "status": o.status,
        "timeInForce": o.tif or "GTC",
        "type": o.type,
        "side": o.side,
        "stopPrice": ZERO8,
        "icebergQty": ZERO8,
        "time": o.time_ms,
        "updateTime": o.update_ms,
        "isWorking": True,
        "workingTime": o.time_ms,
        "origQuoteOrderQty": ZERO8,
        "selfTradePreventionMode": "EXPIRE_TAKER",
    }


def order_response(o: SandboxOrder, resp_type: Any, otype: str) -> dict:
    """The reply to order.place: ACK, RESULT or FULL (Binance's default by order type)."""
    if resp_type is None:
        resp_type = "FULL" if otype in ("LIMIT", "MARKET") else "ACK"
    ack = {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_id,
        "transactTime": o.time_ms,
    }
    if resp_type == "ACK":
        return ack
    body = {**order_json(o), **ack}
    for k in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking"):
        body.pop(k, None)
    if resp_type == "FULL":
        body["fills"] = [
            {
                "price": fmt8(t.price),
                "qty": fmt8(t.qty),
                "commission": fmt8(t.commission),
                "commissionAsset": t.commission_asset,
                "tradeId": t.trade_id,
            }
            for t in o.trades
        ]
    return body


def cancel_response(o: SandboxOrder, prev_client_id: str) -> dict:
    """The reply to order.cancel (and one item of openOrders.cancelAll)."""
    body = order_json(o)
    for k in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking", "workingTime"):
        body.pop(k, None)
    return {
        "symbol": o.symbol,
        "origClientOrderId": prev_client_id,
        **body,
        "transactTime": o.update_ms,
    }


def trade_json(t: SandboxTrade) -> dict:
    """One trade as myTrades lists it."""
    return {
        "symbol": t.symbol,
        "id": t.trade_id,
        "orderId": t.order_id,
        "orderListId": -1,
        "price": fmt8(t.price),
        "qty": fmt8(t.qty),
        "quoteQty": fmt8(t.price * t.qty),
        "commission": fmt8(t.commission),
        "commissionAsset": t.commission_asset,
        "time": t.time_ms,
        "isBuyer": t.is_buyer,
        "isMaker": t.is_maker,
        "isBestMatch": True,
    }
