"""Amends: pending update, queue priority kept or lost, refused amends, races with fills."""

from __future__ import annotations

from engine.codes import (
    A_RISK_DENIAL,
    R_AMEND_REQUEST,
    R_AMEND_WOULD_CROSS,
    R_AMENDED,
    R_FILL,
    R_INVALID_TRANSITION,
    R_NONE,
    R_RISK_ORDER_SIZE,
    R_UNKNOWN_ORDER,
    ST_ACCEPTED,
    ST_FILLED,
    ST_PARTIALLY_FILLED,
    ST_PENDING_UPDATE,
)
from engine.commands import CMD_AMEND, CMD_MANUAL_LIMIT, Command
from engine.config import EngineConfig, RiskLimits
from engine.runner import Engine
from engine.state import O_PRICE, O_QAHEAD, O_QTY, PI_OPEN_BUY, SLOT_MASK
from tests.engine import strategies
from tests.engine.market import BUY, MS, SELL, Market, book_market, journal_of, run_to


def _market(trades=()) -> Market:
    m = Market()
    m.snapshot(MS, bids=[(9_990, 10), (9_980, 20)], asks=[(10_010, 5), (10_020, 7)])
    rows = [(t, None) for t in range(10 * MS, 60 * MS, 10 * MS)] + list(trades)
    for ts, trade in sorted(rows, key=lambda r: r[0]):
        if trade is None:
            m.tick(ts)
        else:
            m.trade(ts, *trade)
    return m


def _limit(eng: Engine, price: int, qty: int) -> int:
    return eng.command(Command(CMD_MANUAL_LIMIT, 0, BUY, price, qty))


def _amend(eng: Engine, oid: int, price: int, qty: int) -> int:
    return eng.command(Command(CMD_AMEND, a=oid, c=price, d=qty))


def _order(eng: Engine, oid: int, col: int) -> int:
    return int(eng.state.o[oid & SLOT_MASK, col])


def test_smaller_quantity_keeps_the_queue_place_anything_else_goes_to_the_back():
    eng = Engine(_market(trades=[(15 * MS, (9_990, 4, SELL))]).stream())
    run_to(eng, 2 * MS)
    oid = _limit(eng, 9_990, 5)
    run_to(eng, 16 * MS)
    assert _order(eng, oid, O_QAHEAD) == 6  # joined behind 10, a trade of 4 at our price

    assert _amend(eng, oid, 9_990, 3) == R_NONE
    run_to(eng, 19 * MS)
    assert journal_of(eng, oid)[-2:] == [
        (16 * MS, ST_ACCEPTED, ST_PENDING_UPDATE, R_AMEND_REQUEST, 9_990, 3),
        (18 * MS, ST_PENDING_UPDATE, ST_ACCEPTED, R_AMENDED, 9_990, 3),
    ]
    assert _order(eng, oid, O_QAHEAD) == 6  # kept its place
    assert eng.state.pi[-1, 0, PI_OPEN_BUY] == 3

    _amend(eng, oid, 9_990, 4)  # more lots: to the back, behind the 10 displayed
    run_to(eng, 21 * MS)
    assert (_order(eng, oid, O_QAHEAD), _order(eng, oid, O_QTY)) == (10, 4)
    _amend(eng, oid, 9_980, 4)  # a new price: behind the 20 displayed there
    run_to(eng, 23 * MS)
    assert (_order(eng, oid, O_QAHEAD), _order(eng, oid, O_PRICE)) == (20, 9_980)
    assert eng.state.pi[-1, 0, PI_OPEN_BUY] == 4


def test_an_amend_that_would_cross_is_refused_and_the_order_stays():
    eng = Engine(_market().stream())
    run_to(eng, 2 * MS)
    oid = _limit(eng, 9_990, 5)
    run_to(eng, 10 * MS)
    _amend(eng, oid, 10_010, 5)
    eng.run()
    assert journal_of(eng, oid)[-1] == (
        12 * MS,
        ST_PENDING_UPDATE,
        ST_ACCEPTED,
        R_AMEND_WOULD_CROSS,
        9_990,
        5,
    )
    assert _order(eng, oid, O_PRICE) == 9_990
    assert eng.counters()["fills"] == 0


