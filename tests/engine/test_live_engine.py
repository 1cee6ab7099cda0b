"""The engine in live mode: pushed events, the wall clock, the outbox and venue answers."""

from __future__ import annotations

import pytest

from engine.codes import (
    LIQ_MAKER,
    R_BELOW_MIN_NOTIONAL,
    R_BOOK_NOT_IN_SYNC,
    R_CANCELED,
    R_VENUE_ACK,
    ST_ACCEPTED,
    ST_CANCELED,
    ST_FILLED,
    ST_SUBMITTED,
)
from engine.commands import CMD_AMEND, CMD_FLATTEN, CMD_MANUAL_LIMIT, CMD_MANUAL_MARKET, Command
from engine.errors import UsageError
from engine.live import OUT_AMEND, OUT_CANCEL, OUT_NEW, REPORT_AMENDED, LiveEngine
from engine.state import PI_OPEN_BUY, PI_POS
from tests.engine import strategies
from tests.engine.market import BUY, MS, SELL, Market, journal_of

T0 = 1_700_000_000_000_000_000  # live times are wall-clock ns


def _market() -> Market:
    m = Market()
    m.snapshot(T0 + MS, bids=[(9_990, 10)], asks=[(10_010, 5)])
    for k in range(1, 6):
        m.tick(T0 + MS + k * 10 * MS)
    return m


def _live(cls=None, inst=None, **kw) -> tuple[LiveEngine, Market]:
    m = _market()
    eng = LiveEngine(m.instruments, cls, inst, **kw)
    eng.set_in_sync(0, True)
    return eng, m


def test_orders_leave_through_the_outbox_and_wait_for_the_venue():
    eng, m = _live(strategies.Scripted, [{"price": 9_900, "at": 1}])
    eng.push_events(m.events()[:3])  # clear + the two snapshot rows
    eng.step_until(T0 + 5 * MS)
    out = eng.take_outbox()
    assert [(o.kind, o.side, o.price, o.qty, o.ts) for o in out] == [
        (OUT_NEW, BUY, 9_900, 1, T0 + MS)
    ]
    oid = out[0].oid
    assert eng.take_outbox() == []
    eng.push_events(m.events()[3:])
    eng.step_until(T0 + 60 * MS)
    assert journal_of(eng, oid)[-1][2] == ST_SUBMITTED  # nothing simulated a venue
    assert eng.counters()["fills"] == 0

    eng.acknowledge(oid, R_VENUE_ACK, T0 + 61 * MS)
    eng.fill(oid, 1, 9_900, LIQ_MAKER, T0 + 62 * MS)
    eng.step_until(T0 + 61 * MS)
    assert journal_of(eng, oid)[-1][:3] == (T0 + 61 * MS, ST_SUBMITTED, ST_ACCEPTED)
    assert eng.rows[0]["hist"] == ST_ACCEPTED  # told, like in a backtest
    eng.step_until(T0 + 70 * MS)
    assert journal_of(eng, oid)[-1][:3] == (T0 + 62 * MS, ST_ACCEPTED, ST_FILLED)
    assert eng.state.pi[0, 0, PI_POS] == 1
    assert eng.now == T0 + 70 * MS
    f = eng.fills()  # the fills table, as in a backtest (at the report's arrival time)
    assert [(int(f["ts"][0]), int(f["oid"][0]), int(f["price"][0]), int(f["qty"][0]))] == [
        (T0 + 62 * MS, oid, 9_900, 1)
    ]
    assert f["fee"][0] == pytest.approx(9_900 * 0.01 * 0.0002)


def test_cancels_and_amends_go_out_and_their_answers_apply():
    eng, m = _live()
    eng.push_events(m.events())
    eng.step_until(T0 + 2 * MS)
    oid = eng.command(Command(CMD_MANUAL_LIMIT, 0, BUY, 9_900, 4))
    eng.acknowledge(oid, R_VENUE_ACK, T0 + 3 * MS)
    eng.step_until(T0 + 4 * MS)
    eng.command(Command(CMD_AMEND, a=oid, c=9_905, d=3))
    eng.amended(oid, 9_905, 3, 0, T0 + 5 * MS)
    eng.step_until(T0 + 6 * MS)
    assert eng.state.pi[-1, 0, PI_OPEN_BUY] == 3
    assert journal_of(eng, oid)[-1][2:] == (ST_ACCEPTED, 0, 9_905, 3)
    eng.command(Command(1))  # cancel all
    eng.report(oid, ST_CANCELED, R_CANCELED, T0 + 7 * MS)
    eng.step_until(T0 + 8 * MS)
    kinds = [(o.kind, o.price, o.qty) for o in eng.take_outbox()]
    assert kinds == [(OUT_NEW, 9_900, 4), (OUT_AMEND, 9_905, 3), (OUT_CANCEL, 9_905, 3)]
    assert journal_of(eng, oid)[-1][2] == ST_CANCELED
    assert eng.state.pi[-1, 0, PI_OPEN_BUY] == 0
    assert REPORT_AMENDED < 0


