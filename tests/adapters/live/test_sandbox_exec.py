"""The sandbox's order side on its own: the engine-backed matcher, and the WS-API server
driven by a bare WebSocket client (requests signed by hand, replies read raw)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from adapters.live.sandbox_auth import SandboxAccount
from adapters.live.sandbox_exec import SandboxVenue
from adapters.live.sandbox_matching import EngineMatcher
from adapters.live.sandbox_replay import Replay, replay_from_capture
from adapters.live.signing import HmacSha256Signer, sign_ws_params
from engine.errors import UsageError
from tests.adapters.live.helpers import eventually
from tests.adapters.live.leaks import API_KEY, API_SECRET

SYMBOL = "BTCUSDT"


@pytest.fixture(scope="module")
def replay(shared_data: Path) -> Replay:
    # 400 messages: the best bid of the starting book trades at message 55.
    return replay_from_capture(
        shared_data / "binance-ws" / "spot_btcusdt_20240808.gz", max_messages=400
    )


def account() -> SandboxAccount:
    return SandboxAccount(API_KEY, secret=API_SECRET)


class Raw:
    """A bare WS-API client: signs with the test secret, keeps events apart from replies."""

    def __init__(self, ws: ClientConnection, skew_ms: int = 0) -> None:
        self.ws = ws
        self.skew_ms = skew_ms
        self.events: list[dict] = []
        self.replies: dict[Any, dict] = {}
        self.next_id = 0
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            msg = orjson.loads(frame)
            if "event" in msg:
                self.events.append(msg["event"])
            else:
                self.replies[msg.get("id")] = msg

    async def call(self, method: str, params: dict | None = None, *, signed: bool = True) -> dict:
        self.next_id += 1
        rid = self.next_id
        p = dict(params or {})
        if signed:
            p.setdefault("apiKey", API_KEY)
            p.setdefault("timestamp", time.time_ns() // 1_000_000 + self.skew_ms)
            p = sign_ws_params(p, HmacSha256Signer(API_SECRET))
        await self.ws.send(orjson.dumps({"id": rid, "method": method, "params": p}).decode())
        await eventually(lambda: rid in self.replies, 3.0, f"reply to {method}")
        return self.replies.pop(rid)

    def reports(self) -> list[tuple[str, str, str]]:
        return [(e["c"], e["x"], e["X"]) for e in self.events if e.get("e") == "executionReport"]


async def raw(sb: SandboxVenue) -> Raw:
    return Raw(await connect(sb.ws_api_url))


def limit(cid: str, side: str, price: D, qty: str = "0.001", **kw: Any) -> dict:
    return {
        "symbol": SYMBOL,
        "side": side,
        "type": "LIMIT",
        "timeInForce": "GTC",
        "price": str(price),
        "quantity": qty,
        "newClientOrderId": cid,
        **kw,
    }


# -- the matcher ------------------------------------------------------------------------------


def test_matcher_orders_go_through_the_engine_venue(replay: Replay) -> None:
    m = EngineMatcher(replay, clock_ms=lambda: 1)
    bid, ask = m.best(SYMBOL)
    assert bid is not None and ask is not None and bid < ask
    rest, ex = m.place(
        symbol=SYMBOL, side="BUY", type="LIMIT", tif="GTC", price=bid, qty=D("0.001"), client_id="r"
    )
    assert [(e.exec_type, e.status) for e in ex] == [("NEW", "NEW")] and rest.open
    # Crossing our own resting bid: the engine's self-trade prevention expires the taker.
    _, ex = m.place(
        symbol=SYMBOL,
        side="SELL",
        type="LIMIT",
        tif="GTC",
        price=bid,
        qty=D("0.002"),
        client_id="x",
    )
    assert [(e.exec_type, e.status) for e in ex][-1] == ("TRADE_PREVENTION", "EXPIRED_IN_MATCH")
    # A taker buy at the ask fills at once from the displayed liquidity.
    taker, ex = m.place(
        symbol=SYMBOL, side="BUY", type="LIMIT", tif="IOC", price=ask, qty=D("0.001"), client_id="t"
    )
    assert [e.exec_type for e in ex] == ["NEW", "TRADE"] and taker.status == "FILLED"
    trade = ex[1].trade
    assert trade is not None and not trade.is_maker and trade.price == ask
    assert trade.commission == D("0.00000100") and trade.commission_asset == "BTC"
    # IOC with nothing to take, FOK larger than the displayed depth: both expire.
    _, ex = m.place(
        symbol=SYMBOL,
        side="SELL",
        type="LIMIT",
        tif="IOC",
        price=ask + 5,
        qty=D("1"),
        client_id="i",
    )
    assert [e.exec_type for e in ex] == ["NEW", "EXPIRED"]
    _, ex = m.place(
        symbol=SYMBOL, side="BUY", type="LIMIT", tif="FOK", price=ask, qty=D("500"), client_id="f"
    )
    assert [e.exec_type for e in ex] == ["NEW", "EXPIRED"]
    assert m.would_take(SYMBOL, "BUY", ask) and not m.would_take(SYMBOL, "BUY", bid)
    # The resting bid fills when the replay's trades reach it.
    fills = [e for i in range(1, len(replay.messages) + 1) for e in m.advance(i)]
    assert [(e.order.client_id, e.exec_type) for e in fills] == [("r", "TRADE")]
    assert fills[0].trade is not None and fills[0].trade.is_maker
    # Cancel: of an open order it works and renames it; of a finished one it is refused.
    late, _ = m.place(
        symbol=SYMBOL,
        side="BUY",
        type="LIMIT",
        tif="GTC",
        price=bid - 100,
        qty=D("0.001"),
        client_id="l",
    )
    ex = m.cancel(late, "l-cancel")
    assert ex is not None and ex[0].client_id == "l-cancel" and ex[0].orig_client_id == "l"
    assert m.cancel(late, "again") is None and m.cancel(rest, "too-late") is None
    assert m.find("l", None) is late and m.find("l-cancel", None) is late


# -- the server -------------------------------------------------------------------------------


async def test_place_fill_and_reports(replay: Replay) -> None:
    async with SandboxVenue(replay, account=account(), autostart=False) as sb:
        c = await raw(sb)
        sub = await c.call("userDataStream.subscribe.signature")
        assert sub["status"] == 200 and "subscriptionId" in sub["result"]
        bid, _ = sb.matcher.best(SYMBOL)
        placed = await c.call("order.place", limit("o-1", "BUY", bid, newOrderRespType="ACK"))
        assert placed["status"] == 200 and placed["result"]["clientOrderId"] == "o-1"
        assert {"ORDERS", "REQUEST_WEIGHT"} <= {r["rateLimitType"] for r in placed["rateLimits"]}
        sb.start_replay()
        await eventually(lambda: len(c.reports()) == 2, 5.0, "the fill")
        assert c.reports() == [("o-1", "NEW", "NEW"), ("o-1", "TRADE", "FILLED")]
        trade = c.events[-1]
        assert trade["l"] == "0.00100000" and trade["L"] == f"{bid:.8f}" and trade["m"] is True
        assert trade["n"] == "0.00000100" and trade["N"] == "BTC" and trade["t"] == 1
        status = await c.call("order.status", {"symbol": SYMBOL, "origClientOrderId": "o-1"})
        assert status["result"]["status"] == "FILLED"
        trades = await c.call(
            "myTrades", {"symbol": SYMBOL, "orderId": placed["result"]["orderId"]}
        )
        assert [t["id"] for t in trades["result"]] == [1]
        missing = await c.call("order.status", {"symbol": SYMBOL, "origClientOrderId": "nope"})
        assert missing["error"] == {"code": -2013, "msg": "Order does not exist."}
        await c.ws.close()


async def test_who_may_ask(replay: Replay) -> None:
    async with SandboxVenue(replay, account=account(), autostart=False, clock_skew_ms=0) as sb:
        c = await raw(sb)
        order = limit("a-1", "BUY", D("60000"))
        bad_sig = {**order, "apiKey": API_KEY, "timestamp": time.time_ns() // 1_000_000}
        bad_sig = {**sign_ws_params(bad_sig, HmacSha256Signer("not-the-secret"))}
        r = await c.call("order.place", bad_sig, signed=False)
        assert (r["status"], r["error"]["code"]) == (400, -1022)
        r = await c.call("order.place", {**order, "apiKey": "someone-else"})
        assert (r["status"], r["error"]["code"]) == (401, -2015)
        r = await c.call("order.place", {**order, "timestamp": time.time_ns() // 1_000_000 - 6000})
        assert r["error"] == {
            "code": -1021,
            "msg": "Timestamp for this request is outside of the recvWindow.",
        }
        r = await c.call("order.place", {**order, "timestamp": time.time_ns() // 1_000_000 + 2000})
        assert r["error"]["code"] == -1021 and "ahead" in r["error"]["msg"]
        r = await c.call("order.place", {**order, "recvWindow": 60001})
        assert r["error"]["code"] == -1131
        r = await c.call("order.place", order, signed=False)
        assert r["error"]["code"] == -1102
        r = await c.call("userDataStream.subscribe", signed=False)  # needs a logon
        assert r["status"] == 401
        r = await c.call("session.logon")  # an HMAC key cannot log on
        assert r["status"] == 400
        assert sb.matcher.orders == {}
        await c.ws.send("{not json")
        await eventually(lambda: None in c.replies, 2.0, "the error reply")
        assert c.replies[None]["error"]["code"] == -1135
        await c.ws.close()


async def test_order_rules(replay: Replay) -> None:
    async with SandboxVenue(replay, account=account(), autostart=False) as sb:
        c = await raw(sb)
        bid, ask = sb.matcher.best(SYMBOL)
        assert (await c.call("order.place", limit("d-1", "BUY", bid)))["status"] == 200
        cases = [
            (limit("d-1", "BUY", bid - 1), -2010, "Duplicate order sent."),
            (limit("bad id!", "BUY", bid), -1100, None),
            (limit("d-2", "BUY", D("61837.635")), -1013, "Filter failure: PRICE_FILTER"),
            (limit("d-3", "BUY", bid, qty="0.000001"), -1013, "Filter failure: LOT_SIZE"),
            (limit("d-4", "BUY", bid, qty="0.00001"), -1013, "Filter failure: NOTIONAL"),
            (
                {**limit("d-5", "BUY", ask), "type": "LIMIT_MAKER", "timeInForce": None},
                -2010,
                "Order would immediately match and take.",
            ),
            ({**limit("d-6", "BUY", bid), "symbol": "ETHUSDT"}, -1121, "Invalid symbol."),
            ({**limit("d-7", "BUY", bid), "type": "MARKET", "timeInForce": None}, -1106, None),
            ({**limit("d-8", "BUY", bid), "timeInForce": None}, -1115, None),
            ({**limit("d-9", "BUY", bid), "price": "1e5"}, -1100, None),
        ]
        for params, code, msg in cases:
            params = {k: v for k, v in params.items() if v is not None}
            r = await c.call("order.place", params)
            assert r["error"]["code"] == code, (params, r)
            if msg is not None:
                assert r["error"]["msg"] == msg
        maker = {**limit("d-10", "SELL", ask), "type": "LIMIT_MAKER"}
        del maker["timeInForce"]
        assert (await c.call("order.place", maker))["status"] == 200
        # The client id of a canceled order is free again.
        cancel = await c.call("order.cancel", {"symbol": SYMBOL, "origClientOrderId": "d-1"})
        assert cancel["result"]["origClientOrderId"] == "d-1"
        assert cancel["result"]["clientOrderId"].startswith("sandbox-")
        assert (await c.call("order.place", limit("d-1", "BUY", bid)))["status"] == 200
        await c.ws.close()


async def test_cancel_replace_and_cancel_all(replay: Replay) -> None:
    async with SandboxVenue(replay, account=account(), autostart=False) as sb:
        c = await raw(sb)
        await c.call("userDataStream.subscribe.signature")
        bid, ask = sb.matcher.best(SYMBOL)
        await c.call("order.place", limit("k-1", "BUY", bid - 1))
        replace = {
            **limit("k-2", "BUY", bid - 2),
            "cancelReplaceMode": "STOP_ON_FAILURE",
            "cancelOrigClientOrderId": "k-1",
        }
        r = await c.call("order.cancelReplace", replace)
        assert r["status"] == 200 and r["result"]["cancelResult"] == "SUCCESS"
        assert r["result"]["newOrderResponse"]["clientOrderId"] == "k-2"
        # The target is gone now: STOP_ON_FAILURE does not place the new order.
        r = await c.call("order.cancelReplace", {**replace, "newClientOrderId": "k-3"})
        assert (r["status"], r["error"]["code"]) == (400, -2022)
        assert r["error"]["data"]["newOrderResult"] == "NOT_ATTEMPTED"
        # The cancel works but the new (post-only, crossing) order fails: 409.
        crossing = {
            **limit("k-4", "BUY", ask),
            "type": "LIMIT_MAKER",
            "cancelReplaceMode": "STOP_ON_FAILURE",
            "cancelOrigClientOrderId": "k-2",
        }
        del crossing["timeInForce"]
        r = await c.call("order.cancelReplace", crossing)
        assert (r["status"], r["error"]["code"]) == (409, -2021)
        assert r["error"]["data"]["newOrderResponse"]["code"] == -2010
        await eventually(lambda: ("k-4", "REJECTED", "REJECTED") in c.reports(), 2.0)
        await c.call("order.place", limit("k-5", "BUY", bid - 3))
        await c.call("order.place", limit("k-6", "SELL", ask + 3))
        r = await c.call("openOrders.cancelAll", {"symbol": SYMBOL})
        assert sorted(x["origClientOrderId"] for x in r["result"]) == ["k-5", "k-6"]
        r = await c.call("openOrders.cancelAll", {"symbol": SYMBOL})
        assert r["error"] == {"code": -2011, "msg": "Unknown order sent."}
        await c.ws.close()


async def test_429_with_retry_after_then_418_for_who_ignores_it(replay: Replay) -> None:
    limits = [{"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 1, "limit": 1}]
    async with SandboxVenue(
        replay, account=account(), autostart=False, rate_limits=limits, ban_after=2, ban_seconds=30
    ) as sb:
        c = await raw(sb)
        bid, _ = sb.matcher.best(SYMBOL)
        assert (await c.call("order.place", limit("q-1", "BUY", bid - 1)))["status"] == 200
        r = await c.call("order.place", limit("q-2", "BUY", bid - 2))
        assert (r["status"], r["error"]["code"]) == (429, -1015)
        data = r["error"]["data"]
        assert 0 < data["retryAfter"] - data["serverTime"] <= 1000
        statuses = [
            (await c.call("order.place", limit(f"q-{i}", "BUY", bid - i)))["status"]
            for i in (3, 4, 5)
        ]
        assert statuses == [429, 418, 418]
        assert sb.limits.violations == 0 and sb.limits.banned == 2  # reset when banning
        info = await c.call("exchangeInfo", {"symbols": [SYMBOL]}, signed=False)
        assert info["status"] == 418  # a ban covers every request
        assert [o.client_id for o in sb.matcher.orders.values()] == ["q-1"]
        await c.ws.close()


def test_account_guards() -> None:
    with pytest.raises(UsageError):
        SandboxAccount(API_KEY)
    assert API_SECRET not in repr(SandboxAccount(API_KEY, secret=API_SECRET))


async def test_a_failing_handler_is_a_500_not_a_dead_session(
    replay: Replay, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SandboxVenue(replay, account=account(), autostart=False) as sb:
        c = await raw(sb)

        def broken(*args: object) -> None:
            raise RuntimeError("bug")

        monkeypatch.setattr(sb.matcher, "find", broken)
        r = await c.call("order.status", {"symbol": SYMBOL, "origClientOrderId": "x"})
        assert (r["status"], r["error"]["code"]) == (500, -1000)
        assert (await c.call("time", signed=False))["status"] == 200
        await c.ws.close()
