"""Pre-trade risk (each rule's reason code), trading states, drawdown, surveillance alerts."""

from __future__ import annotations

import pytest

from engine.codes import (
    A_DRAWDOWN,
    A_KILL_SWITCH,
    A_LAYERING,
    A_RISK_DENIAL,
    A_SPOOFING,
    OF_REDUCE_ONLY,
    OT_MARKET,
    R_BAD_INSTRUMENT,
    R_BAD_PRICE,
    R_BAD_QUANTITY,
    R_BAD_SIDE,
    R_DRAWDOWN,
    R_KILL_SWITCH,
    R_RISK_HALTED,
    R_RISK_NO_MARKET,
    R_RISK_NOTIONAL,
    R_RISK_OPEN_ORDERS,
    R_RISK_ORDER_SIZE,
    R_RISK_POSITION,
    R_RISK_PRICE_BAND,
    R_RISK_REDUCE_ONLY,
    R_RISK_SUBMIT_RATE,
    SEV_CRITICAL,
    ST_DENIED,
    TS_ACTIVE,
    TS_HALTED,
    TS_REDUCE_ONLY,
)
from engine.commands import (
    CMD_FLATTEN,
    CMD_HALT,
    CMD_MANUAL_MARKET,
    CMD_REDUCE_ONLY,
    CMD_RESUME,
    Command,
)
from engine.config import EngineConfig, RiskLimits
from engine.errors import UsageError
from engine.runner import Engine
from engine.state import PI_POS, RF_MAX_DD, RI_STATE
from tests.engine import strategies
from tests.engine.market import BUY, MS, SELL, Market, book_market, run_to

VALID = {"price": 9_900, "qty": 1}
"""A resting buy far from everything that every rule below lets through."""


def run(instances, risk=None, market=None, **cfg) -> Engine:
    config = EngineConfig(risk=risk or RiskLimits(), **cfg)
    eng = Engine((market or book_market()).stream(), strategies.Scripted, instances, config)
    eng.run()
    assert eng.at_end  # a denial never stops the run
    return eng


def denials(eng: Engine, strat: int | None = None) -> list[int]:
    """Reasons of the journal's denied rows (of one instance)."""
    j = eng.journal()
    keep = j["to_state"] == ST_DENIED
    if strat is not None:
        keep &= j["strat"] == strat
    return j["reason"][keep].tolist()


@pytest.mark.parametrize(
    ("risk", "order", "reason"),
    [
        (RiskLimits(max_order_qty=5), {"price": 9_900, "qty": 6}, R_RISK_ORDER_SIZE),
        (RiskLimits(max_notional=500.0), {"price": 9_990, "qty": 6}, R_RISK_NOTIONAL),
        (RiskLimits(price_band=0.05), {"price": 10_501, "qty": 1}, R_RISK_PRICE_BAND),
        (RiskLimits(price_band=0.05), {"side": SELL, "price": 9_499}, R_RISK_PRICE_BAND),
        (RiskLimits(), {"flags": OF_REDUCE_ONLY, "price": 9_900}, R_RISK_REDUCE_ONLY),
        (RiskLimits(), {"qty": 0, "price": 9_900}, R_BAD_QUANTITY),
        (RiskLimits(), {"qty": -3, "price": 9_900}, R_BAD_QUANTITY),
        (RiskLimits(), {"price": 0}, R_BAD_PRICE),
        (RiskLimits(), {"price": -5}, R_BAD_PRICE),
        (RiskLimits(), {"target": 5, "price": 9_900}, R_BAD_INSTRUMENT),
        (RiskLimits(), {"target": -3, "price": 9_900}, R_BAD_INSTRUMENT),
        (RiskLimits(), {"side": 0, "price": 9_900}, R_BAD_SIDE),
        (RiskLimits(), {"side": 2, "price": 9_900}, R_BAD_SIDE),
    ],
)
def test_each_rule_denies_with_its_reason_and_the_run_goes_on(risk, order, reason):
    eng = run([order, VALID], risk)
    bad, good = eng.rows
    assert bad["ret"] == -reason
    assert (bad["ok"], bad["denied"]) == (0, 1)
    assert bad["n_upd"] == 0  # a denial is an answer, not a report
    assert (good["ok"], good["denied"]) == (1, 0)
    assert denials(eng) == [reason]
    j = eng.journal()
    row = list(j["to_state"]).index(ST_DENIED)
    assert j["inst"][row] == 0  # a nonsense instrument is journaled under 0
    assert j["strat"][row] == 0
    al = eng.alerts()
    assert al["code"].tolist() == [A_RISK_DENIAL]
    assert al["reason"].tolist() == [reason]
    assert al["strat"].tolist() == [0]
    assert al["inst"].tolist() == [-1 if reason == R_BAD_INSTRUMENT else 0]
    assert eng.counters()["orders_denied"] == 1
    assert eng.counters()["orders_submitted"] == 1


def test_limits_at_their_edge_pass():
    risk = RiskLimits(max_order_qty=5, max_notional=500.0, price_band=0.05)
    eng = run([{"price": 9_990, "qty": 5}, {"side": SELL, "price": 10_500}], risk)
    assert eng.rows["denied"].tolist() == [0, 0]


