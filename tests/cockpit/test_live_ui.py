"""The cockpit on a live session: Pilot tests against the sandbox on loopback.

The sandbox (`CheckedVenue`) runs on the test's event loop, which is also the app's; the
session runs on its own loop thread (`SessionThread`), as under `cockpit live --ui`, and the
`LiveBridge` snapshots it there. The bridge is threaded here (a live session cannot be
paused), so each test waits for what it expects with a deadline instead of assuming it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.widgets import Static
from textual.widgets._footer import FooterKey

from adapters.live.order_journal import replay as replay_journal
from adapters.live.order_records import Marker
from adapters.live.sandbox_json import order_json
from adapters.live.sandbox_md import Faults
from adapters.live.sandbox_replay import Replay, replay_from_capture
from cockpit.app import CockpitApp
from cockpit.bindings import TABLE
from cockpit.commands import palette_entries
from cockpit.live_bridge import LiveBridge, SessionThread
from cockpit.screens.confirm import ConfirmScreen
from cockpit.screens.help import HelpScreen
from cockpit.screens.reconcile import ReconcileScreen
from cockpit.snapshot import OV_FILLED, OV_STATUS
from cockpit.widgets.ladder import Ladder
from cockpit.widgets.orders import OrdersTable
from cockpit.widgets.status import StatusBar
from cockpit.widgets.venue import VenueBar
from engine.book import NO_PRICE
from engine.codes import ST_ACCEPTED, ST_FILLED, ST_SUBMITTED, STATE_NAMES
from tests.adapters.live.session_helpers import (
    SYMBOL,
    CheckedVenue,
    futures_session_for,
    session_for,
)
from tests.cockpit.test_bindings import covers
from tests.cockpit.test_optimizer_app import record_notifications

QTY = 100  # lots of 0.00001 BTC: above the sandbox's minimum notional


@pytest.fixture(scope="module", autouse=True)
def _warm_engine() -> None:
    """Compile the live loop before any sandbox clock runs (see warm_up_engine)."""
    from tests.adapters.live.session_helpers import warm_up_engine

    warm_up_engine()


@pytest.fixture(scope="module")
def replay(shared_data: Path) -> Replay:
    # About 25 s of the recorded market at x1: longer than any test here.
    return replay_from_capture(
        shared_data / "binance-ws" / "spot_btcusdt_20240808.gz", max_messages=6000
    )


async def on_loop(runner: SessionThread, coro: Any) -> Any:
    """Await a coroutine run on the session's loop (the test's loop keeps serving)."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, runner.loop))


async def until(pilot: Any, cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Let the app run until `cond()` holds; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.05)


@asynccontextmanager
async def live_app(
    sb: Any, journal: Path, params: dict[str, Any], *, factory: Any = session_for, **kw: Any
) -> AsyncIterator[tuple[CockpitApp, Any]]:
    """A CockpitApp on a started LiveSession trading the sandbox (`factory(sb, journal,
    params, **kw)` builds it); stops both after."""
    session = factory(sb, journal, params, **kw)
    runner = SessionThread()
    try:
        await on_loop(runner, session.start())
        app = CockpitApp(LiveBridge(session, runner))
        app.animation_level = "none"
        async with app.run_test(size=(140, 40)) as pilot:
            yield app, pilot
    finally:
        await on_loop(runner, session.stop())
        runner.close()


def venue_text(app: CockpitApp) -> str:
    """The venue bar as the user reads it."""
    return app.query_one(VenueBar).render().plain


