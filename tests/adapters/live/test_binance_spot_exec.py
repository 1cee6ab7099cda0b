"""The Binance spot execution client against the sandbox venue, over loopback WebSockets.

Every test runs a `SandboxVenue` (the engine's venue model matching a recorded BTCUSDT
market) and a `BinanceSpotExec` on one event loop, and looks at the ExecEvents the client
reports and at what the server saw.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from adapters.live.binance_spot_exec import BinanceSpotExec
from adapters.live.clock_offset import ClockOffset
from adapters.live.exec_events import ExecEvent, OrderRequest
from adapters.live.rate_limit import limits_from_binance
from adapters.live.sandbox_auth import SandboxAccount
from adapters.live.sandbox_exec import SandboxVenue
from adapters.live.sandbox_md import Faults
from adapters.live.sandbox_replay import Replay, replay_from_capture
from adapters.live.signing import Ed25519Signer, HmacSha256Signer
from adapters.live.ws_venue import State, WsConfig
from engine.errors import UsageError
from tests.adapters.live.helpers import best, buy, eventually, kinds, sell
from tests.adapters.live.leaks import API_KEY, API_SECRET, ED25519_PEM

SYMBOL = "BTCUSDT"


@pytest.fixture(scope="module")
def replay(shared_data: Path) -> Replay:
    # 400 messages: the best bid of the starting book trades at message 55.
    return replay_from_capture(
        shared_data / "binance-ws" / "spot_btcusdt_20240808.gz", max_messages=400
    )


def venue(replay: Replay, **kw: Any) -> SandboxVenue:
    kw.setdefault("account", SandboxAccount(API_KEY, secret=API_SECRET))
    return SandboxVenue(replay, autostart=False, **kw)


def client(sb: SandboxVenue, events: list[ExecEvent], **kw: Any) -> BinanceSpotExec:
    config = WsConfig(
        request_timeout=kw.pop("timeout", 2.0), backoff_initial=0.05, backoff_cap=0.1, seed=7
    )
    kw.setdefault("signer", HmacSha256Signer(API_SECRET))
    kw.setdefault("resolve_after", 0.2)
    return BinanceSpotExec(
        api_key=API_KEY,
        ws_url=sb.ws_api_url,
        symbols=[SYMBOL],
        on_exec=events.append,
        config=config,
        **kw,
    )


async def ready(cl: BinanceSpotExec, state: State = State.SUBSCRIBED) -> None:
    await eventually(lambda: cl.state is state, 5.0, f"the client {state}")


async def refused(cl: BinanceSpotExec, sb: SandboxVenue) -> None:
    """Until the client's (refused) subscription went out: the connection is set up."""
    await eventually(
        lambda: "userDataStream.subscribe.signature" in sb.method_counts, 5.0, "the subscription"
    )


async def test_place_ack_and_fills_in_order(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events) as cl:
        await cl.wait_ready()
        assert cl.state is State.SUBSCRIBED
        bid, ask = best(sb)
        ack = await cl.place(buy("p-1", bid))  # rests at the best bid
        assert ack.kind == "ack" and ack.venue_order_id is not None
        taker = await cl.place(buy("p-2", ask))  # takes the best ask at once
        assert taker.kind == "ack"
        await eventually(lambda: len(events) == 3, 3.0, "the taker fill")
        sb.start_replay()  # the replayed trades reach the resting bid
        await eventually(lambda: len(events) == 4, 5.0, "the maker fill")
        assert kinds(events) == [("ack", "p-1"), ("ack", "p-2"), ("fill", "p-2"), ("fill", "p-1")]
        t, m = events[2], events[3]
        assert (t.liquidity, t.price, t.qty, t.cum_qty) == ("taker", ask, D("0.001"), D("0.001"))
        assert (m.liquidity, m.price, m.trade_id) == ("maker", bid, "2")
        assert m.fee == D("0.000001") and m.fee_asset == "BTC"  # 0.1% of the quantity bought
        assert m.venue_order_id == ack.venue_order_id and m.reason == "FILLED"
        assert sb.method_counts["order.place"] == 2
        assert cl.filters[SYMBOL].tick_size == D("0.01")  # loaded from exchangeInfo


