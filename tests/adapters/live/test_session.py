"""The live session end to end: the engine trading the sandbox venue over loopback.

Each test runs a sandbox (`CheckedVenue`: it notes every order.place and whether the
journal held its intent when it arrived) and a `LiveSession` with the shared strategy
(tests/adapters/live/touch_strategy.py) on one event loop, with faults the sandbox injects.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.live.order_journal import replay as replay_journal
from adapters.live.order_records import Intent, Marker, Reply
from adapters.live.order_state import rebuild
from adapters.live.sandbox_md import Faults
from adapters.live.sandbox_replay import Replay, replay_from_capture
from adapters.live.ws_venue import State
from engine.codes import R_BOOK_NOT_IN_SYNC, SIDE_BUY_CODE, ST_FILLED
from engine.commands import CMD_MANUAL_MARKET, Command
from engine.errors import CockpitError
from engine.state import PI_POS
from tests.adapters.live.helpers import eventually
from tests.adapters.live.session_helpers import (
    SYMBOL,
    CheckedVenue,
    done,
    position,
    sandbox_position,
    sandbox_top,
    session_for,
    top_of_book,
)

pytestmark = pytest.mark.usefixtures("warm_engine")

QTY = 100  # lots of 0.00001 BTC: about 62 USDT, above the 5 USDT minimum notional


@pytest.fixture(scope="module")
def replay(shared_data: Path) -> Replay:
    # 1,200 messages: about 4.6 s of the recorded market, 50 depth diffs.
    return replay_from_capture(
        shared_data / "binance-ws" / "spot_btcusdt_20240808.gz", max_messages=1200
    )


def records(path: Path) -> list:
    return replay_journal(path).records


async def test_round_trips_are_journaled_before_they_are_sent(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    params = {"qty": QTY, "at": 3, "rounds": 2, "every": 5}
    async with CheckedVenue(replay, speed=5) as sb:
        session = session_for(sb, journal, params)
        await session.start()
        try:
            await done(session)
            status = session.status()
        finally:
            await session.stop()
        assert session.engine is not None
        assert len(sb.placed) == 4 and all(sb.journaled_first)  # journaled, then sent
        assert sb.place_counts().most_common(1)[0][1] == 1
        assert (status.orders, status.acked, status.rejected, status.working) == (4, 4, 0, 0)
        assert status.fills >= 4 and status.trading == "active"
        assert status.environment == "sandbox" and status.execution.clock_offset_ms is not None
        assert status.market_data.state == str(State.SUBSCRIBED)
        assert "orders 4 acked 4" in status.line()
        assert position(session) == sandbox_position(sb) == 0
        assert int(session.engine.rows[0]["done_rounds"]) == 2
        # The journal rebuilds to the same four orders, all filled, ids in sequence.
        rebuilt = rebuild(records(journal))
        assert [o.client_id for o in rebuilt.orders.values()] == [f"t-{k}" for k in (1, 2, 3, 4)]
        assert {o.status for o in rebuilt.orders.values()} == {"filled"}
        names = [m.name for m in rebuilt.markers]
        assert (names[:2], names[-1]) == (["reconciled", "session_start"], "session_stop")


async def test_a_connection_killed_with_an_order_in_flight_loses_nothing(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    async with CheckedVenue(replay, speed=5) as sb:
        session = session_for(sb, journal, {"qty": QTY, "at": 3, "sell": 0})
        await session.start()
        try:
            # The next WS-API request (the strategy's order) is carried out, then every
            # WS-API socket is reset before the reply.
            sb.faults = Faults(kill_ws_api_after=frozenset({sb.ws_api_requests + 1}))
            await done(session)
        finally:
            await session.stop()
        assert session.orders is not None
        assert sb.ws_api_killed == 1 and session.execution.reconnects >= 1
        assert sb.place_counts() == {"t-1": 1}  # sent once, never again
        assert session.orders.counts.unknown == 1 and session.orders.counts.resolved == 1
        assert position(session) == sandbox_position(sb) == QTY
        names = [r.name for r in records(journal) if isinstance(r, Marker)]
        assert names.index("unknown") < names.index("resolved")


async def test_a_dropped_diff_resyncs_the_book_and_orders_wait_for_it(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    async with CheckedVenue(replay, speed=5, faults="drop_diff=30") as sb:
        session = session_for(sb, journal, {"qty": QTY, "at": 3})
        refused: list[int] = []
        states: list[bool] = []

        def on_book(symbol: str, in_sync: bool) -> None:
            states.append(in_sync)
            if not in_sync:  # a person tries to trade while the book is being rebuilt
                cmd = Command(CMD_MANUAL_MARKET, a=0, b=SIDE_BUY_CODE, d=QTY)
                refused.append(session.command(cmd))

        session.book_listeners.append(on_book)
        await session.start()
        try:
            await eventually(sb.replay_done.is_set, 15.0, "the end of the replay")
            await done(session)
            await eventually(lambda: session.in_sync(SYMBOL), 5.0, "the book in sync")
            assert session.engine is not None
            engine_top = top_of_book(session.engine.state.book, 0)
        finally:
            await session.stop()
        assert sb.diffs_dropped == 1 and session.md.gaps == 1
        assert states == [True, False, True]  # synced, gap, resynced
        assert refused == [-R_BOOK_NOT_IN_SYNC]
        assert engine_top == sandbox_top(sb)
        assert position(session) == sandbox_position(sb) == 0


async def test_a_duplicated_fill_is_counted_once(replay: Replay, tmp_path: Path) -> None:
    journal = tmp_path / "orders.journal"
    async with CheckedVenue(replay, speed=5, faults="dup_fill=1") as sb:
        session = session_for(sb, journal, {"qty": QTY, "at": 3, "sell": 0})
        await session.start()
        try:
            await done(session)
        finally:
            await session.stop()
        assert session.orders is not None and session.engine is not None
        assert session.execution.tracker.duplicate_fills == 1
        sandbox_fills = sum(len(o.trades) for o in sb.matcher.orders.values())
        assert session.orders.counts.fills == sandbox_fills
        assert session.engine.counters()["fills"] == sandbox_fills
        assert position(session) == sandbox_position(sb) == QTY
        (order,) = rebuild(records(journal)).orders.values()
        assert order.status == "filled" and order.duplicate_fills == 0


async def test_an_ack_later_than_the_timeout_is_unknown_then_resolved(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    async with CheckedVenue(replay, speed=5, faults="delay_ack=600") as sb:
        session = session_for(sb, journal, {"qty": QTY, "at": 3, "sell": 0}, timeout=0.2)
        await session.start()
        seen_unknown: list[str] = []
        try:
            await eventually(
                lambda: bool(session.status().unknown) or session.orders.counts.unknown > 0,
                10.0,
                "the order to go unknown",
            )
            seen_unknown += [u.client_id for u in session.status().unknown]
            await done(session)
        finally:
            await session.stop()
        assert session.orders is not None
        assert seen_unknown in ([], ["t-1"])  # it may already be resolved when we look
        assert session.orders.counts.unknown == 1 and session.orders.counts.resolved == 1
        assert sb.place_counts() == {"t-1": 1}
        assert position(session) == sandbox_position(sb) == QTY
        assert session.engine is not None
        assert int(session.engine.rows[0]["phase"]) == 4
        names = [r.name for r in records(journal) if isinstance(r, Marker)]
        assert names.index("unknown") < names.index("resolved")


async def test_a_crash_between_journal_and_send_is_reconciled_without_resending(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    async with CheckedVenue(replay, speed=5) as sb:
        first = session_for(sb, journal, {"qty": QTY, "at": 3, "sell": 0})
        await first.start()
        first._send = lambda p: None  # the process dies after the fsync, before the send
        try:
            await eventually(
                lambda: any(isinstance(r, Intent) for r in records(journal)), 10.0, "an intent"
            )
        finally:
            await first.abort()
        assert sb.placed == []
        second = session_for(sb, journal, {"qty": QTY, "at": 3, "sell": 0})
        await second.start()
        try:
            report = second.reconcile_report
            assert report is not None and not report.halts
            (item,) = report.items
            assert (item.client_id, item.verdict) == ("t-1", "never_sent")
            assert second.status().trading == "active"
            await done(second)
        finally:
            await second.stop()
        assert sb.place_counts() == {"t-2": 1}  # t-1 never went out; ids continue after it
        rebuilt = rebuild(records(journal))
        assert rebuilt.orders["t-1"].status == "rejected" and rebuilt.orders["t-1"].code == -2013
        assert rebuilt.orders["t-2"].status == "filled"
        assert position(second) == sandbox_position(sb) == QTY


async def test_an_external_order_halts_trading_until_acknowledged_and_is_never_canceled(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    async with CheckedVenue(replay, speed=5) as sb:
        bid, _ = sb.matcher.best(SYMBOL)
        assert bid is not None
        sb.matcher.place(  # someone else's order on the account
            symbol=SYMBOL,
            side="BUY",
            type="LIMIT",
            tif="GTC",
            price=bid - 100,
            qty=QTY * sb.replay.specs[SYMBOL].step_size,
            client_id="by-hand-1",
        )
        session = session_for(sb, journal, {"qty": QTY, "at": 3, "sell": 0})
        await session.start()
        try:
            report = session.reconcile_report
            assert report is not None and report.halts
            (item,) = report.diff
            assert (item.client_id, item.verdict) == ("by-hand-1", "external")
            status = session.status()
            assert status.trading == "halted" and "by-hand-1" in status.reconcile_pending[0]
            assert session.engine is not None
            await eventually(lambda: int(session.engine.rows[0]["denied"]) > 0, 10.0, "denials")
            assert sb.placed == []  # the strategy is held
            assert session.acknowledge_reconcile()
            assert session.status().trading == "active"
            await done(session)
        finally:
            await session.stop()
        assert sb.place_counts() == {"t-1": 1}
        assert sb.matcher.open_by_client("by-hand-1") is not None  # never cancelled
        assert position(session) == QTY
        names = [r.name for r in records(journal) if isinstance(r, Marker)]
        assert names[:3] == ["reconciled", "session_start", "reconcile_acknowledged"]


async def test_a_journal_order_the_venue_lost_is_a_mismatch(replay: Replay, tmp_path: Path) -> None:
    journal_path = tmp_path / "orders.journal"
    from adapters.live.order_journal import OrderJournal

    with OrderJournal.open(journal_path) as j:  # an earlier run: acknowledged, then a crash
        j.append(
            Intent(
                "new",
                "t-7",
                SYMBOL,
                1,
                side="buy",
                price="1.00",
                qty="0.001",
                order_type="limit",
                tif="GTC",
            )  # fmt: skip
        )
        j.append(Reply("t-7", "ack", 2, venue_order_id="99"))
    async with CheckedVenue(replay, speed=5) as sb:
        session = session_for(sb, journal_path, {"qty": QTY, "at": 3, "sell": 0})
        await session.start()
        try:
            report = session.reconcile_report
            assert report is not None and report.halts
            (item,) = report.items
            assert (item.client_id, item.verdict) == ("t-7", "mismatch")
            assert "lost an order" in item.detail
            assert session.status().trading == "halted"
            assert session.orders is not None and session.orders.ids.last == 7
        finally:
            await session.stop()
        assert sb.placed == []


async def test_an_order_left_open_by_a_crash_is_inherited_and_canceled_at_the_stop(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    resting = {"qty": QTY, "at": 3, "sell": 0, "slip": -500, "tif": 0}  # GTC, far below
    async with CheckedVenue(replay, speed=5) as sb:
        first = session_for(sb, journal, resting)
        await first.start()
        try:
            await eventually(lambda: first.status().acked == 1, 10.0, "the resting order")
            # The ack is journaled right after it is counted: crash only once it is, or
            # the restart rightly calls the order "resolved" (journal unsure, venue knows).
            await eventually(
                lambda: "t-1" in (o := rebuild(records(journal)).orders) and o["t-1"].acked,
                10.0,
                "the ack in the journal",
            )
        finally:
            await first.abort()  # a crash: the order stays at the venue
        assert sb.matcher.open_by_client("t-1") is not None
        second = session_for(sb, journal, {"qty": QTY, "at": 10**9})  # idle this time
        await second.start()
        try:
            report = second.reconcile_report
            assert report is not None and not report.halts
            assert [(i.client_id, i.verdict) for i in report.items] == [("t-1", "agrees")]
            assert second.status().inherited == ("t-1",)
        finally:
            await second.stop()
        assert sb.matcher.open_orders(SYMBOL) == []  # canceled at the stop
        assert second.inherited == {}
        order = rebuild(records(journal)).orders["t-1"]
        assert order.status == "canceled" and order.pending == []
        intents = [r for r in records(journal) if isinstance(r, Intent)]
        assert [(i.action, i.client_id, i.orig_client_id) for i in intents] == [
            ("new", "t-1", None),
            ("cancel", "t-2", "t-1"),
        ]


async def test_a_failing_journal_sends_nothing_and_halts(
    replay: Replay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "orders.journal"
    async with CheckedVenue(replay, speed=5) as sb:
        session = session_for(sb, journal, {"qty": QTY, "at": 3, "sell": 0})
        await session.start()
        assert session.journal is not None

        def full(records: object, *, sync: bool = True) -> int:
            raise CockpitError("order journal: write failed (No space left on device)")

        monkeypatch.setattr(session.journal, "append_batch", full)
        try:
            await eventually(lambda: session.status().error != "", 10.0, "the failure")
            await eventually(lambda: not session.working_orders(), 5.0, "the reject")
        finally:
            await session.stop()
        status = session.status()
        assert sb.placed == [] and status.orders == 0  # nothing left unjournaled
        assert status.trading == "halted" and "No space left" in status.error
        assert session.engine is not None
        assert int(session.engine.rows[0]["orders"]) >= 1  # the strategy did try


async def test_stop_cancels_working_orders(replay: Replay, tmp_path: Path) -> None:
    journal = tmp_path / "orders.journal"
    async with CheckedVenue(replay, speed=5) as sb:
        # A GTC buy far below the market rests; stop() must cancel it.
        params = {"qty": QTY, "at": 3, "sell": 0, "slip": -500, "tif": 0}
        session = session_for(sb, journal, params)
        await session.start()
        try:
            await eventually(lambda: session.status().acked == 1, 10.0, "the resting order")
            assert sb.matcher.open_by_client("t-1") is not None
        finally:
            await session.stop()
        assert sb.matcher.open_orders(SYMBOL) == []
        rebuilt = rebuild(records(journal))
        assert rebuilt.orders["t-1"].status == "canceled"
        assert session.status().canceled == 1
        assert session.engine is not None
        assert ST_FILLED not in set(session.engine.journal()["to_state"].tolist())


async def test_stop_with_flatten_sells_what_the_engine_holds(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    async with CheckedVenue(replay, speed=5) as sb:
        session = session_for(sb, journal, {"qty": QTY, "at": 3, "sell": 0}, flatten_at_stop=True)
        await session.start()
        try:
            await done(session)
            assert position(session) == QTY == sandbox_position(sb)
        finally:
            await session.stop()  # options.flatten_at_stop
        assert position(session) == 0 and sandbox_position(sb) == 0
        assert session.working_orders() == []
    orders = rebuild(records(journal)).orders
    assert [(cid, o.side, o.status) for cid, o in orders.items()] == [
        ("t-1", "buy", "filled"),
        ("t-2", "sell", "filled"),
    ]


async def test_a_fill_of_an_inherited_order_is_booked_into_the_manual_row(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    resting = {"qty": QTY, "at": 3, "sell": 0, "slip": -500, "tif": 0}  # GTC, far below
    async with CheckedVenue(replay, speed=5) as sb:
        first = session_for(sb, journal, resting)
        await first.start()
        try:
            await eventually(
                lambda: "t-1" in (o := rebuild(records(journal)).orders) and o["t-1"].acked,
                10.0,
                "the ack in the journal",
            )
        finally:
            await first.abort()
        second = session_for(sb, journal, {"qty": QTY, "at": 10**9})
        await second.start()
        try:
            assert second.status().inherited == ("t-1",) and position(second) == 0
            assert sb.fill_order("t-1")  # the market reaches it while this run trades
            await eventually(lambda: position(second) == QTY, 5.0, "the inherited fill")
            assert second.engine is not None
            assert int(second.engine.state.pi[-1, 0, PI_POS]) == QTY  # the manual row
            assert second.inherited == {}  # filled: no cancel at the stop
        finally:
            await second.stop()
    assert rebuild(records(journal)).orders["t-1"].status == "filled"
    intents = [r for r in records(journal) if isinstance(r, Intent)]
    assert [i.client_id for i in intents] == ["t-1"]


@pytest.mark.parametrize("step_on_data", [True, False])
async def test_market_data_is_stepped_in_its_own_callback_unless_told_otherwise(
    replay: Replay, tmp_path: Path, step_on_data: bool
) -> None:
    # With step_on_data the rows a message brings are processed before the callback that
    # delivered them returns (the strategy answers a tick at once); without, they wait for
    # the stepping task's next turn.
    journal = tmp_path / "orders.journal"
    async with CheckedVenue(replay, speed=5) as sb:
        session = session_for(sb, journal, {"qty": QTY, "rounds": 0}, step_on_data=step_on_data)
        await session.start()
        left: list[int] = []
        deliver = session.md.on_events
        assert deliver is not None

        def noted(rows: object) -> None:
            deliver(rows)
            engine = session.engine
            assert engine is not None
            if session._running:  # (not while it closes: nothing is stepped then)
                left.append(engine._filled - engine.cursor)  # pushed, not yet processed

        session.md.on_events = noted
        try:
            await eventually(lambda: len(left) >= 20, 10.0, "twenty market data messages")
        finally:
            await session.stop()
        if step_on_data:
            assert set(left) == {0}
        else:
            assert min(left) > 0


async def test_busy_polling_trades_the_same_and_stops_its_poller(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    params = {"qty": QTY, "at": 3, "rounds": 2, "every": 5}
    async with CheckedVenue(replay, speed=5) as sb:
        session = session_for(sb, journal, params, busy_poll=True)
        await session.start()
        try:
            names = {t.get_name() for t in asyncio.all_tasks()}
            assert "live-session:busy-poll" in names
            await done(session)
        finally:
            await session.stop()
        assert "live-session:busy-poll" not in {t.get_name() for t in asyncio.all_tasks()}
        status = session.status()
        assert (status.orders, status.acked, status.rejected, status.working) == (4, 4, 0, 0)
        assert position(session) == sandbox_position(sb) == 0