async def test_the_banner_says_sandbox_and_the_status_line_shows_the_connections(
    replay: Replay, tmp_path: Path
) -> None:
    async with CheckedVenue(replay, speed=1) as sb:
        # A strategy that never trades: only the market and the connections matter here.
        async with live_app(sb, tmp_path / "orders.journal", {"at": 10**9}) as (app, pilot):
            bar = app.query_one(VenueBar)
            await until(pilot, lambda: "md SUBSCRIBED" in venue_text(app), 10.0, "market data")
            await until(pilot, lambda: app.bridge.snapshot.book.best_bid != NO_PRICE, 10.0, "book")
            text = venue_text(app)
            assert text.startswith(" SANDBOX ")
            assert "exec SUBSCRIBED" in text and "reconn 0" in text and "clock " in text
            assert bar.display  # shown on a live session (hidden in replays)
            # The banner is drawn in the sandbox's own theme colour.
            banner = bar.render().spans[0]
            assert banner.style == bar.get_component_rich_style("venue--sandbox")
            assert app.query_one(StatusBar).render().plain.startswith(" ● LIVE")
            assert not app.query_one(Ladder).resyncing


async def test_killing_the_sandbox_connection_shows_a_reconnect(
    replay: Replay, tmp_path: Path
) -> None:
    async with CheckedVenue(replay, speed=1) as sb:
        async with live_app(sb, tmp_path / "orders.journal", {"at": 10**9}) as (app, pilot):
            await until(pilot, lambda: "md SUBSCRIBED" in venue_text(app), 10.0, "market data")
            sb.faults = Faults(kill_socket_after=frozenset({sb.messages_sent + 3}))
            await until(pilot, lambda: sb.sockets_killed >= 1, 10.0, "the sandbox to kill it")
            await until(
                pilot,
                lambda: "md SUBSCRIBED age" in venue_text(app) and "reconn 1" in venue_text(app),
                10.0,
                "the reconnection to show",
            )
            venue = app.bridge.snapshot.venue
            assert venue.market_data.reconnects == 1


async def test_a_resyncing_book_is_dimmed_and_labelled(replay: Replay, tmp_path: Path) -> None:
    async with CheckedVenue(replay, speed=1) as sb:
        async with live_app(sb, tmp_path / "orders.journal", {"at": 10**9}) as (app, pilot):
            await until(pilot, lambda: app.bridge.snapshot.venue.books_in_sync[0][1], 10.0, "sync")
            snap = app.bridge.snapshot
            out_of_sync = dataclasses.replace(snap.venue, books_in_sync=((SYMBOL, False),))
            ladder = app.query_one(Ladder)
            ladder.show(dataclasses.replace(snap, venue=out_of_sync))
            assert ladder.resyncing and ladder.has_class("-resyncing")
            assert "RESYNCING" in str(ladder.border_title)
            bar = app.query_one(VenueBar)
            bar.show(dataclasses.replace(snap, venue=out_of_sync))
            assert f"RESYNCING {SYMBOL}" in venue_text(app)
            ladder.show(snap)
            assert not ladder.resyncing and not ladder.has_class("-resyncing")


@covers("kill")
async def test_the_kill_switch_leaves_no_open_order_at_the_sandbox(
    replay: Replay, tmp_path: Path
) -> None:
    # A GTC buy $200 below the market rests at the sandbox until the kill switch (at x1
    # the market can fall a few dollars during the test: 500 ticks were not enough).
    params = {"qty": QTY, "at": 3, "sell": 0, "slip": -20000, "tif": 0}
    async with CheckedVenue(replay, speed=1) as sb:
        async with live_app(sb, tmp_path / "orders.journal", params) as (app, pilot):
            await until(
                pilot, lambda: sb.matcher.open_by_client("t-1") is not None, 10.0, "resting order"
            )
            await until(pilot, lambda: app.bridge.snapshot.venue.acked == 1, 5.0, "the ack")
            snap = app.bridge.snapshot
            assert snap.venue.working == 1 and len(snap.book.own_px) == 1  # on the ladder too
            await pilot.press("ctrl+k")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await until(pilot, lambda: sb.matcher.open_orders(SYMBOL) == [], 5.0, "the cancel")
            await until(
                pilot,
                lambda: (
                    app.bridge.snapshot.venue.trading == "halted"
                    and app.bridge.snapshot.venue.working == 0
                ),
                5.0,
                "the engine to halt with nothing working",
            )
            assert app.bridge.snapshot.venue.canceled == 1
            # Halted: the strategy's next orders are denied in the engine, never sent.
            placed = len(sb.placed)
            await pilot.pause(0.5)
            assert len(sb.placed) == placed


