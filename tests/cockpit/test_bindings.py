"""Pilot tests: every binding of the key table, asserting the engine or view state it changes.

The bridge is synchronous (see conftest), so a key's effect on the engine has happened when
`pilot.press` returns.
"""

from __future__ import annotations

import numpy as np
import pytest
from textual.widgets import TabbedContent

from cockpit.bindings import TABLE
from cockpit.screens.confirm import ConfirmScreen
from cockpit.screens.error import ErrorScreen
from cockpit.screens.help import HelpScreen
from cockpit.screens.jump import JumpScreen
from cockpit.screens.order import OrderScreen
from cockpit.snapshot import OV_FLAGS, OV_OID, OV_SIDE, OV_STATUS
from cockpit.widgets.ladder import GROUPS, Ladder
from cockpit.widgets.orders import OrdersTable
from engine.codes import (
    OF_FLATTEN,
    OF_MANUAL,
    R_RISK_HALTED,
    ST_CANCELED,
    ST_PENDING_CANCEL,
    TERMINAL_STATES,
    TS_ACTIVE,
    TS_HALTED,
)
from engine.events import SIDE_BUY, SIDE_SELL
from engine.state import CK_TRADING_STATE, O_FLAGS, O_OID, O_STATUS, PI_POS

COVERED: set[str] = set()
"""Binding ids exercised below; test_every_binding_is_tested checks the table against it."""


def covers(*ids: str):
    """Mark a test as exercising these binding ids."""
    COVERED.update(ids)
    return lambda fn: fn


def live_orders(app) -> np.ndarray:
    """Rows of the engine's order table that hold a working order."""
    o = app.bridge.engine.state.o
    rows = o[o[:, O_OID] >= 0]
    return rows[~np.isin(rows[:, O_STATUS], TERMINAL_STATES)]


def positions(app) -> np.ndarray:
    """Every strategy row's position in every instrument."""
    return app.bridge.engine.state.pi[:, :, PI_POS]


# ---------------------------------------------------------------- replay


@covers("play")
async def test_play_toggles_running(make_app) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        await pilot.press("space")
        assert app.bridge.snapshot.status.mode == "playing"
        before = app.bridge.engine.events_processed
        app.bridge.pump(2.0)  # two wall seconds at x1: the engine clock moves two seconds
        assert app.bridge.engine.events_processed > before
        await pilot.press("space")
        assert app.bridge.snapshot.status.mode == "paused"


@covers("step")
async def test_step_moves_exactly_one_event(make_app) -> None:
    app = make_app(steps=50)
    async with app.run_test() as pilot:
        before = app.bridge.engine.events_processed
        await pilot.press("s")
        assert app.bridge.engine.events_processed == before + 1
        await pilot.press("s", "s")
        assert app.bridge.engine.events_processed == before + 3
        assert app.bridge.snapshot.status.events_processed == before + 3


@covers("next_fill")
async def test_next_fill_stops_at_a_fill(make_app) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        await pilot.press("n")
        eng = app.bridge.engine
        assert eng.counters()["fills"] == 1
        assert app.bridge.snapshot.status.last_stop == "fill"
        assert app.bridge.snapshot.status.mode == "paused"


@covers("next_alert")
async def test_next_alert_stops_at_an_alert(make_app) -> None:
    app = make_app(steps=50)
    async with app.run_test() as pilot:
        # Halted, the strategy's next orders are denied: each denial raises an alert.
        app.bridge.engine.state.ctl[CK_TRADING_STATE] = TS_HALTED
        await pilot.press("s")
        before = app.bridge.snapshot.alerts_total
        await pilot.press("a")
        snap = app.bridge.snapshot
        assert snap.status.last_stop == "alert"
        assert snap.alerts_total > before


@covers("next_trade")
async def test_next_trade_stops_at_a_trade(make_app) -> None:
    app = make_app(steps=50)
    async with app.run_test() as pilot:
        before = app.bridge.engine.counters()["trades_seen"]
        await pilot.press("t")
        assert app.bridge.engine.counters()["trades_seen"] == before + 1
        assert app.bridge.snapshot.status.last_stop == "trade"


@covers("faster", "slower", "max_speed")
async def test_speed_keys(make_app) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        assert app.bridge.snapshot.status.speed == 1.0
        await pilot.press("plus")
        assert app.bridge.snapshot.status.speed == 2.0
        await pilot.press("minus", "minus")
        assert app.bridge.snapshot.status.speed == 0.5
        await pilot.press("x")
        assert app.bridge.snapshot.status.speed is None
        await pilot.press("minus")
        assert app.bridge.snapshot.status.speed == 1000.0


@covers("jump")
async def test_jump_runs_to_the_time(make_app) -> None:
    app = make_app(steps=10)
    async with app.run_test() as pilot:
        start = app.bridge.engine.now
        await pilot.press("g")
        assert isinstance(app.screen, JumpScreen)
        await pilot.press("enter")  # the default: +10s
        assert not isinstance(app.screen, JumpScreen)
        now = app.bridge.engine.now
        assert now == start + 10_000_000_000
        assert app.bridge.snapshot.status.mode == "paused"
        assert app.bridge.snapshot.status.last_stop == "time"


