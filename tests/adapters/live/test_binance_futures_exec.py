"""The Binance USD-M futures execution client against the futures sandbox, on loopback.

Every test runs a `SandboxFuturesVenue` (the engine's venue model matching the recorded
BTCUSDT market converted to futures frames) and a `BinanceFuturesExec` on one event loop:
orders over `/ws-fapi/v1`, user data over `/private/ws/<listenKey>`, positions over REST.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from adapters.live.binance_futures_exec import BinanceFuturesExec
from adapters.live.binance_futures_messages import (
    REDUCE_ONLY_REJECTED,
    AccountUpdate,
    Position,
)
from adapters.live.exec_events import ExecEvent, OrderRequest
from adapters.live.sandbox_auth import SandboxAccount
from adapters.live.sandbox_futures import futures_replay
from adapters.live.sandbox_futures_exec import SandboxFuturesVenue
from adapters.live.sandbox_replay import Replay, replay_from_capture
from adapters.live.signing import HmacSha256Signer
from adapters.live.ws_venue import WsConfig
from tests.adapters.live.helpers import best, buy, eventually, kinds, sell
from tests.adapters.live.leaks import API_KEY, API_SECRET

SYMBOL = "BTCUSDT"


pytestmark = pytest.mark.usefixtures("quiet_sandbox_headers")


@pytest.fixture(scope="module")
def replay(shared_data: Path) -> Replay:
    spot = replay_from_capture(
        shared_data / "binance-ws" / "spot_btcusdt_20240808.gz", max_messages=400
    )
    return futures_replay(spot)


def venue(replay: Replay, **kw: Any) -> SandboxFuturesVenue:
    kw.setdefault("account", SandboxAccount(API_KEY, secret=API_SECRET))
    return SandboxFuturesVenue(replay, autostart=False, **kw)


def client(sb: SandboxFuturesVenue, events: list[ExecEvent], **kw: Any) -> BinanceFuturesExec:
    config = WsConfig(request_timeout=2.0, backoff_initial=0.05, backoff_cap=0.1, seed=7)
    return BinanceFuturesExec(
        api_key=API_KEY,
        signer=HmacSha256Signer(API_SECRET),
        ws_url=sb.ws_api_url,
        user_ws_url=sb.user_ws_url,
        rest_url=sb.rest_url,
        symbols=[SYMBOL],
        on_exec=events.append,
        resolve_after=0.2,
        config=config,
        **kw,
    )


async def user_ready(cl: BinanceFuturesExec, sb: SandboxFuturesVenue, n: int = 1) -> None:
    """Until the client reads the user stream of the sandbox's current key."""
    await cl.wait_ready()
    await eventually(
        lambda: cl.user_stream_ok and sb.user_connections >= n and cl.listen_key == sb.listen_key,
        5.0,
        "the user stream",
    )


async def test_place_ack_then_fill_through_order_trade_update(replay: Replay) -> None:
    events: list[ExecEvent] = []
    updates: list[AccountUpdate] = []
    async with venue(replay) as sb, client(sb, events, on_account=updates.append) as cl:
        await user_ready(cl, sb)
        bid, ask = best(sb)
        ack = await cl.place(buy("f-1", bid))  # rests at the best bid
        assert ack.kind == "ack" and ack.venue_order_id is not None
        taker = await cl.place(buy("f-2", ask))  # takes the best ask at once
        assert taker.kind == "ack"
        await eventually(lambda: len(events) == 3, 3.0, "the taker fill")
        sb.start_replay()  # the replayed trades reach the resting bid
        await eventually(lambda: len(events) == 4, 5.0, "the maker fill")
        assert kinds(events) == [("ack", "f-1"), ("ack", "f-2"), ("fill", "f-2"), ("fill", "f-1")]
        t, m = events[2], events[3]
        assert (t.liquidity, t.price, t.qty) == ("taker", ask, D("0.001"))
        assert (m.liquidity, m.price) == ("maker", bid)
        # Each fill moved the position: ACCOUNT_UPDATE (reason ORDER) to the callback.
        await eventually(lambda: len(updates) == 2, 3.0, "the account updates")
        assert [u.reason for u in updates] == ["ORDER", "ORDER"]
        assert cl.position(SYMBOL) == D("0.002") == sb.positions[SYMBOL][0]
        assert sb.method_counts["userDataStream.start"] == 1
        # A funding settlement reaches the callback as such.
        sb.push_funding(D("-0.5"))
        await eventually(lambda: len(updates) == 3, 3.0, "the funding fee")
        assert updates[-1].funding_fee and updates[-1].balances[0].change == D("-0.5")


