"""Binance's execution messages mapped to ExecEvents, one message shape at a time."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from adapters.live.binance_exec_messages import (
    OrderStatus,
    canceled_event,
    is_unknown_error,
    order_params,
    report_events,
    retry_after_seconds,
    status_facts,
    trade_fills,
)
from adapters.live.exec_events import OrderRequest
from adapters.live.ws_venue import ParseError

# An executionReport as Binance documents it (user-data-stream.md), NEW of a LIMIT buy.
REPORT = {
    "e": "executionReport",
    "E": 1499405658658,
    "s": "ETHBTC",
    "c": "mUvoqJxFIILMdfAW5iGSOW",
    "S": "BUY",
    "o": "LIMIT",
    "f": "GTC",
    "q": "1.00000000",
    "p": "0.10264410",
    "P": "0.00000000",
    "F": "0.00000000",
    "g": -1,
    "C": "",
    "x": "NEW",
    "X": "NEW",
    "r": "NONE",
    "i": 4293153,
    "l": "0.00000000",
    "z": "0.00000000",
    "L": "0.00000000",
    "n": "0",
    "N": None,
    "T": 1499405658657,
    "t": -1,
    "I": 8641984,
    "w": True,
    "m": False,
    "M": False,
    "O": 1499405658657,
    "Z": "0.00000000",
    "Y": "0.00000000",
    "Q": "0.00000000",
    "W": 1499405658657,
    "V": "NONE",
}


def test_order_params() -> None:
    limit = OrderRequest("new", "s-1", "BTCUSDT", side="buy", price=D("61837.63"), qty=D("0.001"))
    assert order_params(limit) == {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "price": "61837.63",
        "quantity": "0.001",
        "newClientOrderId": "s-1",
        "newOrderRespType": "ACK",
    }
    maker = OrderRequest(
        "new", "s-2", "BTCUSDT", side="sell", price=D("1E+2"), qty=D("1"), post_only=True
    )
    params = order_params(maker)
    assert params["type"] == "LIMIT_MAKER" and "timeInForce" not in params
    assert params["price"] == "100"  # exact text, never an exponent
    market = OrderRequest("new", "s-3", "BTCUSDT", side="sell", type="market", qty=D("2"))
    params = order_params(market)
    assert params["type"] == "MARKET" and "price" not in params and "timeInForce" not in params


def test_report_new_trade_cancel_expire() -> None:
    [ack], _ = report_events(REPORT, 5)
    assert (ack.kind, ack.client_id, ack.venue_order_id, ack.side) == (
        "ack",
        "mUvoqJxFIILMdfAW5iGSOW",
        "4293153",
        "buy",
    )
    assert (ack.price, ack.qty, ack.recv_ts_ns, ack.venue_ts_ms) == (
        D("0.10264410"),
        D("1"),
        5,
        1499405658657,
    )
    trade = {
        **REPORT,
        "x": "TRADE",
        "X": "PARTIALLY_FILLED",
        "l": "0.4",
        "L": "0.1026",
        "z": "0.4",
        "t": 77,
        "m": True,
        "n": "0.0004",
        "N": "ETH",
    }
    [fill], _ = report_events(trade, 6)
    assert (fill.kind, fill.trade_id, fill.liquidity, fill.fee, fill.fee_asset) == (
        "fill",
        "77",
        "maker",
        D("0.0004"),
        "ETH",
    )
    assert (fill.price, fill.qty, fill.cum_qty, fill.reason) == (
        D("0.1026"),
        D("0.4"),
        D("0.4"),
        "PARTIALLY_FILLED",
    )
    # A cancel renames the order: `c` is the cancel's id, `C` the order's.
    cancel = {**REPORT, "x": "CANCELED", "X": "CANCELED", "c": "cancel-9", "C": "s-1"}
    [ev], _ = report_events(cancel, 7)
    assert (ev.kind, ev.client_id) == ("canceled", "s-1")
    stp = {**REPORT, "x": "TRADE_PREVENTION", "X": "EXPIRED_IN_MATCH"}
    [ev], _ = report_events(stp, 8)
    assert (ev.kind, ev.reason) == ("expired", "EXPIRED_IN_MATCH")
    assert report_events({**REPORT, "x": "TRADE_PREVENTION", "X": "NEW"}, 9) == ([], None)
    [ev], _ = report_events({**REPORT, "x": "REJECTED", "X": "REJECTED", "r": "x"}, 9)
    assert (ev.kind, ev.message) == ("reject", "x")
    [ev], _ = report_events({**REPORT, "x": "REPLACED", "C": "s-0"}, 9)
    assert (ev.kind, ev.orig_client_id) == ("amended", "s-0")
    assert report_events({**REPORT, "x": "PENDING_NEW"}, 9) == ([], "PENDING_NEW")


def test_bad_reports_raise_parse_errors() -> None:
    with pytest.raises(ParseError):
        report_events({"e": "executionReport", "s": "BTCUSDT"}, 1)
    with pytest.raises(ParseError):
        report_events({**REPORT, "z": "lots"}, 1)
    with pytest.raises(ParseError):
        canceled_event([], 1)


def test_cancel_status_and_trades() -> None:
    cancel = {
        "symbol": "BTCUSDT",
        "origClientOrderId": "s-1",
        "orderId": 12,
        "clientOrderId": "c-1",
        "executedQty": "0.001",
        "status": "CANCELED",
        "side": "SELL",
        "transactTime": 3,
    }
    ev = canceled_event(cancel, 1)
    assert (ev.kind, ev.client_id, ev.venue_order_id, ev.cum_qty) == (
        "canceled",
        "s-1",
        "12",
        D("0.001"),
    )
    st = OrderStatus.from_result(
        {
            "symbol": "BTCUSDT",
            "orderId": 12,
            "clientOrderId": "s-1",
            "price": "100.00",
            "origQty": "0.003",
            "executedQty": "0.002",
            "status": "CANCELED",
            "side": "SELL",
            "updateTime": 4,
        }
    )
    assert not st.open and st.executed_qty == D("0.002")
    trades = [
        {"id": 8, "price": "101", "qty": "0.001", "commission": "0.1", "commissionAsset": "USDT",
         "isMaker": False, "time": 2},
        {"id": 7, "price": "100", "qty": "0.001", "commission": "0.1", "commissionAsset": "USDT",
         "isMaker": True, "time": 1},
    ]  # fmt: skip
    fills = trade_fills(trades, "s-1", st, 9)
    assert [(f.trade_id, f.cum_qty, f.liquidity) for f in fills] == [
        ("7", D("0.001"), "maker"),
        ("8", D("0.002"), "taker"),
    ]
    facts = status_facts("s-1", st, fills, 9)
    assert [f.kind for f in facts] == ["ack", "fill", "fill", "canceled"]
    assert facts[-1].cum_qty == D("0.002")
    [missing] = status_facts("s-2", None, [], 9)
    assert (missing.kind, missing.code) == ("reject", -2013)
    with pytest.raises(ParseError):
        OrderStatus.from_result({"symbol": "BTCUSDT"})
    with pytest.raises(ParseError):
        trade_fills([{"id": 1}], "s-1", st, 9)


def test_error_meanings() -> None:
    assert is_unknown_error({"status": 503, "code": -1008})
    assert is_unknown_error({"status": 400, "code": -1007})
    assert is_unknown_error({"status": 400, "code": -1006})
    assert not is_unknown_error({"status": 400, "code": -2010})
    err = {"status": 429, "data": {"serverTime": 1000, "retryAfter": 3500}}
    assert retry_after_seconds(err, now_ms=0) == 2.5  # the reply's serverTime is the reference
    assert retry_after_seconds({"status": 429, "data": {"retryAfter": 3500}}, 3000) == 0.5
    assert retry_after_seconds({"status": 429}, 0) is None