def test_a_fill_at_the_venue_before_the_amend_arrives_wins():
    eng = Engine(_market(trades=[(20 * MS + MS // 2, (9_980, 50, SELL))]).stream())
    run_to(eng, 2 * MS)
    oid = _limit(eng, 9_990, 2)
    run_to(eng, 20 * MS)
    _amend(eng, oid, 9_990, 1)
    eng.run()
    rows = journal_of(eng, oid)
    assert rows[-2:] == [
        (20 * MS, ST_ACCEPTED, ST_PENDING_UPDATE, R_AMEND_REQUEST, 9_990, 1),
        (21 * MS + MS // 2, ST_PENDING_UPDATE, ST_FILLED, R_FILL, 9_990, 2),
    ]  # the venue's refusal arrives after the fill and changes nothing
    assert eng.counters()["invalid_transitions"] == 0


def test_a_partial_fill_while_pending_keeps_it_pending_then_the_amend_applies():
    eng = Engine(_market(trades=[(20 * MS + MS // 2, (9_980, 2, SELL))]).stream())
    run_to(eng, 2 * MS)
    oid = _limit(eng, 9_990, 5)
    run_to(eng, 20 * MS)
    _amend(eng, oid, 9_990, 4)
    eng.run()
    assert journal_of(eng, oid)[-3:] == [
        (20 * MS, ST_ACCEPTED, ST_PENDING_UPDATE, R_AMEND_REQUEST, 9_990, 4),
        (21 * MS + MS // 2, ST_PENDING_UPDATE, ST_PENDING_UPDATE, R_FILL, 9_990, 2),
        (22 * MS, ST_PENDING_UPDATE, ST_PARTIALLY_FILLED, R_AMENDED, 9_990, 4),
    ]
    assert eng.state.pi[-1, 0, PI_OPEN_BUY] == 2  # 4 lots, 2 filled


def test_pre_trade_risk_checks_the_new_terms():
    cfg = EngineConfig(risk=RiskLimits(max_order_qty=5))
    eng = Engine(_market().stream(), config=cfg)
    run_to(eng, 2 * MS)
    oid = _limit(eng, 9_990, 5)
    run_to(eng, 10 * MS)
    assert _amend(eng, oid, 9_990, 9) == R_RISK_ORDER_SIZE
    assert _amend(eng, oid + 1, 9_990, 2) == R_UNKNOWN_ORDER
    al = eng.alerts()
    assert (int(al["code"][-1]), int(al["reason"][-1]), int(al["value"][-1])) == (
        A_RISK_DENIAL,
        R_RISK_ORDER_SIZE,
        9,
    )
    eng.run()
    assert journal_of(eng, oid)[-1][2] == ST_ACCEPTED  # unchanged
    assert _order(eng, oid, O_QTY) == 5


def test_a_finished_order_cannot_be_amended():
    eng = Engine(_market(trades=[(15 * MS, (9_980, 50, SELL))]).stream())
    run_to(eng, 2 * MS)
    oid = _limit(eng, 9_990, 2)
    run_to(eng, 20 * MS)
    assert journal_of(eng, oid)[-1][2] == ST_FILLED
    assert _amend(eng, oid, 9_990, 1) == R_UNKNOWN_ORDER  # its slot went back to the pool
    working = _limit(eng, 9_900, 2)
    assert _amend(eng, working, 9_900, 1) == R_INVALID_TRANSITION  # submitted, not working


def test_a_strategy_amends_through_the_api_and_a_replay_is_identical():
    inst = [{"side": BUY, "price": 9_900, "qty": 5, "at": 1, "again": 2, "step": 10, "count": 3}]
    eng = Engine(book_market().stream(), strategies.Amender, inst)
    run_to(eng, 5 * MS)
    oid = int(eng.rows[0]["oid"])
    _limit(eng, 9_950, 2)  # a command in the session, for the replay
    eng.run()
    assert eng.rows[0]["ret2"] == R_NONE
    rows = journal_of(eng, oid)
    assert (11 * MS, ST_ACCEPTED, ST_PENDING_UPDATE, R_AMEND_REQUEST, 9_910, 3) in rows
    assert rows[-1] == (13 * MS, ST_PENDING_UPDATE, ST_ACCEPTED, R_AMENDED, 9_910, 3)
    again = Engine(book_market().stream(), strategies.Amender, inst)
    again.replay_commands(eng.commands)
    assert again.journal_hash() == eng.journal_hash()
    assert eng.counters()["amends"] == 1