# ---------------------------------------------------------------- trading


@covers("flatten", "kill")
async def test_flatten_leaves_positions_at_zero(make_app) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        await pilot.press("n")  # to the first fill: a position
        assert positions(app).any()
        await pilot.press("ctrl+k")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")  # halt the strategy so it does not trade again
        await pilot.press("ctrl+f")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        flat = live_orders(app)
        assert ((flat[:, O_FLAGS] & OF_FLATTEN) != 0).sum() == 1
        # Idempotent: a second flatten while the first is working sends nothing more.
        await pilot.press("ctrl+f", "y")
        assert ((live_orders(app)[:, O_FLAGS] & OF_FLATTEN) != 0).sum() == 1
        app.bridge.step(100)  # the market order reaches the venue, its fill comes back
        assert not positions(app).any()
        assert len(live_orders(app)) == 0


@covers("cancel_all")
async def test_cancel_all_cancels_every_working_order(make_app) -> None:
    app = make_app(steps=300)
    async with app.run_test() as pilot:
        before = live_orders(app)[:, O_OID].tolist()
        assert before
        await pilot.press("ctrl+x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        assert all(s == ST_PENDING_CANCEL for s in live_orders(app)[:, O_STATUS])
        app.bridge.step(20)  # the cancels reach the venue and come back
        orders = app.bridge.snapshot.orders
        status = {int(r[OV_OID]): int(r[OV_STATUS]) for r in orders}
        assert all(status[oid] == ST_CANCELED for oid in before)


@covers("kill", "buy")
async def test_kill_switch_denies_new_orders_with_its_reason(make_app) -> None:
    app = make_app(steps=300)
    async with app.run_test() as pilot:
        await pilot.press("ctrl+k", "y")
        assert app.bridge.engine.state.ctl[CK_TRADING_STATE] == TS_HALTED
        assert app.bridge.snapshot.status.trading_state == TS_HALTED
        await pilot.press("b")
        assert isinstance(app.screen, OrderScreen)
        await pilot.press("enter")
        msgs = [m.text for m in app.bridge.snapshot.messages]
        assert msgs[-1] == "manual order denied: risk_halted"
        reasons = app.bridge.engine.journal()["reason"]
        assert (reasons == R_RISK_HALTED).any()


@covers("resume")
async def test_resume_lifts_the_kill_switch(make_app) -> None:
    app = make_app(steps=10)
    async with app.run_test() as pilot:
        await pilot.press("ctrl+k", "y")
        assert app.bridge.engine.state.ctl[CK_TRADING_STATE] == TS_HALTED
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        assert app.bridge.engine.state.ctl[CK_TRADING_STATE] == TS_ACTIVE


@covers("buy", "sell")
async def test_manual_orders_at_a_price(make_app) -> None:
    app = make_app(steps=300)
    async with app.run_test() as pilot:
        book = app.bridge.snapshot.book
        await pilot.press("b")
        await pilot.press("enter")  # default: best bid, one lot
        await pilot.press("v")
        screen = app.screen
        assert isinstance(screen, OrderScreen)
        price_input = screen.query_one("#price")
        price_input.value = app.bridge.snapshot.instrument.format_price(book.best_ask + 5)
        await pilot.press("enter")
        rows = app.bridge.snapshot.orders
        manual = rows[(rows[:, OV_FLAGS] & OF_MANUAL) != 0]
        assert sorted(manual[:, OV_SIDE].tolist()) == [SIDE_SELL, SIDE_BUY]
        o = live_orders(app)
        mine = o[(o[:, O_FLAGS] & OF_MANUAL) != 0]
        assert len(mine) == 2


async def test_confirmation_ignores_enter_and_escape_cancels(make_app) -> None:
    app = make_app(steps=300)
    async with app.run_test() as pilot:
        n = len(live_orders(app))
        await pilot.press("ctrl+x", "enter", "space")
        assert isinstance(app.screen, ConfirmScreen)
        assert len(live_orders(app)) == n
        await pilot.press("escape")
        assert not isinstance(app.screen, ConfirmScreen)
        assert all(s != ST_PENDING_CANCEL for s in live_orders(app)[:, O_STATUS])


async def test_safety_keys_work_over_dialogs(make_app) -> None:
    app = make_app(steps=10)
    async with app.run_test() as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("ctrl+k")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("ctrl+k")  # a second press does not stack a second dialog
        assert sum(isinstance(s, ConfirmScreen) for s in app.screen_stack) == 1
        await pilot.press("y")
        assert app.bridge.engine.state.ctl[CK_TRADING_STATE] == TS_HALTED
        assert isinstance(app.screen, HelpScreen)


# ---------------------------------------------------------------- view


@covers("recentre", "group_coarser", "group_finer")
async def test_ladder_centre_and_grouping(make_app) -> None:
    app = make_app(steps=300)
    async with app.run_test() as pilot:
        ladder = app.query_one(Ladder)
        book = app.bridge.snapshot.book
        mid = (book.best_bid + book.best_ask) // 2
        assert app.ladder_state.centre == mid
        app.ladder_state.centre = mid + 3
        ladder.show(app.bridge.snapshot)
        assert app.ladder_state.centre == mid + 3  # still in view: the axis stays put
        await pilot.press("c")
        assert app.ladder_state.centre == mid
        await pilot.press("right_square_bracket")
        assert app.ladder_state.group == GROUPS[1]
        prices = ladder.visible_prices
        assert all(a - b == GROUPS[1] for a, b in zip(prices, prices[1:], strict=False))
        await pilot.press("left_square_bracket")
        assert app.ladder_state.group == 1


@covers("instrument")
async def test_next_instrument(make_app, market2) -> None:
    app = make_app(steps=100, stream=market2)
    async with app.run_test() as pilot:
        assert app.bridge.snapshot.book.inst == 0
        await pilot.press("i")
        assert app.bridge.snapshot.book.inst == 1
        assert app.bridge.snapshot.instrument.symbol == "SYN1"
        await pilot.press("i")
        assert app.bridge.snapshot.book.inst == 0


@covers("filter_orders")
async def test_filter_orders(make_app) -> None:
    app = make_app(steps=2000)
    async with app.run_test() as pilot:
        table = app.query_one(OrdersTable)
        everything = table.row_count
        await pilot.press("f")
        assert app.orders_filter == "working"
        working = int((~np.isin(app.bridge.snapshot.orders[:, OV_STATUS], TERMINAL_STATES)).sum())
        assert table.row_count == working < everything
        await pilot.press("f", "f", "f")
        assert app.orders_filter == "all"
        assert table.row_count == everything


@covers("maximise")
async def test_maximise_pane(make_app) -> None:
    app = make_app(steps=10)
    async with app.run_test() as pilot:
        await pilot.press("m")
        assert app.screen.maximized is app.query_one(Ladder)
        await pilot.press("m")
        assert app.screen.maximized is None


@covers(
    "pane_orders", "pane_positions", "pane_alerts", "pane_trades", "pane_chart", "pane_optimizer"
)
@pytest.mark.parametrize(
    ("key", "pane"),
    [
        ("1", "orders"),
        ("2", "positions"),
        ("3", "alerts"),
        ("4", "trades"),
        ("5", "chart"),
        ("6", "optimizer"),
    ],
)
async def test_pane_keys(make_app, key: str, pane: str) -> None:
    app = make_app(steps=10)
    async with app.run_test() as pilot:
        await pilot.press(key)
        assert app.query_one(TabbedContent).active == f"tab-{pane}"
        assert app.current_tab == pane


@covers("theme")
async def test_theme_key_cycles_themes(make_app) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        assert app.theme == "cockpit-dark"
        await pilot.press("ctrl+t")
        assert app.theme == "cockpit-light"
        await pilot.press("ctrl+t")
        assert app.theme == "cockpit-colorblind"
        await pilot.press("ctrl+t")
        assert app.theme == "cockpit-dark"


@covers("help")
async def test_help_screen(make_app) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("h")
        assert isinstance(app.screen, HelpScreen)


@covers("quit")
async def test_quit(make_app) -> None:
    app = make_app()
    async with app.run_test() as pilot:
        await pilot.press("q")
    assert app.return_code == 0
    assert app.bridge.stopping


# ---------------------------------------------------------------- the rest


async def test_keymap_remaps_by_id(make_app) -> None:
    app = make_app(steps=10, keymap={"step": "j"})
    async with app.run_test() as pilot:
        before = app.bridge.engine.events_processed
        await pilot.press("j")
        assert app.bridge.engine.events_processed == before + 1
        await pilot.press("s")
        assert app.bridge.engine.events_processed == before + 1


async def test_palette_runs_actions(make_app) -> None:
    app = make_app(steps=10)
    async with app.run_test() as pilot:
        before = app.bridge.engine.events_processed
        await pilot.press("ctrl+p")
        await pilot.press(*"Step")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.bridge.engine.events_processed == before + 1


async def test_engine_failure_is_shown_and_the_app_stays_usable(make_app, monkeypatch) -> None:
    app = make_app(steps=10)
    async with app.run_test() as pilot:

        def broken(*a, **kw):
            raise RuntimeError("boom in the engine")

        monkeypatch.setattr(app.bridge.engine, "run", broken)
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, ErrorScreen)
        assert app.bridge.snapshot.failure.message == "boom in the engine"
        assert app.bridge.snapshot.status.mode == "failed"
        await pilot.press("escape")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)  # still answering keys


@covers("reconcile")
async def test_reconcile_now_in_a_replay_says_there_is_no_venue(make_app) -> None:
    app = make_app(steps=10)
    async with app.run_test() as pilot:
        await pilot.press("u")
        texts = [m.text for m in app.bridge.snapshot.messages]
        assert texts[-1] == "reconcile now: a replay has no venue orders to ask about"


def test_every_binding_is_tested() -> None:
    import tests.cockpit.test_live_ui  # noqa: F401  (its tests cover the live session's keys)
    import tests.cockpit.test_optimizer_app  # noqa: F401  (its tests cover the optimizer keys)

    ids = {e.binding.id for e in TABLE}
    assert ids - COVERED == set()