class StatusAskedVenue(CheckedVenue):
    """The sandbox, noting the client id of every order.status query and when it came."""

    def __init__(self, replay: Replay, **kw: Any) -> None:
        super().__init__(replay, **kw)
        self.status_queries: list[tuple[float, str]] = []

    def _status_noted(self, session: Any, p: dict, frames: list[dict]) -> Any:
        self.status_queries.append((time.monotonic(), str(p.get("origClientOrderId"))))
        return CheckedVenue._status(self, session, p, frames)

    _METHODS = {**CheckedVenue._METHODS, "order.status": _status_noted}


@covers("reconcile")
async def test_reconcile_now_asks_the_venue_about_an_unknown_order(
    replay: Replay, tmp_path: Path
) -> None:
    # Replies and user events to orders come 3 s late and requests time out at 0.2 s: the
    # order is UNKNOWN, and the client would ask about it only after 30 s; "u" asks now.
    # (The sandbox answers in order, so the query's own answer waits behind the late ack
    # and times out too: the late ack is what settles the order here.)
    async with StatusAskedVenue(replay, speed=1, faults="delay_ack=3000") as sb:
        params = {"qty": QTY, "at": 3, "sell": 0}
        async with live_app(
            sb, tmp_path / "orders.journal", params, timeout=0.2, resolve_after=30.0
        ) as (app, pilot):
            await until(pilot, lambda: "UNKNOWN 1: t-1 new" in venue_text(app), 10.0, "unknown")
            assert "u: reconcile now" in venue_text(app)
            assert sb.status_queries == []
            asked = time.monotonic()
            await pilot.press("u")
            await until(pilot, lambda: bool(sb.status_queries), 1.0, "the status query")
            when, cid = sb.status_queries[0]
            assert cid == "t-1" and when - asked < 1.0
            texts = [m.text for m in app.bridge.snapshot.messages]
            assert "reconcile now: asked the venue about 1 order(s)" in texts
            await until(pilot, lambda: not app.bridge.snapshot.venue.unknown, 5.0, "the late ack")
            assert app.bridge.session.orders.counts.resolved == 1


class LostAckVenue(StatusAskedVenue):
    """The sandbox, losing all it says about the first order.place: the order is carried
    out (it rests or trades at the venue) but neither the reply nor the user events reach
    the client, as if the network had dropped them. Later frames are not held up."""

    def __init__(self, replay: Replay, **kw: Any) -> None:
        super().__init__(replay, **kw)
        self.lost: list[str] = []

    def _respond(self, session: Any, n: int, method: str, reply: dict, frames: list[dict]) -> None:
        if method == "order.place" and not self.lost:
            self.lost.append(self.placed[-1])
            return
        super()._respond(session, n, method, reply, frames)


def order_row(app: CockpitApp, cid: str) -> tuple[str, str]:
    """(status, filled) of the client's order `cid` in the orders pane."""
    oid = app.bridge.session.orders.by_cid[cid].oid
    row = app.query_one(OrdersTable).get_row(str(oid))
    return row[5].plain, row[4].plain


