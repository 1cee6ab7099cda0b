"""The live session on Binance USD-M futures: the engine trading the futures sandbox.

Each test runs a `SandboxFuturesVenue` (the recorded BTCUSDT market as USD-M frames, orders
over `/ws-fapi/v1`, the listenKey user stream, positions over REST) and a `LiveSession`
built by `LiveSession.for_venue(endpoints_for(url, "binance-usdm"), ...)` with the shared
strategy (tests/adapters/live/touch_strategy.py, so no new compilation).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from adapters.live.order_journal import replay as replay_journal
from adapters.live.order_records import Marker
from adapters.live.order_state import rebuild
from adapters.live.sandbox_auth import SandboxAccount
from adapters.live.sandbox_futures import futures_replay
from adapters.live.sandbox_futures_exec import SandboxFuturesVenue
from adapters.live.sandbox_replay import Replay, replay_from_capture
from adapters.live.session import LiveSession
from engine.commands import CMD_AMEND, CMD_FLATTEN, Command
from engine.state import PF_COST, PI_POS
from tests.adapters.live.helpers import eventually
from tests.adapters.live.leaks import API_KEY, API_SECRET
from tests.adapters.live.session_helpers import SYMBOL, done, futures_session_for, position

pytestmark = pytest.mark.usefixtures("warm_engine")

QTY = 100  # lots of 0.00001 BTC: 0.001 BTC, about 62 USDT


pytestmark = pytest.mark.usefixtures("quiet_sandbox_headers")


@pytest.fixture(scope="module")
def replay(shared_data: Path) -> Replay:
    spot = replay_from_capture(
        shared_data / "binance-ws" / "spot_btcusdt_20240808.gz", max_messages=1200
    )
    return futures_replay(spot)


def venue(replay: Replay, **kw: Any) -> SandboxFuturesVenue:
    kw.setdefault("account", SandboxAccount(API_KEY, secret=API_SECRET))
    kw.setdefault("speed", 5)
    return SandboxFuturesVenue(replay, **kw)


def records(path: Path) -> list:
    return replay_journal(path).records


async def buy_and_hold(sb: SandboxFuturesVenue, journal: Path) -> LiveSession:
    """A session that bought QTY lots and holds them (started; the caller stops it)."""
    session = futures_session_for(sb, journal, {"qty": QTY, "at": 3, "sell": 0})
    await session.start()
    await done(session)
    await eventually(lambda: session.venue_positions().get(SYMBOL, (0,))[0] != 0, 5.0, "pos")
    return session


async def test_a_futures_session_trades_and_its_position_is_the_venues(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    async with venue(replay) as sb:
        session = await buy_and_hold(sb, journal)
        try:
            assert session.futures and session.environment == "sandbox"
            (trades,) = session.md_extra  # the /market route: aggTrades reach the engine
            assert trades.route == "market"
            await eventually(lambda: trades.status().messages > 2, 5.0, "aggTrades")
            assert position(session) == QTY
            assert sb.positions[SYMBOL][0] == D("0.001")
            assert session.venue_positions()[SYMBOL][0] == D("0.001")  # from ACCOUNT_UPDATE
            sb.push_funding(D("-0.0125"))
            await eventually(lambda: session.funding.get("USDT") == D("-0.0125"), 5.0, "fee")
            status = session.status()
            assert status.venue_positions == ((SYMBOL, "0.001"),)
            assert status.funding == (("USDT", "-0.0125"),)
            assert "funding USDT=-0.0125" in status.line() and status.fills >= 1
        finally:
            await session.stop()
    recs = records(journal)
    fees = [r for r in recs if isinstance(r, Marker) and r.name == "funding_fee"]
    assert [f.data for f in fees] == [{"asset": "USDT", "amount": "-0.01250000"}]  # as sent
    assert [o.status for o in rebuild(recs).orders.values()] == ["filled"]


async def test_a_restart_reads_the_open_position_back(replay: Replay, tmp_path: Path) -> None:
    journal = tmp_path / "orders.journal"
    async with venue(replay) as sb:
        first = await buy_and_hold(sb, journal)
        await first.stop()
        # The same journal: its fills add up to the venue's position, nothing to report.
        second = futures_session_for(sb, journal, {"qty": QTY, "rounds": 0})
        await second.start()
        try:
            report = second.reconcile_report
            assert report is not None and not report.halts
            assert position(second) == QTY == sb.positions[SYMBOL][0] / D("0.00001")
            assert second.status().trading == "active"
        finally:
            await second.stop()
    markers = [r for r in records(journal) if isinstance(r, Marker)]
    assert [m.data for m in markers if m.name == "venue_positions"] == [{}, {SYMBOL: "0.001"}]


async def test_a_venue_position_the_journal_does_not_know_is_a_mismatch(
    replay: Replay, tmp_path: Path
) -> None:
    seeded = {SYMBOL: (D("-0.002"), D("60000"))}
    async with venue(replay, positions=seeded) as sb:
        session = futures_session_for(sb, tmp_path / "new.journal", {"qty": QTY, "rounds": 0})
        await session.start()
        try:
            report = session.reconcile_report
            assert report is not None and report.halts
            assert [(i.client_id, i.verdict) for i in report.diff] == [("position", "mismatch")]
            assert "position -0.002" in report.lines()[0]
            assert position(session) == -200  # the venue's position is booked anyway
            assert session.status().trading == "halted"
            assert session.acknowledge_reconcile()
            assert session.status().trading == "active"
        finally:
            await session.stop()


async def resting(sb: SandboxFuturesVenue, journal: Path) -> tuple[LiveSession, int]:
    """A session with one GTC buy resting far below the market; its engine order id."""
    params = {"qty": QTY, "at": 3, "sell": 0, "slip": -500, "tif": 0}
    session = futures_session_for(sb, journal, params)
    await session.start()
    await eventually(lambda: session.status().acked == 1, 10.0, "the resting order")
    assert session.orders is not None
    (order,) = session.orders.working()
    return session, order.oid


def amend_to(session: LiveSession, oid: int, price: D, qty_lots: int) -> None:
    inst = session.md.instruments[0]
    session.command(Command(CMD_AMEND, a=oid, c=inst.price_to_ticks(price), d=qty_lots))


async def test_an_amend_is_a_modify_that_keeps_the_client_id(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    async with venue(replay) as sb:
        session, oid = await resting(sb, journal)
        assert session.orders is not None
        order = session.orders.by_oid[oid]
        new_price = order.price - D(1)  # type: ignore[operator]
        amend_to(session, oid, new_price, 2 * QTY)
        await eventually(lambda: order.qty == D("0.002"), 5.0, "the amend")
        at_venue = sb.matcher.open_by_client("t-1")
        assert at_venue is not None and (at_venue.price, at_venue.qty) == (new_price, D("0.002"))
        assert order.venue_cid == "t-1" and sb.matcher.find("t-2", None) is None
        assert sb.method_counts.get("order.modify") == 1
        assert sb.method_counts.get("order.cancel", 0) == 0  # in place, not cancel-replace
        # The answer is journaled by the next step (unsynced, as every venue answer).
        await eventually(
            lambda: rebuild(records(journal)).requests["t-2"].status == "ack", 5.0, "journal"
        )
        rebuilt = rebuild(records(journal))
        assert (rebuilt.orders["t-1"].price, rebuilt.orders["t-1"].qty) == (new_price, D("0.002"))
        await session.abort()  # a crash: the order stays open at the venue
        # The restart rebuilds the amended terms from the journal: they agree with the venue.
        second = futures_session_for(sb, journal, {"qty": QTY, "rounds": 0})
        await second.start()
        try:
            report = second.reconcile_report
            assert report is not None and not report.halts
            assert [(i.client_id, i.verdict) for i in report.items] == [("t-1", "agrees")]
            assert list(second.inherited) == ["t-1"]
        finally:
            await second.stop()
        assert sb.matcher.open_orders(SYMBOL) == []  # the inherited order was canceled
    assert rebuild(records(journal)).orders["t-1"].status == "canceled"


async def test_a_rejected_modify_leaves_the_old_terms(replay: Replay, tmp_path: Path) -> None:
    journal = tmp_path / "orders.journal"
    async with venue(replay) as sb:
        session, oid = await resting(sb, journal)
        assert session.orders is not None
        order = session.orders.by_oid[oid]
        old_price = order.price
        assert old_price is not None
        amend_to(session, oid, old_price, QTY)  # the same terms: "No need to modify"
        await eventually(lambda: "t-2" in rebuild(records(journal)).requests, 5.0, "journal")
        await eventually(
            lambda: rebuild(records(journal)).requests["t-2"].status == "reject", 5.0, "reply"
        )
        try:
            request = rebuild(records(journal)).requests["t-2"]
            assert request.code == -5027
            at_venue = sb.matcher.open_by_client("t-1")
            assert at_venue is not None and (at_venue.price, at_venue.qty) == (
                old_price,
                D("0.001"),
            )
            assert (order.price, order.qty, order.amend_cid) == (old_price, D("0.001"), None)
            assert session.working_orders() == ["t-1"]
            # The engine took the order back to working with its old terms: it can amend.
            amend_to(session, oid, old_price - D(2), QTY)
            await eventually(lambda: order.price == old_price - D(2), 5.0, "a 2nd amend")
        finally:
            await session.stop()
        assert sb.matcher.open_orders(SYMBOL) == []


async def test_flatten_is_reduce_only_and_leaves_the_venue_flat(
    replay: Replay, tmp_path: Path
) -> None:
    async with venue(replay) as sb:
        session = await buy_and_hold(sb, tmp_path / "orders.journal")
        try:
            session.command(Command(CMD_FLATTEN))
            await eventually(lambda: sb.positions[SYMBOL][0] == 0, 5.0, "flat at the venue")
            await eventually(lambda: position(session) == 0, 5.0, "flat in the engine")
            assert sb._reduce_only == {"t-2"}  # the flatten order went out reduceOnly=true
            assert session.venue_positions()[SYMBOL][0] == 0
        finally:
            await session.stop()


async def test_stop_with_flatten_closes_the_position_reduce_only(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    async with venue(replay) as sb:
        session = await buy_and_hold(sb, journal)
        assert sb.positions[SYMBOL][0] == D("0.001")
        await session.stop(flatten=True)
        assert sb.positions[SYMBOL][0] == 0  # the venue is flat before the connections close
        assert position(session) == 0 and session.venue_positions()[SYMBOL][0] == 0
        assert sb._reduce_only == {"t-2"}
        last = session.status().line()
        assert "pos BTCUSDT=0 " in last and "venue pos BTCUSDT=0" in last
    orders = rebuild(records(journal)).orders
    assert [(cid, o.side, o.status) for cid, o in orders.items()] == [
        ("t-1", "buy", "filled"),
        ("t-2", "sell", "filled"),
    ]


async def test_a_position_moved_behind_the_sessions_back_is_a_drift_alert(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    async with venue(replay) as sb:
        session = futures_session_for(
            sb, journal, {"qty": QTY, "at": 3, "sell": 0}, drift_grace=0.3, halt_on_drift=True
        )
        await session.start()
        try:
            await done(session)
            await eventually(lambda: sb.positions[SYMBOL][0] != 0, 5.0, "the buy")
            assert session.status().drift == ()
            sb.move_position(SYMBOL, D("0.003"))  # another program bought 0.002 more
            await eventually(lambda: session.status().drift != (), 5.0, "the drift alert")
            status = session.status()
            (drift,) = status.drift
            assert (drift.symbol, drift.engine, drift.venue) == (SYMBOL, D("0.001"), D("0.003"))
            assert drift.seconds >= 0.3
            assert status.trading == "halted"  # halt_on_drift
            assert "POSITION DRIFT BTCUSDT engine 0.001 venue 0.003" in status.line()
            # The venue goes back to the engine's position: the alert ends (still halted).
            sb.move_position(SYMBOL, D("0.001"))
            await eventually(lambda: session.status().drift == (), 5.0, "the alert's end")
            assert session.status().trading == "halted"
        finally:
            await session.stop()
    markers = [r for r in records(journal) if isinstance(r, Marker)]
    drifts = [m.data for m in markers if m.name.startswith("position_drift")]
    assert drifts == [
        {"symbol": SYMBOL, "engine": "0.001", "venue": "0.003", "halted": 1},
        {"symbol": SYMBOL},
    ]


async def test_a_difference_shorter_than_the_grace_period_is_no_alert(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    async with venue(replay) as sb:
        session = futures_session_for(sb, journal, {"qty": QTY, "rounds": 0}, drift_grace=1.0)
        await session.start()
        try:
            assert not session.halts_on_drift  # the sandbox's default
            sb.move_position(SYMBOL, D("0.002"))
            await eventually(lambda: session.venue_positions().get(SYMBOL), 5.0, "the update")
            await asyncio.sleep(0.3)
            sb.move_position(SYMBOL, D("0"))
            await asyncio.sleep(1.5)  # past the grace period: the difference had ended
            status = session.status()
            assert status.drift == () and status.trading == "active"
            assert "DRIFT" not in status.line()
        finally:
            await session.stop()
    assert not [r for r in records(journal) if isinstance(r, Marker) and "drift" in r.name]


async def test_the_trades_connection_is_in_the_status(replay: Replay, tmp_path: Path) -> None:
    async with venue(replay) as sb:
        session = futures_session_for(sb, tmp_path / "j", {"qty": QTY, "rounds": 0})
        await session.start()
        try:
            await eventually(
                lambda: session.status().more_market_data[0].messages > 2, 5.0, "aggTrades"
            )
            (trades,) = session.status().more_market_data
            assert trades.name == "trades" and trades.state == "subscribed"
            assert trades.last_message_age is not None and trades.reconnects == 0
            assert " | trades subscribed (age " in session.status().line()
        finally:
            await session.stop()


async def test_a_fill_of_an_inherited_order_is_booked_into_the_engine(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    async with venue(replay) as sb:
        first, _ = await resting(sb, journal)
        await first.abort()  # a crash: t-1 stays open at the venue
        second = futures_session_for(sb, journal, {"qty": QTY, "rounds": 0}, drift_grace=0.3)
        await second.start()
        try:
            assert list(second.inherited) == ["t-1"] and position(second) == 0
            assert sb.fill_order("t-1")  # the market reaches it while this run trades
            await eventually(lambda: position(second) == QTY, 5.0, "the inherited fill")
            await eventually(
                lambda: second.venue_positions()[SYMBOL][0] == D("0.001"), 5.0, "venue"
            )
            assert second.inherited == {}  # filled: nothing left to cancel at the stop
            await asyncio.sleep(0.5)  # past the grace period: engine and venue agree
            assert second.status().drift == ()
            assert second.engine is not None  # booked in the manual row, at the order's price
            st = second.engine.state
            inst = second.md.instruments[0]
            assert int(st.pi[-1, 0, PI_POS]) == QTY
            order = rebuild(records(journal)).orders["t-1"]
            assert st.pf[-1, 0, PF_COST] == inst.price_to_ticks(order.price) * QTY
            # ...so a flatten closes it (reduce-only), like any position of the engine.
            assert await second.flatten_positions(timeout=5.0)
            assert sb.positions[SYMBOL][0] == 0
        finally:
            await second.stop()
    orders = rebuild(records(journal)).orders
    assert orders["t-1"].status == "filled"


async def test_a_stale_venue_position_is_read_again_before_an_alert(
    replay: Replay, tmp_path: Path
) -> None:
    from adapters.live.binance_futures_messages import Position

    async with venue(replay) as sb:
        session = futures_session_for(
            sb, tmp_path / "j", {"qty": QTY, "rounds": 0}, drift_grace=0.3
        )
        await session.start()
        try:
            ex = session.execution
            # As if an ACCOUNT_UPDATE had been missed (user stream reconnecting): the
            # client's copy says 0.002, the venue (and the engine) are flat.
            ex.positions[(SYMBOL, "BOTH")] = Position(SYMBOL, D("0.002"), D("60000"), "BOTH")
            await eventually(lambda: session.venue_positions() == {}, 5.0, "the REST read")
            await asyncio.sleep(0.5)
            assert session.status().drift == ()
        finally:
            await session.stop()