async def test_post_only_is_gtx_and_cancel(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events) as cl:
        await user_ready(cl, sb)
        bid, ask = best(sb)
        took = await cl.place(buy("g-1", ask, post_only=True))
        assert (took.kind, took.code) == ("reject", -5022)
        ack = await cl.place(buy("g-2", bid - 10, post_only=True))
        assert ack.kind == "ack"
        ev = await cl.cancel(OrderRequest("cancel", "g-3", SYMBOL, orig_client_id="g-2"))
        assert (ev.kind, ev.client_id) == ("canceled", "g-2")
        await asyncio.sleep(0.05)  # the ORDER_TRADE_UPDATE CANCELED is not reported twice
        assert kinds(events) == [("reject", "g-1"), ("ack", "g-2"), ("canceled", "g-2")]


async def test_a_fill_delivered_twice_is_counted_once(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay, faults="dup_fill=1") as sb, client(sb, events) as cl:
        await user_ready(cl, sb)
        _, ask = best(sb)
        await cl.place(buy("d-1", ask))
        await eventually(lambda: cl.tracker.duplicate_fills == 1, 3.0, "the second copy")
        assert kinds(events) == [("ack", "d-1"), ("fill", "d-1")]


async def test_reduce_only_that_would_increase_is_refused(replay: Replay) -> None:
    events: list[ExecEvent] = []
    long = {SYMBOL: (D("0.002"), D("56000"))}
    async with venue(replay, positions=long) as sb, client(sb, events) as cl:
        await user_ready(cl, sb)
        bid, ask = best(sb)
        more = await cl.place(buy("r-1", bid, reduce_only=True))
        assert (more.kind, more.code) == ("reject", REDUCE_ONLY_REJECTED)
        assert more.message == "ReduceOnly Order is rejected."
        less = await cl.place(sell("r-2", bid, reduce_only=True))  # takes the best bid
        assert less.kind == "ack"
        await eventually(lambda: cl.position(SYMBOL) == D("0.001"), 3.0, "the reduced position")
        assert sb.positions[SYMBOL][0] == D("0.001")


async def test_positions_read_at_start_equal_the_sandboxs(replay: Replay) -> None:
    seeded = {SYMBOL: (D("-0.003"), D("56123.5"))}
    async with venue(replay, positions=seeded) as sb, client(sb, []) as cl:
        await asyncio.wait_for(cl.positions_read.wait(), 5.0)
        assert list(cl.positions.values()) == [Position(SYMBOL, D("-0.003"), D("56123.5"))]
        assert sb.rest_requests >= 1


async def test_keepalive_ping_is_sent(replay: Replay) -> None:
    async with venue(replay) as sb, client(sb, [], keepalive_interval=0.05) as cl:
        await user_ready(cl, sb)
        await eventually(lambda: sb.keepalives >= 3, 3.0, "keepalives")
        assert cl.keepalives >= 3 and cl.keepalive_failures == 0
        assert cl.user_faults == 0 and sb.key_starts == 1


async def test_silent_key_expiry_is_a_fault_and_a_new_key(replay: Replay) -> None:
    events: list[ExecEvent] = []
    faults: list[str] = []
    # After 2 user events (the NEW and the first fill's ORDER_TRADE_UPDATE... of d-1) the
    # key expires without a word; the client hears nothing more.
    async with (
        venue(replay, faults="listenkey_silent=2") as sb,
        client(
            sb, events, keepalive_interval=60.0, silence_after=0.3, on_fault=faults.append
        ) as cl,
    ):
        await user_ready(cl, sb)
        first_key = cl.listen_key
        _, ask = best(sb)
        await cl.place(buy("s-1", ask))  # NEW, TRADE, then the ACCOUNT_UPDATE is dropped
        await eventually(lambda: faults != [], 3.0, "the silence fault")
        assert faults[0].startswith("user data stream silent")
        assert cl.user_stream_fault == faults[0]
        await eventually(lambda: cl.user_stream_ok, 3.0, "the new key's stream")
        assert cl.listen_key != first_key and cl.listen_key == sb.listen_key
        assert sb.key_starts == 2 and cl.user_faults >= 1
        # The new key's stream works: a fill comes through it.
        await user_ready(cl, sb, n=2)
        _, ask = best(sb)
        await cl.place(buy("s-2", ask))
        await eventually(lambda: ("fill", "s-2") in kinds(events), 3.0, "a fill on the new key")