@covers("reconcile")
@pytest.mark.parametrize(
    ("params", "at_venue", "state"),
    [
        # a GTC buy $200 below the market: it rests at the venue
        ({"qty": QTY, "at": 3, "sell": 0, "slip": -20000, "tif": 0}, "NEW", ST_ACCEPTED),
        # an IOC buy at the ask: it trades at once
        ({"qty": QTY, "at": 3, "sell": 0}, "FILLED", ST_FILLED),
    ],
    ids=["rests", "fills"],
)
async def test_reconcile_now_settles_an_unknown_order_in_its_true_state(
    replay: Replay, tmp_path: Path, params: dict[str, int], at_venue: str, state: int
) -> None:
    # The venue carries the order out but its answers are lost: the request times out
    # (0.2 s) and the order is UNKNOWN; the client would ask only after 30 s. "u" asks now,
    # and the venue's answer (nothing held up behind it here) settles the order: the
    # engine, the orders pane and the venue bar end where the venue is.
    async with LostAckVenue(replay, speed=1) as sb:
        async with live_app(
            sb, tmp_path / "orders.journal", params, timeout=0.2, resolve_after=30.0
        ) as (app, pilot):
            await until(pilot, lambda: "UNKNOWN 1: t-1 new" in venue_text(app), 10.0, "unknown")
            assert sb.lost == ["t-1"]
            venue_order = sb.matcher.find("t-1", None)
            assert venue_order is not None and order_json(venue_order)["status"] == at_venue
            snap = app.bridge.snapshot
            assert int(snap.orders[0, OV_STATUS]) == ST_SUBMITTED  # the engine waits
            await pilot.press("u")
            await until(pilot, lambda: not app.bridge.snapshot.venue.unknown, 5.0, "settled")
            assert [cid for _, cid in sb.status_queries] == ["t-1"]
            session = app.bridge.session
            assert session.orders.counts.resolved == 1 and session.status().unknown == ()
            await until(
                pilot,
                lambda: order_row(app, "t-1")[0] == STATE_NAMES[state],
                5.0,
                "the orders pane",
            )
            snap = app.bridge.snapshot
            (row,) = snap.orders
            assert int(row[OV_STATUS]) == state
            filled = QTY if state == ST_FILLED else 0
            assert int(row[OV_FILLED]) == filled
            assert "UNKNOWN" not in venue_text(app)
            assert snap.venue.unknown == ()
            if state == ST_FILLED:
                assert snap.venue.fills == 1
                assert order_row(app, "t-1")[1] != "0"
            else:
                assert snap.venue.acked == 1 and snap.venue.working == 1
                assert sb.matcher.open_by_client("t-1") is not None


def footer_actions(app: CockpitApp) -> set[str]:
    """The actions the footer offers."""
    return {k.action for k in app.screen.query(FooterKey)}


async def test_a_live_session_hides_the_replay_keys_from_footer_help_and_palette(
    replay: Replay, tmp_path: Path
) -> None:
    replay_only = [e for e in TABLE if e.only == "replay"]
    assert {e.binding.id for e in replay_only} >= {"play", "step", "next_fill", "jump"}
    async with CheckedVenue(replay, speed=1) as sb:
        async with live_app(sb, tmp_path / "orders.journal", {"at": 10**9}) as (app, pilot):
            await pilot.pause()
            shown = footer_actions(app)
            assert {"kill", "flatten", "quit"} <= shown
            assert not shown & {"toggle_play", "step", "step_to('fill')"}
            palette = {action for _, action, _ in palette_entries(app)}
            assert not palette & {e.binding.action for e in replay_only}
            assert "reconcile" in palette and "kill" in palette
            # The key does nothing at all (not even the "follows the venue" warning).
            said = len(app.bridge.snapshot.messages)
            await pilot.press("space", "s", "n", "g")
            app.bridge.pump()
            assert len(app.bridge.snapshot.messages) == said
            assert app.screen is app.main_screen  # "g" opened no jump dialog
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            text = rendered(app.screen.query_one("#help-table", Static).content)
            assert "Kill" in text and "Reconcile unknown orders" in text
            assert "Play/pause" not in text and "Jump to time" not in text
            assert "Replay" not in text  # the empty section is left out


OPTIMIZER_ACTIONS = {"optimize", "optimize_cancel", "optimize_load"}


def help_text(app: CockpitApp) -> str:
    """The help screen's table as the user reads it."""
    return rendered(app.screen.query_one("#help-table", Static).content)