async def test_place_now_writes_the_frame_before_returning(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events) as cl:
        await ready(cl)
        bid, _ = best(sb)
        before = sb.method_counts.get("order.place", 0)
        answer = cl.place_now(buy("n-1", bid - 5))
        # Written already: the venue reads it while we only wait for the answer.
        assert cl.limiter.used("ORDERS") == 1 and len(cl._pending) == 1
        await eventually(lambda: sb.method_counts.get("order.place", 0) == before + 1, 2.0, "it")
        ack = await answer
        assert (ack.kind, ack.client_id) == ("ack", "n-1") and ack.venue_order_id is not None
        assert kinds(events) == [("ack", "n-1")]
        # Refused by the filters: answered at once, nothing sent.
        off_grid = await cl.place_now(buy("n-2", bid + D("0.001")))
        assert (off_grid.kind, off_grid.code) == ("reject", -1013)
        assert sb.method_counts["order.place"] == before + 1


async def test_place_now_waits_like_place_when_the_budget_is_spent(replay: Replay) -> None:
    events: list[ExecEvent] = []
    limits = limits_from_binance(
        [{"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 1, "limit": 1}]
    )
    async with venue(replay) as sb, client(sb, events, rate_limits=limits) as cl:
        await ready(cl)
        bid, _ = best(sb)
        assert (await cl.place_now(buy("w-1", bid - 1))).kind == "ack"
        t0 = time.monotonic()
        answer = cl.place_now(buy("w-2", bid - 2))  # no room: nothing is written yet
        assert len(cl._pending) == 0
        assert (await answer).kind == "ack"
        assert time.monotonic() - t0 >= 0.5  # it waited for the budget, as place() does
        assert sb.limits.throttled == 0


async def test_cancel_and_cancel_of_an_unknown_id(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events) as cl:
        await ready(cl)
        bid, _ = best(sb)
        await cl.place(buy("c-1", bid - 10))
        ev = await cl.cancel(OrderRequest("cancel", "c-2", SYMBOL, orig_client_id="c-1"))
        assert (ev.kind, ev.client_id, ev.reason) == ("canceled", "c-1", "CANCELED")
        again = await cl.cancel(OrderRequest("cancel", "c-3", SYMBOL, orig_client_id="c-1"))
        never = await cl.cancel(OrderRequest("cancel", "c-4", SYMBOL, orig_client_id="ghost"))
        for ev, target in ((again, "c-1"), (never, "ghost")):
            assert (ev.kind, ev.orig_client_id, ev.code) == ("cancel_rejected", target, -2011)
            assert ev.message == "Unknown order sent."
        await asyncio.sleep(0.05)  # the executionReport CANCELED is not reported twice
        assert kinds(events) == [
            ("ack", "c-1"),
            ("canceled", "c-1"),
            ("cancel_rejected", "c-3"),
            ("cancel_rejected", "c-4"),
        ]


async def test_duplicate_client_id(replay: Replay) -> None:
    ev_a: list[ExecEvent] = []
    ev_b: list[ExecEvent] = []
    # b does not follow the user stream: had it seen a's report about dup-1, it would refuse
    # the id itself (an orphan is an id in use).
    async with (
        venue(replay) as sb,
        client(sb, ev_a) as a,
        client(sb, ev_b, user_stream=False) as b,
    ):
        await ready(a)
        await ready(b)
        bid, _ = best(sb)
        assert (await a.place(buy("dup-1", bid - 1))).kind == "ack"
        # Another process (or one restarted without its journal) reuses the id.
        ev = await b.place(buy("dup-1", bid - 2))
        assert (ev.kind, ev.code, ev.message) == ("reject", -2010, "Duplicate order sent.")
        # In one client an id is never sent twice.
        with pytest.raises(UsageError, match="already used"):
            await a.place(buy("dup-1", bid - 3))
        assert sb.method_counts["order.place"] == 2
        assert ("reject", "dup-1") not in kinds(ev_a)


async def test_bad_signature_is_rejected_1022(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events, signer=HmacSha256Signer("wrong")) as cl:
        await refused(cl, sb)  # the signed user-stream subscription is refused
        bid, _ = best(sb)
        ev = await cl.place(buy("s-1", bid))
        assert (ev.kind, ev.code) == ("reject", -1022)
        assert ev.message == "Signature for this request is not valid."
        assert sb.matcher.orders == {}


async def test_stale_timestamp_1021_only_without_the_clock_offset(replay: Replay) -> None:
    events: list[ExecEvent] = []
    stale: list[ExecEvent] = []
    unsynced = ClockOffset()
    now = time.time_ns()
    unsynced.observe(now, now // 1_000_000, now)  # "the venue's clock is ours"
    async with (
        venue(replay, clock_skew_ms=30_000) as sb,
        client(sb, events) as good,
        client(sb, stale, sync_clock=False, clock_offset=unsynced) as bad,
    ):
        await ready(good)
        await refused(bad, sb)
        assert abs(good.clock.offset_ns / 1e6 - 30_000) < 1_000
        bid, _ = best(sb)
        assert (await good.place(buy("t-1", bid))).kind == "ack"
        ev = await bad.place(buy("t-2", bid))
        assert (ev.kind, ev.code) == ("reject", -1021)
        assert [e.code for e in events] == [None]  # the corrected client never got -1021


async def test_filters_refuse_before_anything_is_sent(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events) as cl:
        await ready(cl)
        ev = await cl.place(buy("f-1", D("61837.635")))
        assert (ev.kind, ev.code, ev.message) == ("reject", -1013, "Filter failure: PRICE_FILTER")
        assert ev.reason == "refused locally (symbol filters)"
        ev = await cl.place(buy("f-2", D("61837.63"), qty="0.0000001"))
        assert ev.message == "Filter failure: LOT_SIZE"
        assert "order.place" not in sb.method_counts  # the server saw nothing
        assert cl.filter_rejects == 2 and kinds(events) == [("reject", "f-1"), ("reject", "f-2")]


async def test_post_only_that_would_cross_is_rejected(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events) as cl:
        await ready(cl)
        bid, ask = best(sb)
        ev = await cl.place(buy("m-1", ask, post_only=True))
        assert (ev.kind, ev.code) == ("reject", -2010)
        assert ev.message == "Order would immediately match and take."
        assert (await cl.place(buy("m-2", bid, post_only=True))).kind == "ack"


async def test_connection_killed_with_an_order_in_flight(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events) as cl:
        await ready(cl)
        bid, _ = best(sb)
        # The next request is carried out, then every socket dies before the reply.
        sb.faults = Faults(kill_ws_api_after=frozenset({sb.ws_api_requests + 1}))
        ev = await cl.place(buy("k-1", bid))
        assert (ev.kind, ev.reason) == ("unknown", "connection lost")
        await eventually(lambda: ("ack", "k-1") in kinds(events), 5.0, "the resolution")
        assert kinds(events) == [("unknown", "k-1"), ("resolved", "k-1"), ("ack", "k-1")]
        assert events[1].reason == "NEW" and cl.reconnects == 1
        # Neither lost nor duplicated: one order.place, one order, found by order.status.
        assert sb.method_counts["order.place"] == 1 and sb.method_counts["order.status"] >= 1
        assert [o.client_id for o in sb.matcher.orders.values()] == ["k-1"]
        sb.start_replay()
        await eventually(lambda: ("fill", "k-1") in kinds(events), 5.0, "the fill")
        await asyncio.sleep(0.05)
        assert kinds(events)[3:] == [("fill", "k-1")]


async def test_delayed_ack_is_unknown_then_resolved_by_the_report(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with (
        venue(replay, faults="delay_ack=600") as sb,
        client(sb, events, timeout=0.25, resolve_after=5.0) as cl,
    ):
        await ready(cl)
        bid, _ = best(sb)
        ev = await cl.place(buy("d-1", bid))
        assert ev.kind == "unknown" and "no reply" in ev.reason
        assert [o.status for o in sb.matcher.orders.values()] == ["NEW"]  # it executed
        await eventually(lambda: len(events) == 3, 3.0, "the delayed report")
        assert kinds(events) == [("unknown", "d-1"), ("resolved", "d-1"), ("ack", "d-1")]
        assert events[1].reason == "NEW"  # settled by the executionReport
        await eventually(lambda: cl._pending.late_replies == 1, 2.0, "the late reply")
        assert len(events) == 3 and "order.status" not in sb.method_counts


async def test_lost_reply_is_resolved_by_status_and_trades(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events, timeout=0.3, user_stream=False) as cl:
        await ready(cl)
        _, ask = best(sb)
        sb.faults = Faults(drop_reply=frozenset({sb.ws_api_requests + 1}))
        ev = await cl.place(buy("l-1", ask))  # fills at once; the reply is lost
        assert ev.kind == "unknown"
        await eventually(lambda: ("fill", "l-1") in kinds(events), 3.0, "the resolution")
        assert kinds(events) == [
            ("unknown", "l-1"),
            ("resolved", "l-1"),
            ("ack", "l-1"),
            ("fill", "l-1"),
        ]
        assert events[1].reason == "FILLED" and events[3].reason == "myTrades"
        assert events[3].trade_id == "1" and events[3].liquidity == "taker"
        assert sb.method_counts["order.place"] == 1 and sb.method_counts["myTrades"] == 1


async def test_a_fill_delivered_twice_is_reported_once(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay, faults="dup_fill=1") as sb, client(sb, events) as cl:
        await ready(cl)
        _, ask = best(sb)
        await cl.place(buy("u-1", ask))
        await eventually(lambda: cl.tracker.duplicate_fills == 1, 3.0, "the second copy")
        assert kinds(events) == [("ack", "u-1"), ("fill", "u-1")]


async def test_reports_out_of_order(replay: Replay) -> None:
    events: list[ExecEvent] = []
    # The first user event (NEW) is sent after the second (TRADE).
    async with venue(replay, faults="reorder_user=1") as sb, client(sb, events) as cl:
        await ready(cl)
        _, ask = best(sb)
        await cl.place(buy("r-1", ask))
        await eventually(lambda: len(events) == 2, 3.0, "the reports")
        await asyncio.sleep(0.05)
        assert kinds(events) == [("ack", "r-1"), ("fill", "r-1")]
        assert events[0].reason == "implied by fill" and cl.tracker.duplicates >= 1


async def test_malformed_frames_are_counted_not_fatal(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay, faults="bad_frame=2,bad_shape=3") as sb, client(sb, events) as cl:
        await ready(cl)
        sb.start_replay()
        await sb.replay_done.wait()
        await eventually(lambda: cl.status().bad_frames == 2, 3.0, "two bad frames")
        bid, _ = best(sb)
        assert (await cl.place(buy("b-1", bid))).kind == "ack"
        assert cl.state is State.SUBSCRIBED and cl.reconnects == 0


async def test_429_pauses_sending_until_retry_after(replay: Replay) -> None:
    events: list[ExecEvent] = []
    limits = [{"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 1, "limit": 1}]
    async with (
        venue(replay, rate_limits=limits, ban_after=1) as sb,
        client(sb, events, rate_limits=[]) as cl,  # no local limits: the venue has to say it
    ):
        await ready(cl)
        bid, _ = best(sb)
        assert (await cl.place(buy("q-1", bid - 1))).kind == "ack"
        ev = await cl.place(buy("q-2", bid - 2))
        assert (ev.kind, ev.code) == ("reject", -1015)
        pause = cl.limiter.paused_for()
        assert 0.3 < pause <= 1.0
        t0 = time.monotonic()
        assert (await cl.place(buy("q-3", bid - 3))).kind == "ack"
        assert time.monotonic() - t0 >= pause - 0.05
        # Honouring retryAfter is what keeps a client from the 418 ban (ban_after=1).
        assert sb.limits.throttled == 1 and sb.limits.violations == 0 and sb.limits.banned == 0


async def test_ed25519_key_logs_the_session_on(replay: Replay) -> None:
    signer = Ed25519Signer.from_pem(ED25519_PEM)
    account = SandboxAccount(API_KEY, ed25519_public_pem=signer.public_key_pem())
    events: list[ExecEvent] = []
    async with venue(replay, account=account) as sb, client(sb, events, signer=signer) as cl:
        await ready(cl)
        assert sb.method_counts["session.logon"] == 1
        assert sb.method_counts["userDataStream.subscribe"] == 1
        _, ask = best(sb)
        await cl.place(buy("e-1", ask))
        await eventually(lambda: ("fill", "e-1") in kinds(events), 3.0, "the fill report")


async def test_amend_is_a_cancel_replace(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events) as cl:
        await ready(cl)
        bid, ask = best(sb)
        await cl.place(buy("a-1", bid - 5))
        amend = OrderRequest(
            "amend", "a-2", SYMBOL, orig_client_id="a-1", side="buy", price=bid - 4, qty=D("0.002")
        )
        ev = await cl.amend(amend)
        assert (ev.kind, ev.client_id, ev.orig_client_id) == ("amended", "a-2", "a-1")
        await asyncio.sleep(0.05)
        assert kinds(events) == [
            ("ack", "a-1"),
            ("canceled", "a-1"),
            ("amended", "a-2"),
            ("ack", "a-2"),
        ]
        assert events[3].price == bid - 4 and events[3].qty == D("0.002")
        gone = OrderRequest(
            "amend", "a-3", SYMBOL, orig_client_id="a-1", side="buy", price=bid, qty=D("0.001")
        )
        ev = await cl.amend(gone)
        assert (ev.kind, ev.code, ev.message) == ("amend_rejected", -2011, "Unknown order sent.")
        crossing = OrderRequest(
            "amend",
            "a-4",
            SYMBOL,
            orig_client_id="a-2",
            side="buy",
            price=ask,
            qty=D("0.001"),
            post_only=True,
        )
        ev = await cl.amend(crossing)  # the cancel works, the new order is refused: 409
        assert (ev.kind, ev.code) == ("amend_rejected", -2010)
        await asyncio.sleep(0.05)
        assert kinds(events)[-2:] == [("canceled", "a-2"), ("amend_rejected", "a-4")]


async def test_cancel_all(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events) as cl:
        await ready(cl)
        bid, ask = best(sb)
        await cl.place(buy("x-1", bid - 1))
        await cl.place(sell("x-2", ask + 1))
        out = await cl.cancel_all(SYMBOL)
        assert sorted(kinds(out)) == [("canceled", "x-1"), ("canceled", "x-2")]
        out = await cl.cancel_all(SYMBOL, client_id="x-3")
        assert [(e.kind, e.client_id, e.code) for e in out] == [("cancel_rejected", "x-3", -2011)]


async def test_fills_missed_while_disconnected_are_recovered(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events) as cl:
        await ready(cl)
        bid, _ = best(sb)
        await cl.place(buy("g-1", bid))
        for session in list(sb._sessions.values()):
            session.ws.transport.abort()
        # The market trades through the bid while the client is away; its report is lost.
        sb.matcher.advance(len(replay.messages))
        await eventually(lambda: ("fill", "g-1") in kinds(events), 5.0, "the recovered fill")
        assert kinds(events) == [("ack", "g-1"), ("fill", "g-1")]
        assert events[1].reason == "myTrades" and cl.reconnects == 1
        status = await cl.order_status("g-1")
        assert status is not None and status.status == "FILLED"
        assert await cl.order_status("nothing", SYMBOL) is None


class _UnsureVenue(SandboxVenue):
    """Carries out the next order.place, then answers it with an error that says the
    outcome is unknown."""

    error: tuple[int, int, str] = (400, -1007, "")

    def _respond(self, session, n, method, reply, frames):  # type: ignore[no-untyped-def]
        if method == "order.place" and self.error[0]:
            status, code, msg = self.error
            self.error = (0, 0, "")
            reply = {"id": reply["id"], "status": status, "error": {"code": code, "msg": msg}}
        super()._respond(session, n, method, reply, frames)


@pytest.mark.parametrize(
    ("status", "code", "msg"),
    [
        (400, -1007, "Timeout waiting for response from backend server. Send status unknown; "
         "execution status unknown."),
        (400, -1006, "An unexpected response was received from the message bus. Execution "
         "status unknown."),
        (503, -1008, "Server is currently overloaded with other requests."),
    ],
)  # fmt: skip
async def test_errors_that_mean_unknown(replay: Replay, status: int, code: int, msg: str) -> None:
    events: list[ExecEvent] = []
    sb = _UnsureVenue(replay, account=SandboxAccount(API_KEY, secret=API_SECRET), autostart=False)
    sb.error = (status, code, msg)
    async with sb, client(sb, events, user_stream=False) as cl:
        await ready(cl)
        bid, _ = best(sb)
        ev = await cl.place(buy("n-1", bid))
        assert (ev.kind, ev.code) == ("unknown", code) and str(status) in ev.reason
        await eventually(lambda: len(events) == 3, 3.0, "the status query")
        assert kinds(events) == [("unknown", "n-1"), ("resolved", "n-1"), ("ack", "n-1")]
        assert sb.method_counts["order.place"] == 1  # never resent


async def test_local_limits_come_from_exchange_info(replay: Replay) -> None:
    events: list[ExecEvent] = []
    limits = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 1, "limit": 1},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    ]
    async with venue(replay, rate_limits=limits) as sb, client(sb, events) as cl:
        await ready(cl)
        assert sorted((lim.kind, lim.capacity, lim.window) for lim in cl.limiter.limits) == [
            ("ORDERS", 1, 1.0),
            ("ORDERS", 200000, 86400.0),
            ("REQUEST_WEIGHT", 6000, 60.0),
        ]
        bid, _ = best(sb)
        t0 = time.monotonic()
        assert (await cl.place(buy("w-1", bid - 1))).kind == "ack"
        assert (await cl.place(buy("w-2", bid - 2))).kind == "ack"  # waited here, not refused
        assert time.monotonic() - t0 >= 0.9
        assert sb.limits.throttled == 0 and cl.limiter.waits == 1
        assert API_KEY not in repr(cl) and API_SECRET not in repr(cl.signer)


async def test_nothing_is_signed_before_the_clock_is_measured(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events, sync_clock=False, user_stream=False) as cl:
        await ready(cl)
        bid, _ = best(sb)
        ev = await cl.place(buy("z-1", bid))
        assert ev.kind == "reject" and "clock is not measured" in ev.message
        assert "order.place" not in sb.method_counts


async def test_lost_replies_to_cancel_amend_and_cancel_all(replay: Replay) -> None:
    events: list[ExecEvent] = []
    async with venue(replay) as sb, client(sb, events, timeout=0.3, user_stream=False) as cl:
        await ready(cl)
        bid, _ = best(sb)

        def drop_next() -> None:
            sb.faults = Faults(drop_reply=frozenset({sb.ws_api_requests + 1}))

        for cid in ("h-1", "h-2", "h-3", "h-4"):
            await cl.place(buy(cid, bid - 1))
        drop_next()
        ev = await cl.cancel(OrderRequest("cancel", "h-5", SYMBOL, orig_client_id="h-1"))
        assert (ev.kind, ev.orig_client_id) == ("unknown", "h-1")
        await eventually(lambda: ("canceled", "h-1") in kinds(events), 3.0, "cancel settled")
        drop_next()
        amend = OrderRequest(
            "amend", "h-6", SYMBOL, orig_client_id="h-2", side="buy", price=bid - 2, qty=D("0.001")
        )
        assert (await cl.amend(amend)).kind == "unknown"
        await eventually(lambda: ("ack", "h-6") in kinds(events), 3.0, "amend settled")
        drop_next()
        [ev] = await cl.cancel_all(SYMBOL, client_id="h-7")
        assert ev.kind == "unknown"
        await eventually(lambda: ("resolved", "h-7") in kinds(events), 3.0, "cancel-all settled")
        await asyncio.sleep(0.05)
        assert kinds(events)[4:] == [
            ("unknown", "h-5"),
            ("resolved", "h-5"),
            ("canceled", "h-1"),
            ("unknown", "h-6"),
            ("resolved", "h-6"),
            ("canceled", "h-2"),
            ("amended", "h-6"),
            ("ack", "h-6"),
            ("unknown", "h-7"),
            ("resolved", "h-7"),
            ("canceled", "h-3"),
            ("canceled", "h-4"),
            ("canceled", "h-6"),
        ]
        assert sb.matcher.open_orders(SYMBOL) == []
        assert sb.method_counts["openOrders.cancelAll"] == 1