def test_position_limit_counts_open_orders():
    eng = run([{"price": 9_900, "qty": 4, "count": 2, "step": -1}], RiskLimits(max_position=5))
    assert (eng.rows[0]["ok"], eng.rows[0]["denied"]) == (1, 1)
    assert denials(eng) == [R_RISK_POSITION]


def test_position_limit_counts_the_filled_position():
    eng = run([{"otype": OT_MARKET, "qty": 4, "again": 3}], RiskLimits(max_position=5))
    assert eng.rows[0]["ret"] >= 0
    assert eng.rows[0]["ret2"] == -R_RISK_POSITION
    assert eng.state.pi[0, 0, PI_POS] == 4


def test_reducing_order_passes_position_limit_and_reduce_only():
    risk = RiskLimits(max_position=5)
    eng = Engine(
        book_market().stream(),
        strategies.Scripted,
        [{"otype": OT_MARKET, "qty": 4}],
        EngineConfig(risk=risk),
    )
    run_to(eng, 10 * MS)
    assert eng.state.pi[0, 0, PI_POS] == 4
    eng.command(Command(CMD_REDUCE_ONLY))
    eng.rows[0]["side"] = SELL
    eng.rows[0]["again"] = 2
    eng.run()
    assert eng.rows[0]["ret2"] >= 0
    assert eng.state.pi[0, 0, PI_POS] == 0


def test_open_order_limit():
    eng = run([{"price": 9_900, "count": 3, "step": -1}], RiskLimits(max_open_orders=2))
    assert (eng.rows[0]["ok"], eng.rows[0]["denied"]) == (2, 1)
    assert denials(eng) == [R_RISK_OPEN_ORDERS]


def test_submit_rate_limit_and_its_window():
    risk = RiskLimits(max_submits=3, submit_window_ns=1_000_000_000)
    market = book_market(n_ticks=3, step=600 * MS)  # messages at 1, 601, 1201, 1801 ms
    eng = run([{"price": 9_900, "count": 5, "step": -1, "again": 4}], risk, market)
    assert (eng.rows[0]["ok"], eng.rows[0]["denied"]) == (6, 4)
    assert denials(eng) == [R_RISK_SUBMIT_RATE] * 4
    # Within the window the budget is still spent.
    eng = run([{"price": 9_900, "count": 5, "step": -1, "again": 2}], risk, market)
    assert (eng.rows[0]["ok"], eng.rows[0]["denied"]) == (3, 7)


def test_market_order_without_any_market_is_denied():
    eng = Engine(book_market().stream())
    assert eng.command(Command(CMD_MANUAL_MARKET, 0, BUY, 0, 1)) == -R_RISK_NO_MARKET
    eng.run()
    assert eng.alerts()["reason"].tolist() == [R_RISK_NO_MARKET]


def test_halt_denies_new_orders_and_resume_restores():
    eng = Engine(
        book_market().stream(), strategies.Scripted, [{"price": 9_900, "at": 2, "again": 4}]
    )
    run_to(eng, 5 * MS)
    eng.command(Command(CMD_HALT))
    run_to(eng, 25 * MS)
    assert eng.rows[0]["ret"] == -R_RISK_HALTED
    eng.command(Command(CMD_RESUME))
    eng.run()
    assert eng.rows[0]["ret2"] >= 0
    al = eng.alerts()
    assert [(c, r) for c, r in zip(al["code"], al["reason"], strict=True)][:2] == [
        (A_KILL_SWITCH, R_KILL_SWITCH),
        (A_RISK_DENIAL, R_RISK_HALTED),
    ]


def test_engine_reduce_only_denies_opening_orders():
    eng = Engine(book_market().stream(), strategies.Scripted, [{"price": 9_900, "at": 2}])
    eng.command(Command(CMD_REDUCE_ONLY))
    eng.run()
    assert eng.rows[0]["ret"] == -R_RISK_REDUCE_ONLY


def deep_market() -> Market:
    m = Market()
    m.snapshot(MS, bids=[(9_990, 1_000)], asks=[(10_010, 1_000)])
    for k in range(1, 6):
        m.tick(MS + k * 10 * MS)
    return m


def test_flatten_passes_the_submit_rate_limit_and_the_halt_for_150_positions():
    risk = RiskLimits(max_submits=1, max_open_orders=1, max_order_qty=1)
    eng = Engine(
        deep_market().stream(),
        strategies.Scripted,
        [{"otype": OT_MARKET, "qty": 1, "again": 2}] * 150,
        EngineConfig(risk=risk),
    )
    run_to(eng, 15 * MS)
    # Each instance bought once; its second order was throttled.
    assert eng.state.pi[:150, 0, PI_POS].tolist() == [1] * 150
    assert set(eng.rows["ret2"].tolist()) == {-R_RISK_SUBMIT_RATE}
    eng.command(Command(CMD_HALT))
    assert eng.command(Command(CMD_FLATTEN)) == 150
    eng.run()
    assert eng.state.pi[:, 0, PI_POS].tolist() == [0] * 151
    assert eng.counters()["orders_denied"] == 150  # only the throttled second orders