async def test_a_live_session_offers_no_optimizer_keys_or_palette_entries(
    replay: Replay, tmp_path: Path
) -> None:
    assert {e.binding.action for e in TABLE if e.only == "replay"} >= OPTIMIZER_ACTIONS
    async with CheckedVenue(replay, speed=1) as sb:
        async with live_app(sb, tmp_path / "orders.journal", {"at": 10**9}) as (app, pilot):
            await pilot.pause()
            entries = list(palette_entries(app))
            assert not {action for _, action, _ in entries} & OPTIMIZER_ACTIONS
            # (the pane stays a view: it says no optimization runs)
            names = [name for name, _, _ in entries if "optimi" in name.lower()]
            assert names == ["Optimizer pane"]
            assert not any(app.check_action(a, ()) for a in OPTIMIZER_ACTIONS)
            await pilot.press("o", "l", "ctrl+o")  # nothing: no dialog, no job
            assert app.screen is app.main_screen and app.optimizer_job is None
            await pilot.press("question_mark")
            text = help_text(app)
            assert "Start optimization" not in text and "Load best parameters" not in text
            assert "Optimizer" not in [ln.strip() for ln in text.splitlines()]  # no section
            await pilot.press("escape")
            # A call that gets past the key table is refused, and says why.
            said = record_notifications(app)
            app.action_optimize()
            app.action_optimize_load()
            assert any(m.startswith("optimization: not on a live session") for m in said)
            assert any(m.startswith("loading optimized parameters: not on a live") for m in said)
            assert app.optimizer_job is None and app.screen is app.main_screen


async def test_a_replay_still_offers_the_optimizer(make_app: Callable[..., CockpitApp]) -> None:
    app = make_app()
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        entries = list(palette_entries(app))
        assert {action for _, action, _ in entries} >= OPTIMIZER_ACTIONS
        assert "Start optimization…" in [name for name, _, _ in entries]
        assert all(app.check_action(a, ()) for a in OPTIMIZER_ACTIONS)
        await pilot.press("question_mark")
        text = help_text(app)
        assert "Start optimization" in text and "Load best parameters" in text


def rendered(renderable: Any) -> str:
    """A Rich renderable as plain text."""
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


