"""The event loop: stepping, breakpoints, the end of the data, draining the buffers."""

from __future__ import annotations

import numpy as np
import pytest

from engine.codes import (
    BREAK_ALERT,
    BREAK_FILL,
    BREAK_ORDER_UPDATE,
    BREAK_TIME,
    BREAK_TRADE,
    ST_ACCEPTED,
    ST_FILLED,
    ST_PARTIALLY_FILLED,
    STOP_ALERT,
    STOP_CHUNK_DONE,
    STOP_END_OF_DATA,
    STOP_FILL,
    STOP_ORDER_UPDATE,
    STOP_TIME,
    STOP_TRADE,
)
from engine.commands import CMD_CANCEL_ALL, CMD_MANUAL_LIMIT, CMD_MANUAL_MARKET, Command
from engine.config import EngineConfig, RiskLimits
from engine.runner import Engine, EngineError
from engine.state import N_ALERTS_DRAINED, N_EQUITY_DRAINED, N_FILLS_DRAINED, N_JOURNAL_DRAINED
from engine.synthetic import SyntheticConfig, generate
from tests.engine import strategies
from tests.engine.market import BUY, MS, SELL, Market, book_market, run_to


def test_step_moves_exactly_one_event_data_or_scheduled():
    eng = Engine(book_market().stream())
    for k in range(1, 7):  # the snapshot's six rows
        assert eng.step() == STOP_CHUNK_DONE
        assert (eng.events_processed, eng.cursor, eng.now) == (k, k, MS)
    run_to(eng, 2 * MS)
    eng.command(Command(CMD_MANUAL_MARKET, 0, BUY, 0, 8))
    seen = []
    for _ in range(5):
        before = eng.events_processed
        eng.step()
        assert eng.events_processed == before + 1
        seen.append((eng.cursor, eng.now, len(eng.fills()["ts"]), len(eng.journal()["ts"])))
    assert seen == [
        (6, 3 * MS, 2, 1),  # the order reaches the venue: two fills there
        (6, 4 * MS, 2, 2),  # acknowledgement
        (6, 4 * MS, 2, 3),  # first fill report
        (6, 4 * MS, 2, 4),  # second fill report
        (7, 11 * MS, 2, 4),  # the next data row
    ]


def test_step_many_equals_run():
    a = Engine(book_market().stream(), strategies.Scripted, [{"otype": 1, "qty": 8}])
    b = Engine(book_market().stream(), strategies.Scripted, [{"otype": 1, "qty": 8}])
    while a.step() != STOP_END_OF_DATA:
        pass
    b.run()
    assert a.events_processed == b.events_processed == 6 + 6 + 4  # data, then scheduled
    assert a.journal_hash() == b.journal_hash()


def fill_market() -> Market:
    m = Market()
    m.snapshot(MS, bids=[(9_990, 10)], asks=[(10_010, 5), (10_020, 7)])
    m.trade(11 * MS, 10_010, 2, BUY)
    m.trade(21 * MS, 9_990, 1, SELL)
    m.tick(31 * MS)
    return m


def test_break_on_fill_stops_at_each_fill_report():
    eng = Engine(fill_market().stream())
    run_to(eng, 2 * MS)
    eng.command(Command(CMD_MANUAL_MARKET, 0, BUY, 0, 8))
    assert eng.run(break_mask=BREAK_FILL) == STOP_FILL
    j = eng.journal()
    assert (eng.now, j["to_state"][-1], j["qty"][-1]) == (4 * MS, ST_PARTIALLY_FILLED, 5)
    assert eng.run(break_mask=BREAK_FILL) == STOP_FILL
    j = eng.journal()
    assert (eng.now, j["to_state"][-1], j["qty"][-1]) == (4 * MS, ST_FILLED, 3)
    assert eng.run(break_mask=BREAK_FILL) == STOP_END_OF_DATA


def test_break_on_order_update_stops_at_the_first_report():
    eng = Engine(fill_market().stream())
    run_to(eng, 2 * MS)
    eng.command(Command(CMD_MANUAL_LIMIT, 0, BUY, 9_900, 1))
    assert eng.run(break_mask=BREAK_ORDER_UPDATE) == STOP_ORDER_UPDATE
    assert eng.now == 4 * MS
    assert eng.journal()["to_state"][-1] == ST_ACCEPTED
    assert eng.run(break_mask=BREAK_ORDER_UPDATE) == STOP_END_OF_DATA


def test_break_on_trade_stops_right_after_each_trade_row():
    eng = Engine(fill_market().stream())
    assert eng.run(break_mask=BREAK_TRADE) == STOP_TRADE
    assert (eng.cursor, eng.now) == (5, 11 * MS)  # the trade is row 4
    assert eng.events[eng.cursor - 1]["kind"] == 4
    assert eng.run(break_mask=BREAK_TRADE) == STOP_TRADE
    assert (eng.cursor, eng.now) == (6, 21 * MS)
    assert eng.run(break_mask=BREAK_TRADE) == STOP_END_OF_DATA


def test_break_on_alert_stops_at_the_event_that_raised_it():
    eng = Engine(fill_market().stream())
    run_to(eng, 2 * MS)
    eng.command(Command(CMD_MANUAL_LIMIT, 0, SELL, 10_000, 1))
    eng.command(Command(CMD_MANUAL_LIMIT, 0, BUY, 10_000, 1))  # a self-trade at the venue
    assert eng.run(break_mask=BREAK_ALERT | BREAK_TRADE) == STOP_ALERT
    assert eng.now == 3 * MS
    assert len(eng.alerts()["code"]) == 1