# ------------------------------------------------------------------------------ drawdown


@pytest.mark.parametrize(
    ("action", "state", "reason"),
    [("reduce_only", TS_REDUCE_ONLY, R_RISK_REDUCE_ONLY), ("halt", TS_HALTED, R_RISK_HALTED)],
)
def test_drawdown_trips_the_strategy_with_an_alert(action, state, reason):
    # Buying 10 lots across the spread: fees plus the spread to the mid lose about 2.0.
    risk = RiskLimits(max_drawdown=0.5, drawdown_action=action)
    eng = run([{"otype": OT_MARKET, "qty": 10, "again": 3}, VALID], risk)
    assert eng.state.ri[0, RI_STATE] == state
    assert eng.state.ri[1, RI_STATE] == TS_ACTIVE  # the other instance trades on
    assert eng.rows[0]["ret2"] == -reason
    al = eng.alerts()
    k = al["code"].tolist().index(A_DRAWDOWN)
    assert (al["ts"][k], al["severity"][k], al["reason"][k], al["strat"][k]) == (
        3 * MS,  # at the first fill report: 5 @ 100.10 marked at 100.00 less 0.25 fees
        SEV_CRITICAL,
        R_DRAWDOWN,
        0,
    )
    assert al["code"].tolist().count(A_DRAWDOWN) == 1
    assert eng.state.rf[0, RF_MAX_DD] == pytest.approx(1.5 + 0.50075, rel=1e-9)


def falling_market() -> Market:
    m = Market()
    m.snapshot(MS, bids=[(9_990, 10)], asks=[(10_010, 10)])
    m.tick(11 * MS)
    m.snapshot(21 * MS, bids=[(9_890, 10)], asks=[(9_910, 10)])  # the mark drops a point
    for k in range(3, 8):
        m.tick(MS + k * 10 * MS)
    return m


def test_drawdown_from_the_mark_alone_trips_without_further_fills():
    risk = RiskLimits(max_drawdown=0.5)
    eng = run(
        [{"otype": OT_MARKET, "qty": 1, "again": 6}],  # again at 51 ms
        risk,
        falling_market(),
        equity_interval_ns=10 * MS,
    )
    # Bought 1 @ 100.10: -0.15 at the first mark, -1.15 once it falls to 99.00.
    assert eng.state.ri[0, RI_STATE] == TS_REDUCE_ONLY
    assert eng.rows[0]["ret2"] == -R_RISK_REDUCE_ONLY
    assert A_DRAWDOWN in eng.alerts()["code"].tolist()


def test_drawdown_action_is_validated():
    with pytest.raises(UsageError, match="drawdown_action"):
        EngineConfig(risk=RiskLimits(drawdown_action="panic"))


# --------------------------------------------------------------------------- surveillance


def surveil(order: dict, **risk) -> list[int]:
    eng = run([order], RiskLimits(**risk))
    return eng.alerts()["code"].tolist()


SPOOF = {"spoof_min_qty": 10, "spoof_ticks_away": 5, "spoof_window_ns": 2_000_000_000}


def test_spoofing_large_order_away_from_the_touch_canceled_soon():
    codes = surveil({"price": 9_900, "qty": 10, "cancel_at": 2}, **SPOOF)
    assert codes == [A_SPOOFING]


@pytest.mark.parametrize(
    "order",
    [
        {"price": 9_900, "qty": 9, "cancel_at": 2},  # too small
        {"price": 9_986, "qty": 10, "cancel_at": 2},  # 4 ticks from the touch
        {"price": 9_900, "qty": 10, "cancel_at": 0},  # never canceled
    ],
)
def test_no_spoofing_alert_otherwise(order):
    assert surveil(order, **SPOOF) == []


def test_no_spoofing_alert_when_canceled_after_the_window():
    risk = {**SPOOF, "spoof_window_ns": 5 * MS}
    assert surveil({"price": 9_900, "qty": 10, "cancel_at": 2}, **risk) == []


LAYER = {"layer_levels": 3, "layer_window_ns": 1_000_000_000}


def test_layering_several_levels_placed_and_pulled_together():
    eng = run([{"price": 9_900, "count": 4, "step": -1, "cancel_at": 2}], RiskLimits(**LAYER))
    al = eng.alerts()
    assert al["code"].tolist() == [A_LAYERING]  # one alert per window, not one per cancel
    assert al["value"].tolist() == [3]
    assert al["strat"].tolist() == [0]


@pytest.mark.parametrize(
    "order",
    [
        {"price": 9_900, "count": 2, "step": -1, "cancel_at": 2},  # two levels only
        {"price": 9_900, "count": 4, "step": 0, "cancel_at": 2},  # one level, four orders
        {"price": 9_900, "count": 4, "step": -1, "cancel_at": 0},  # placed, never pulled
    ],
)
def test_no_layering_alert_otherwise(order):
    assert run([order], RiskLimits(**LAYER)).alerts()["code"].tolist() == []