def test_no_orders_while_the_book_resyncs_but_flatten_goes():
    eng, m = _live()
    eng.push_events(m.events())
    eng.step_until(T0 + 2 * MS)
    oid = eng.command(Command(CMD_MANUAL_MARKET, 0, BUY, 0, 2))
    eng.fill(oid, 2, 10_010, 1, T0 + 3 * MS)
    eng.step_until(T0 + 4 * MS)
    eng.set_in_sync(0, False)
    assert eng.command(Command(CMD_MANUAL_LIMIT, 0, SELL, 10_100, 1)) == -R_BOOK_NOT_IN_SYNC
    assert eng.command(Command(CMD_FLATTEN)) == 1
    assert [o.side for o in eng.take_outbox()][-1] == SELL


def test_the_venue_minimum_notional_is_checked_before_sending():
    eng, m = _live()
    eng.set_min_notional(0, 500.0)  # 5 lots of 100.00
    eng.push_events(m.events())
    eng.step_until(T0 + 2 * MS)
    assert eng.command(Command(CMD_MANUAL_LIMIT, 0, BUY, 9_900, 4)) == -R_BELOW_MIN_NOTIONAL
    assert eng.command(Command(CMD_MANUAL_LIMIT, 0, BUY, 10_000, 5)) >= 0
    assert len(eng.take_outbox()) == 1


def test_timers_follow_the_wall_clock():
    eng, m = _live(strategies.Scripted, [{"timer_at": T0 + 30 * MS, "at": 0}])
    eng.push_events(m.events()[:3])
    eng.step_until(T0 + 30 * MS - 1)
    assert eng.rows[0]["n_tick"] == 0
    eng.step_until(T0 + 30 * MS)
    assert eng.rows[0]["n_tick"] == 1
    eng.step_until(T0 + 31 * MS)  # on_tick re-armed itself 1 ms later
    assert eng.rows[0]["n_tick"] == 2


def test_a_small_buffer_is_compacted_as_events_are_processed():
    m = Market()
    for k in range(200):
        m.tick(T0 + k * MS)
    eng = LiveEngine(m.instruments, capacity=64)
    rows = m.events()
    for k in range(0, 200, 20):
        eng.push_events(rows[k : k + 20])
        eng.step_until(T0 + (k + 20) * MS)
    assert eng.events_processed == 200
    with pytest.raises(UsageError, match="goes back"):
        eng.push_events(rows[:1])


def test_same_inputs_same_bytes():
    def session() -> str:
        eng, m = _live(strategies.Scripted, [{"price": 9_900, "at": 1, "again": 3}])
        eng.push_events(m.events())
        eng.step_until(T0 + 15 * MS)
        for o in eng.take_outbox():
            eng.acknowledge(o.oid, R_VENUE_ACK, T0 + 16 * MS)
        eng.step_until(T0 + 40 * MS)
        for o in eng.take_outbox():
            eng.fill(o.oid, 1, 9_900, LIQ_MAKER, T0 + 41 * MS)
        eng.step_until(T0 + 60 * MS)
        eng.finish()
        return eng.journal_hash()

    assert session() == session()


def test_steps_skip_the_dispatcher_and_give_the_same_bytes():
    def session(direct: bool) -> tuple[str, object]:
        eng, m = _live(strategies.Scripted, [{"price": 9_900, "at": 1, "again": 3}])
        if not direct:
            eng._chunk_entry = False  # as if the dispatcher's key were not found
        eng.push_events(m.events())
        for k in range(1, 60):
            eng.step_until(T0 + k * MS)
            for o in eng.take_outbox():
                eng.acknowledge(o.oid, R_VENUE_ACK, T0 + (k + 1) * MS)
        entry = eng._chunk_entry
        eng.finish()
        return eng.journal_hash(), entry

    fast, entry = session(True)
    slow, none = session(False)
    assert callable(entry) and none is False
    assert fast == slow


def test_a_position_from_an_earlier_run_is_held_and_flatten_closes_it():
    eng, m = _live()
    eng.set_position(0, 7, 9_950.0)
    eng.push_events(m.events())
    eng.step_until(T0 + 2 * MS)
    assert eng.state.pi[-1, 0, PI_POS] == 7
    assert eng.command(Command(CMD_FLATTEN)) == 1
    out = eng.take_outbox()
    assert [(o.kind, o.side, o.qty) for o in out] == [(OUT_NEW, SELL, 7)]
    eng.fill(out[0].oid, 7, 9_990, 1, T0 + 3 * MS)
    eng.step_until(T0 + 4 * MS)
    pf = eng.state.pf[-1, 0]
    assert eng.state.pi[-1, 0, PI_POS] == 0
    assert pf[1] == pytest.approx((9_990 - 9_950) * 7 * 0.01)  # realised from the carried cost
    with pytest.raises(UsageError, match="no instrument 3"):
        eng.set_position(3, 1, 1.0)