@covers("resume")
async def test_a_reconciliation_diff_keeps_trading_halted_until_y_in_its_dialog(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    async with CheckedVenue(replay, speed=1) as sb:
        bid, _ = sb.matcher.best(SYMBOL)
        assert bid is not None
        sb.matcher.place(  # someone else's order on the account: an "external" difference
            symbol=SYMBOL,
            side="BUY",
            type="LIMIT",
            tif="GTC",
            price=bid - 100,
            qty=QTY * sb.replay.specs[SYMBOL].step_size,
            client_id="by-hand-1",
        )
        async with live_app(sb, journal, {"at": 10**9}) as (app, pilot):
            session = app.bridge.session
            await until(pilot, lambda: _dialog_shown(app), 5.0, "dialog")
            lines = app.screen.query_one("#reconcile-lines", Static).content
            assert "external" in str(lines) and "by-hand-1" in str(lines)
            await pilot.press("enter", "space")  # keys pressed by accident do not acknowledge
            assert isinstance(app.screen, ReconcileScreen)
            await pilot.press("n")
            assert app.screen is app.main_screen
            app.bridge.pump()
            assert app.bridge.snapshot.venue.trading == "halted"
            assert app.bridge.snapshot.venue.reconcile_pending
            # Ctrl+R (resume) cannot skip the diff: it shows the dialog again.
            await pilot.press("ctrl+r")
            assert isinstance(app.screen, ReconcileScreen)
            await pilot.press("y")
            await until(
                pilot,
                lambda: app.bridge.snapshot.venue.trading == "active",
                5.0,
                "trading to resume",
            )
            assert not app.bridge.snapshot.venue.reconcile_pending
            assert session.reconcile_report is not None and session.reconcile_report.halts
        names = [r.name for r in replay_journal(journal).records if isinstance(r, Marker)]
        assert "reconcile_acknowledged" in names
        assert sb.matcher.open_by_client("by-hand-1") is not None  # never cancelled


async def test_the_venue_bar_names_the_orders_an_earlier_run_left_open(
    replay: Replay, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    resting = {"qty": QTY, "at": 3, "sell": 0, "slip": -20000, "tif": 0}  # GTC, far below
    async with CheckedVenue(replay, speed=1) as sb:
        first = session_for(sb, journal, resting)
        await first.start()
        try:
            await until_async(lambda: first.status().acked == 1, 10.0, "the resting order")
        finally:
            await first.abort()  # a crash: the order stays at the venue
        async with live_app(sb, journal, {"at": 10**9}) as (app, pilot):
            await until(pilot, lambda: "inherited 1: t-1" in venue_text(app), 5.0, "inherited")
        assert sb.matcher.open_orders(SYMBOL) == []  # canceled at the stop


async def until_async(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait on the test's loop until `cond()` holds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def _dialog_shown(app) -> bool:
    """The reconciliation dialog is on screen and composed (pushed is not enough)."""
    return isinstance(app.screen, ReconcileScreen) and bool(app.screen.query("#reconcile-lines"))


async def test_the_venue_bar_shows_the_futures_position_and_funding(
    replay: Replay, tmp_path: Path
) -> None:
    from decimal import Decimal

    from adapters.live.sandbox_auth import SandboxAccount
    from adapters.live.sandbox_futures import futures_replay
    from adapters.live.sandbox_futures_exec import SandboxFuturesVenue
    from tests.adapters.live.leaks import API_KEY, API_SECRET

    account = SandboxAccount(API_KEY, secret=API_SECRET)
    async with SandboxFuturesVenue(futures_replay(replay), account=account, speed=1) as sb:
        params = {"qty": QTY, "at": 3, "sell": 0}  # buys QTY lots and holds them
        journal = tmp_path / "orders.journal"
        async with live_app(sb, journal, params, factory=futures_session_for) as (app, pilot):

            def held() -> str:
                st = app.bridge.snapshot.venue
                return st.venue_positions[0][1] if st is not None and st.venue_positions else ""

            def shown() -> bool:  # the bar redraws on its own beat, after the snapshot
                return held() not in ("", "0") and f"venue pos BTCUSDT={held()}" in venue_text(app)

            await until(pilot, shown, 10.0, "the venue's position in the bar")
            sb.push_funding(Decimal("0.5"))
            await until(pilot, lambda: "funding USDT=0.5" in venue_text(app), 5.0, "the fee")


async def test_the_venue_bar_shows_the_trades_connection_and_a_position_drift(
    replay: Replay, tmp_path: Path
) -> None:
    from decimal import Decimal

    from adapters.live.sandbox_auth import SandboxAccount
    from adapters.live.sandbox_futures import futures_replay
    from adapters.live.sandbox_futures_exec import SandboxFuturesVenue
    from tests.adapters.live.leaks import API_KEY, API_SECRET

    account = SandboxAccount(API_KEY, secret=API_SECRET)
    async with SandboxFuturesVenue(futures_replay(replay), account=account, speed=1) as sb:
        params = {"qty": QTY, "rounds": 0}  # trades nothing: the engine stays flat
        journal = tmp_path / "orders.journal"
        async with live_app(sb, journal, params, factory=futures_session_for, drift_grace=0.3) as (
            app,
            pilot,
        ):
            await until(pilot, lambda: "│ trades SUBSCRIBED" in venue_text(app), 10.0, "trades")
            assert "POSITION DRIFT" not in venue_text(app)
            sb.move_position(SYMBOL, Decimal("0.0002"))  # behind the session's back
            await until(pilot, lambda: "POSITION DRIFT" in venue_text(app), 5.0, "the alert")
            bar = app.query_one(VenueBar)
            text = bar.render()
            assert "POSITION DRIFT BTCUSDT engine 0 venue 0.0002" in text.plain
            start = text.plain.index("POSITION DRIFT")
            (span,) = [s for s in text.spans if s.start <= start < s.end]
            assert span.style == bar.get_component_rich_style("venue--alert")
            assert "(halted)" not in text.plain  # the sandbox does not halt by default