def test_break_on_time_stops_before_later_events_and_sets_the_clock():
    eng = Engine(fill_market().stream())
    assert eng.run(break_mask=BREAK_TIME, stop_ts=15 * MS) == STOP_TIME
    assert (eng.cursor, eng.now) == (5, 15 * MS)
    assert eng.run(break_mask=BREAK_TIME, stop_ts=21 * MS) == STOP_TIME
    assert (eng.cursor, eng.now) == (6, 21 * MS)  # events at stop_ts itself are processed
    assert eng.run(break_mask=BREAK_TIME, stop_ts=21 * MS) == STOP_TIME
    assert eng.cursor == 6
    assert eng.run(break_mask=BREAK_TIME, stop_ts=10**18) == STOP_END_OF_DATA


def test_end_of_data():
    eng = Engine(fill_market().stream())
    assert eng.run() == STOP_END_OF_DATA
    assert eng.at_end
    n = eng.events_processed
    assert (n, eng.cursor, eng.now) == (len(eng.events), len(eng.events), 31 * MS)
    assert eng.run() == STOP_END_OF_DATA
    assert eng.step() == STOP_END_OF_DATA
    assert eng.events_processed == n


def test_empty_stream_ends_at_once():
    eng = Engine(Market().stream())
    assert eng.run() == STOP_END_OF_DATA
    eng.finish()
    assert eng.events_processed == 0


def churn_market():
    return generate(SyntheticConfig(n_events=3_000, seed=5))


def churn(config: EngineConfig) -> Engine:
    stream = churn_market()
    start = int(stream.events["ts_local"][0])
    instances = [
        {"qty": 1, "mode": m, "step": 5 + m, "count": 11 + m, "timer_at": start} for m in range(3)
    ]
    eng = Engine(stream, strategies.Churn, instances, config)
    eng.run()
    eng.finish()
    return eng


def test_small_buffers_are_drained_and_every_row_is_kept():
    small = EngineConfig(
        journal_capacity=16,
        fills_capacity=16,
        alerts_capacity=16,
        equity_capacity=16,
        equity_interval_ns=MS,
        risk=RiskLimits(max_position=2),
    )
    big = EngineConfig(equity_interval_ns=MS, risk=small.risk)
    a, b = churn(small), churn(big)
    assert len(a.drained.journal) > 10  # drained many times
    for table in ("journal", "fills", "alerts", "equity_curve"):
        ta, tb = getattr(a, table)(), getattr(b, table)()
        assert ta.keys() == tb.keys()
        for name in ta:
            assert np.array_equal(ta[name], tb[name]), (table, name)
    n_journal = len(a.journal()["ts"])
    assert n_journal > 200
    assert len(a.fills()["ts"]) > 10
    assert len(a.alerts()["ts"]) > 10
    assert a.state.ctl[N_JOURNAL_DRAINED] == n_journal
    assert a.state.ctl[N_FILLS_DRAINED] == len(a.fills()["ts"])
    assert a.state.ctl[N_ALERTS_DRAINED] == len(a.alerts()["ts"])
    assert a.state.ctl[N_EQUITY_DRAINED] == len(a.equity_curve()["ts"])
    assert a.journal_hash() == b.journal_hash()


@pytest.mark.parametrize("mask", [BREAK_FILL, BREAK_TRADE | BREAK_ORDER_UPDATE])
def test_breakpoints_do_not_change_the_run(mask):
    a = churn(EngineConfig())
    stream = churn_market()
    start = int(stream.events["ts_local"][0])
    instances = [
        {"qty": 1, "mode": m, "step": 5 + m, "count": 11 + m, "timer_at": start} for m in range(3)
    ]
    b = Engine(stream, strategies.Churn, instances, EngineConfig())
    stops = 0
    while b.run(break_mask=mask) != STOP_END_OF_DATA:
        stops += 1
    b.finish()
    assert stops > 10
    assert a.journal_hash() == b.journal_hash()


def test_an_event_writing_more_rows_than_a_buffer_holds_is_an_error_not_a_silent_loss():
    # 20 orders sent on one message make 20 journal rows at once; the journal holds 16.
    cfg = EngineConfig(journal_capacity=16)
    eng = Engine(book_market().stream(), strategies.Scripted, [{"price": 9_900, "count": 20}], cfg)
    with pytest.raises(EngineError, match="journal_capacity"):
        eng.run()
    assert eng.counters()["buffer_overflow"] == 4
    # Within capacity, a burst from a command is kept: the buffers are drained before it.
    eng = Engine(book_market().stream(), config=cfg)
    run_to(eng, 5 * MS)
    for _ in range(10):
        eng.command(Command(CMD_MANUAL_LIMIT, 0, BUY, 9_900, 1))
    assert eng.command(Command(CMD_CANCEL_ALL)) == 10  # 10 rows on top of 10
    eng.run()
    # submitted, pending cancel, acknowledged while pending, canceled: 4 rows an order
    assert len(eng.journal()["ts"]) == 40
    assert eng.counters()["buffer_overflow"] == 0