def amend(cid: str, target: str, price: D, qty: str = "0.001", side: str = "buy") -> OrderRequest:
    return OrderRequest(
        "amend",
        cid,
        SYMBOL,
        orig_client_id=target,
        side=side,
        price=price,
        qty=D(qty),  # type: ignore[arg-type]
    )


async def test_modify_keeps_the_client_id_and_the_venue_shows_new_terms(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events) as cl:
        await user_ready(cl, sb)
        bid, _ = best(sb)
        low = bid - D(50)
        assert (await cl.place(buy("f-1", low))).kind == "ack"
        vid = sb.matcher.open_by_client("f-1").order_id  # type: ignore[union-attr]
        ev = await cl.amend(amend("f-2", "f-1", low - D(10), "0.002"))
        assert (ev.kind, ev.client_id, ev.orig_client_id) == ("amended", "f-2", "f-1")
        assert (ev.price, ev.qty) == (low - D(10), D("0.002"))
        order = sb.matcher.open_by_client("f-1")  # the same order, same id, new terms
        assert order is not None and order.order_id == vid
        assert (order.price, order.qty) == (low - D(10), D("0.002"))
        assert sb.matcher.find("f-2", None) is None
        await asyncio.sleep(0.2)  # the AMENDMENT report arrives: a repeat, not a 2nd event
        assert kinds(events) == [("ack", "f-1"), ("amended", "f-2")]
        tracked = cl.tracker.order("f-1")
        assert tracked is not None and tracked.price == low - D(10) and not tracked.ended
        assert cl.tracker.order("f-2") is None


async def test_a_rejected_modify_leaves_the_old_terms(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events) as cl:
        await user_ready(cl, sb)
        bid, _ = best(sb)
        low = bid - D(50)
        await cl.place(buy("f-1", low))
        same = await cl.amend(amend("f-2", "f-1", low))  # nothing to change
        assert (same.kind, same.code) == ("amend_rejected", -5027)
        gone = await cl.amend(amend("f-3", "nope-1", low - D(1)))
        assert (gone.kind, gone.code) == ("amend_rejected", -2013)
        order = sb.matcher.open_by_client("f-1")
        assert order is not None and (order.price, order.qty) == (low, D("0.001"))
        assert [k for k, _ in kinds(events)] == ["ack", "amend_rejected", "amend_rejected"]
        assert cl.tracker.open_orders() and cl.tracker.order("f-1").price == low  # type: ignore[union-attr]


async def test_a_gtx_modified_to_take_is_canceled(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events) as cl:
        await user_ready(cl, sb)
        bid, ask = best(sb)
        await cl.place(buy("f-1", bid - D(50), post_only=True))
        ev = await cl.amend(amend("f-2", "f-1", ask + D(10)))
        assert ev.kind == "amend_rejected"
        await eventually(lambda: ("canceled", "f-1") in kinds(events), 3.0, "the cancel")
        assert sb.matcher.open_orders(SYMBOL) == []


async def test_a_modify_whose_reply_is_lost_is_settled_once(replay: Replay) -> None:
    from adapters.live.sandbox_md import Faults

    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events) as cl:
        await user_ready(cl, sb)
        bid, _ = best(sb)
        low = bid - D(50)
        await cl.place(buy("f-1", low))
        # The modify is carried out, then every WS-API socket is reset before the reply.
        sb.faults = Faults(kill_ws_api_after=frozenset({sb.ws_api_requests + 1}))
        await cl.amend(amend("f-2", "f-1", low - D(5)))
        await eventually(lambda: ("amended", "f-2") in kinds(events), 5.0, "the amend")
        await asyncio.sleep(0.5)  # the reconnection's status query finds nothing new
        assert kinds(events).count(("amended", "f-2")) == 1
        assert sb.ws_api_killed == 1
        order = sb.matcher.open_by_client("f-1")
        assert order is not None and order.price == low - D(5)
        assert cl.tracker.request("f-2").settled  # type: ignore[union-attr]
