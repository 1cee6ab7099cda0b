"""The strategy runtime: compile errors, faults, bad orders, subscriptions, many instances."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from engine.codes import (
    A_STRATEGY_ERROR,
    OT_MARKET,
    R_BAD_QUANTITY,
    SEV_CRITICAL,
    ST_DENIED,
    ST_FILLED,
    STOP_END_OF_DATA,
)
from engine.errors import UsageError
from engine.events import FLAG_LAST
from engine.runner import Engine
from engine.state import RI_ENABLED
from engine.strategy import Strategy, StrategyError, make_rows, strategy_dtype, subscriptions
from engine.synthetic import SyntheticConfig, generate
from tests.engine import strategies
from tests.engine.market import BUY, MS, SELL, Market, book_market


def test_a_strategy_numba_cannot_compile_names_class_method_and_line():
    src, first = inspect.getsourcelines(strategies.Broken)
    line = first + next(i for i, text in enumerate(src) if "# BROKEN LINE" in text)
    with pytest.raises(StrategyError) as info:
        Engine(book_market().stream(), strategies.Broken)
    msg = str(info.value)
    assert "strategy Broken" in msg
    assert "method on_data" in msg
    assert f"strategies.py:{line}" in msg
    assert 'self.oid = "not a number"' in msg
    assert "\n" not in msg  # one line, not a numba dump


def test_a_hook_that_returns_a_value_is_refused_with_its_line():
    src, first = inspect.getsourcelines(strategies.Garbage)
    line = first + next(i for i, text in enumerate(src) if "return r" in text)
    with pytest.raises(
        StrategyError, match=rf"method on_data at \S*strategies.py:{line}: return r"
    ):
        Engine(book_market().stream(), strategies.Garbage)


def test_a_strategy_that_raises_is_disabled_and_the_others_go_on(capfd):
    instances = [{"mode": 0}, {"mode": 1, "at": 2}, {"mode": 0}]
    eng = Engine(book_market().stream(), strategies.Raiser, instances)
    assert eng.run() == STOP_END_OF_DATA
    assert "Exception ignored" not in capfd.readouterr().err  # caught, not printed
    assert [(f.instance, f.hook_time_ns) for f in eng.faults] == [(1, 11 * MS)]
    assert "Raiser.on_data raised" in eng.faults[0].message
    assert eng.state.ri[:3, RI_ENABLED].tolist() == [1, 0, 1]
    # 7 messages: the faulty instance saw two; the others every one, including the message
    # during which it raised.
    assert eng.rows["n_data"].tolist() == [7, 2, 7]
    al = eng.alerts()
    assert al["code"].tolist() == [A_STRATEGY_ERROR]
    assert (al["strat"][0], al["severity"][0], al["ts"][0]) == (1, SEV_CRITICAL, 11 * MS)
    assert al["value"][0] == 2  # which hook: on_data
    eng.finish()  # on_stop is not called for a disabled instance, and nothing raises


def test_a_strategy_that_raises_in_on_start_is_disabled_and_the_others_start_once():
    eng = Engine(book_market().stream(), strategies.Raiser, [{}, {"mode": 2}, {}])
    eng.run()
    assert eng.rows["tags"].tolist() == [1, 1, 1]
    assert eng.rows["n_data"].tolist() == [7, 0, 7]
    assert [(f.instance, f.hook_time_ns) for f in eng.faults] == [(1, 0)]
    assert "Raiser.on_start raised" in eng.faults[0].message


def test_stepping_stays_one_event_per_step_when_a_hook_raises():
    eng = Engine(book_market().stream(), strategies.Raiser, [{"mode": 1, "at": 2}, {}])
    counts = []
    while eng.step() != STOP_END_OF_DATA:
        counts.append(eng.events_processed)
    assert counts == list(range(1, len(counts) + 1))
    assert len(eng.faults) == 1
    assert eng.rows["n_data"].tolist() == [2, 7]


def test_garbage_orders_get_reason_codes_and_journal_rows_every_time():
    instances = [{"qty": -1, "count": 3, "again": 2, "price": 9_900}, {"price": 9_900}]
    eng = Engine(book_market().stream(), strategies.Scripted, instances)
    assert eng.run() == STOP_END_OF_DATA
    assert (eng.rows[0]["ok"], eng.rows[0]["denied"]) == (0, 6)
    assert eng.rows[0]["ret"] == eng.rows[0]["ret2"] == -R_BAD_QUANTITY
    j = eng.journal()
    denied = j["to_state"] == ST_DENIED
    assert denied.sum() == 6
    assert set(j["reason"][denied].tolist()) == {R_BAD_QUANTITY}
    assert set(j["qty"][denied].tolist()) == {-1}
    assert eng.rows[1]["ok"] == 1


def two_instrument_market() -> Market:
    m = Market(n_instruments=2)
    m.snapshot(MS, bids=[(9_990, 10)], asks=[(10_010, 10)], inst=0)
    m.snapshot(2 * MS, bids=[(4_990, 10)], asks=[(5_010, 10)], inst=1)
    m.tick(11 * MS, inst=0)
    m.tick(12 * MS, inst=1)
    m.tick(13 * MS, inst=1)
    m.delta(14 * MS, BUY, 4_980, 5, inst=1, last=False)  # half a message: no call
    m.delta(14 * MS, SELL, 5_020, 5, inst=1)
    m.tick(21 * MS, inst=0)
    return m


def test_subscriptions_follow_the_instrument_fields():
    instances = [
        {"instrument": 0, "price": 9_900},
        {"instrument": 1, "price": 4_900},
        {"instrument": 1, "target": 0, "price": 9_800},  # listens to 1, trades 0
    ]
    eng = Engine(two_instrument_market().stream(), strategies.Scripted, instances)
    eng.run()
    assert eng.rows["n_data"].tolist() == [3, 4, 4]
    j = eng.journal()
    sent = j["to_state"] == 2
    assert sorted(zip(j["strat"][sent], j["inst"][sent], strict=True)) == [
        (0, 0),
        (1, 1),
        (2, 0),
    ]


def test_subscriptions_table():
    plain = np.zeros(2, dtype=[("a", np.int64)])
    start, idx = subscriptions(plain, 3)
    assert start.tolist() == [0, 2, 4, 6]  # no instrument field: everything
    assert idx.tolist() == [0, 1, 0, 1, 0, 1]
    two = np.zeros(3, dtype=[("instrument", np.int64), ("instrument2", np.int64)])
    two["instrument"] = [0, 1, 2]
    two["instrument2"] = [1, 1, 0]
    start, idx = subscriptions(two, 3)
    assert [idx[start[i] : start[i + 1]].tolist() for i in range(3)] == [[0, 2], [0, 1], [2]]
    two["instrument2"][0] = 3
    with pytest.raises(UsageError, match="instrument 3 does not exist"):
        subscriptions(two, 3)


def test_a_thousand_instances_share_one_engine():
    stream = generate(SyntheticConfig(n_events=4_000, seed=3, n_instruments=2))
    ev = stream.events
    messages = [
        int(((ev["instrument"] == i) & ((ev["flags"] & FLAG_LAST) != 0)).sum()) for i in (0, 1)
    ]
    assert min(messages) > 60
    instances = [
        {
            "instrument": k % 2,
            "price": 9_700 - k % 30,  # far below the touch: accepted, never filled
            "at": k % 20 + 1,
            "cancel_at": k % 20 + 31,
        }
        for k in range(1_000)
    ]
    eng = Engine(stream, strategies.Scripted, instances)
    assert eng.run() == STOP_END_OF_DATA
    rows = eng.rows
    assert len(rows) == 1_000
    assert rows["n_data"].tolist() == [messages[k % 2] for k in range(1_000)]
    assert (rows["ok"] == 1).all()
    assert (rows["hist"] == 0x38).all()  # each saw its order accepted, then canceled
    assert eng.counters()["orders_submitted"] == 1_000
    assert eng.counters()["cancels"] == 1_000


def test_on_order_update_receives_the_status_codes():
    eng = Engine(book_market().stream(), strategies.Scripted, [{"otype": OT_MARKET, "qty": 8}])
    eng.run()
    assert eng.rows[0]["hist"] == 0x356  # accepted, partially filled, filled
    assert eng.rows[0]["last_status"] == ST_FILLED
    assert eng.rows[0]["n_upd"] == 3


def test_timers_call_on_tick_and_can_be_rearmed():
    eng = Engine(book_market().stream(), strategies.Scripted, [{"timer_at": 5 * MS, "at": 0}])
    eng.run()
    assert eng.rows[0]["n_tick"] == 3
    assert eng.rows[0]["tags"] == 789  # 7 at 5 ms, then 8 and 9 set from on_tick


def test_a_timer_beyond_the_data_never_fires():
    eng = Engine(book_market().stream(), strategies.Scripted, [{"timer_at": 10**15, "at": 0}])
    eng.run()
    assert eng.rows[0]["n_tick"] == 0


def test_strategy_fields_are_validated():
    class Bad(Strategy):
        params = {"name": "x"}

    with pytest.raises(StrategyError, match="'name'"):
        strategy_dtype(Bad)
    with pytest.raises(UsageError, match="unknown parameter 'nope'"):
        make_rows(strategies.Scripted, [{"nope": 1}])
    with pytest.raises(UsageError, match="'qty' expects int64"):
        make_rows(strategies.Scripted, [{"qty": 1.5}])
    rows = make_rows(strategies.Scripted, [{"qty": "7"}, {}])
    assert rows["qty"].tolist() == [7, 1]
    assert rows["oid"].tolist() == [-1, -1]


def test_large_integer_parameters_stay_exact():
    from engine.strategy import make_rows

    t = 1_700_000_000_030_000_001  # a ns time: a float would round it
    rows = make_rows(strategies.Scripted, [{"timer_at": t}, {"timer_at": "1e9"}])
    assert rows["timer_at"].tolist() == [t, 1_000_000_000]
