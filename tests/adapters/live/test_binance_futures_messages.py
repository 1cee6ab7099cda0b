"""Binance USD-M futures execution messages <-> ExecEvents, AccountUpdate, Position."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.live.binance_futures_messages import (
    account_update,
    futures_order_params,
    order_update_events,
    positions_from_risk,
)
from adapters.live.exec_events import OrderRequest
from adapters.live.exec_tracker import OrderTracker
from adapters.live.ws_venue import ParseError
from engine.errors import UsageError

D = Decimal


def _o(x: str, status: str, **kw) -> dict:
    o = {
        "s": "BTCUSDT", "c": "cp-1", "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "0.010",
        "p": "60000.0", "ap": "0", "sp": "0", "x": x, "X": status, "i": 8886774,
        "l": "0", "z": "0", "L": "0", "T": 1700000000000, "t": 0, "b": "0", "a": "0",
        "m": False, "R": False, "wt": "CONTRACT_PRICE", "ot": "LIMIT", "ps": "BOTH",
        "cp": False, "rp": "0", "pP": False, "si": 0, "ss": 0, "V": "NONE", "pm": "NONE",
        "gtd": 0,
    }  # fmt: skip
    o.update(kw)
    return o


def test_order_params_add_reduce_only_and_gtx_for_post_only():
    req = OrderRequest(
        "new", "cp-1", "BTCUSDT", side="sell", price=D("60000.0"), qty=D("0.010"),
        reduce_only=True,
    )  # fmt: skip
    p = futures_order_params(req)
    assert p["reduceOnly"] == "true" and p["type"] == "LIMIT" and p["timeInForce"] == "GTC"
    assert p["price"] == "60000.0" and p["quantity"] == "0.010"
    post = OrderRequest(
        "new", "cp-2", "BTCUSDT", side="buy", price=D("1"), qty=D("1"), post_only=True
    )
    assert futures_order_params(post)["timeInForce"] == "GTX"
    assert "reduceOnly" not in futures_order_params(post)


def test_reduce_only_is_a_new_or_amend_field():
    with pytest.raises(UsageError, match="reduce_only"):
        OrderRequest("cancel", "cp-3", "BTCUSDT", orig_client_id="cp-1", reduce_only=True)
    assert (
        OrderRequest("new", "cp-4", "X", side="buy", type="market", qty=D(1)).reduce_only is False
    )


def test_order_trade_update_maps_ack_fill_cancel_and_amend():
    (ack,), _ = order_update_events(_o("NEW", "NEW"), 1)
    assert ack.kind == "ack" and ack.client_id == "cp-1" and ack.venue_order_id == "8886774"
    assert ack.price == D("60000.0") and ack.qty == D("0.010")
    trade = _o("TRADE", "PARTIALLY_FILLED", l="0.004", z="0.004", L="59999.9", t=42,
               n="0.0096", N="USDT", m=True)  # fmt: skip
    (fill,), _ = order_update_events(trade, 2)
    assert (fill.kind, fill.trade_id, fill.qty, fill.price) == (
        "fill",
        "42",
        D("0.004"),
        D("59999.9"),
    )
    assert fill.fee == D("0.0096") and fill.fee_asset == "USDT" and fill.liquidity == "maker"
    (cxl,), _ = order_update_events(_o("CANCELED", "CANCELED", z="0.004"), 3)
    assert cxl.kind == "canceled" and cxl.client_id == "cp-1" and cxl.cum_qty == D("0.004")
    (exp,), _ = order_update_events(_o("EXPIRED", "EXPIRED"), 4)
    assert exp.kind == "expired"
    (amd,), _ = order_update_events(_o("AMENDMENT", "NEW", p="59000.0"), 5)
    assert amd.kind == "amended" and amd.price == D("59000.0")
    assert order_update_events(_o("WHATEVER", "NEW"), 6) == ([], "WHATEVER")
    with pytest.raises(ParseError):
        order_update_events({"x": "NEW"}, 7)


def test_a_duplicated_fill_is_counted_once():
    out = []
    tracker = OrderTracker(out.append)
    tracker.expect(
        OrderRequest("new", "cp-1", "BTCUSDT", side="buy", price=D("60000.0"), qty=D("0.010"))
    )
    trade = _o("TRADE", "FILLED", l="0.010", z="0.010", L="60000.0", t=7, n="0.02", N="USDT")
    for msg in (_o("NEW", "NEW"), trade, trade):
        for ev in order_update_events(msg, 1)[0]:
            tracker.offer(ev)
    assert [e.kind for e in out] == ["ack", "fill"] and tracker.duplicate_fills == 1


def test_account_update_with_funding_fee():
    msg = {
        "e": "ACCOUNT_UPDATE", "E": 1700000000100, "T": 1700000000099,
        "a": {
            "m": "FUNDING_FEE",
            "B": [{"a": "USDT", "wb": "1000.5", "cw": "1000.5", "bc": "-0.25"}],
            "P": [{"s": "BTCUSDT", "pa": "-0.010", "ep": "60000.0", "cr": "0", "up": "0",
                   "mt": "cross", "iw": "0", "ps": "BOTH"}],
        },
    }  # fmt: skip
    upd = account_update(msg, 5)
    assert upd.funding_fee and upd.venue_ts_ms == 1700000000099
    assert upd.balances[0].asset == "USDT" and upd.balances[0].change == D("-0.25")
    (pos,) = upd.positions
    assert (pos.symbol, pos.qty, pos.entry_price) == ("BTCUSDT", D("-0.010"), D("60000.0"))
    with pytest.raises(ParseError):
        account_update({"a": {}}, 0)


def test_positions_from_position_risk():
    body = [
        {"symbol": "BTCUSDT", "positionSide": "BOTH", "positionAmt": "0.020",
         "entryPrice": "59000.5", "markPrice": "60000", "unRealizedProfit": "20"},
        {"symbol": "ETHUSDT", "positionSide": "BOTH", "positionAmt": "0.000",
         "entryPrice": "0.0"},
    ]  # fmt: skip
    (pos,) = positions_from_risk(body)
    assert (pos.symbol, pos.qty, pos.entry_price, pos.side) == (
        "BTCUSDT", D("0.020"), D("59000.5"), "BOTH",
    )  # fmt: skip
