"""Commands from outside the loop: cancel all, flatten, halt/resume, stamping and replay."""

from __future__ import annotations

from engine.codes import (
    A_KILL_SWITCH,
    OF_FLATTEN,
    OT_MARKET,
    R_CANCEL_ALL,
    R_CANCELED,
    R_KILL_SWITCH,
    R_RESUME,
    R_RISK_HALTED,
    ST_CANCELED,
    ST_PENDING_CANCEL,
    ST_SUBMITTED,
    TS_ACTIVE,
    TS_HALTED,
)
from engine.commands import (
    CMD_CANCEL,
    CMD_CANCEL_ALL,
    CMD_FLATTEN,
    CMD_HALT,
    CMD_MANUAL_LIMIT,
    CMD_MANUAL_MARKET,
    CMD_RESUME,
    Command,
)
from engine.runner import Engine
from engine.state import (
    CK_TRADING_STATE,
    N_LIVE,
    O_FLAGS,
    O_OID,
    PI_OPEN_BUY,
    PI_OPEN_SELL,
    PI_POS,
    RI_OPEN_ORDERS,
)
from engine.stats import C_COMMANDS
from tests.engine import strategies
from tests.engine.market import BUY, MS, SELL, book_market, journal_of, run_to


def limit(eng: Engine, side: int, price: int, qty: int) -> int:
    return eng.command(Command(CMD_MANUAL_LIMIT, 0, side, price, qty))


def no_open_orders(eng: Engine) -> bool:
    st = eng.state
    return (
        st.ctl[N_LIVE] == 0
        and not st.ri[:, RI_OPEN_ORDERS].any()
        and not st.pi[:, :, PI_OPEN_BUY].any()
        and not st.pi[:, :, PI_OPEN_SELL].any()
    )


def test_cancel_all_leaves_no_open_orders_once_reports_arrive():
    eng = Engine(book_market().stream(), strategies.Scripted, [{"price": 9_800}])
    run_to(eng, 5 * MS)
    rested = [limit(eng, BUY, 9_900, 1), limit(eng, SELL, 10_100, 3)]
    run_to(eng, 10 * MS)
    in_flight = limit(eng, BUY, 9_950, 2)  # not at the venue yet
    assert eng.command(Command(CMD_CANCEL_ALL)) == 4
    assert eng.command(Command(CMD_CANCEL_ALL)) == 0  # all pending already
    run_to(eng, 11 * MS)
    assert not no_open_orders(eng)  # requests are on their way
    eng.run()
    assert no_open_orders(eng)
    for oid in [*rested, in_flight, int(eng.rows[0]["oid"])]:
        rows = journal_of(eng, oid)
        assert (10 * MS, ST_PENDING_CANCEL, R_CANCEL_ALL) in [(r[0], *r[2:4]) for r in rows]
        assert rows[-1][2:4] == (ST_CANCELED, R_CANCELED)
    assert eng.rows[0]["hist"] == 0x38  # the strategy saw accepted, then canceled


def test_cancel_of_one_order_and_of_an_unknown_one():
    eng = Engine(book_market().stream())
    run_to(eng, 5 * MS)
    oid = limit(eng, BUY, 9_900, 1)
    assert eng.command(Command(CMD_CANCEL, oid + 1)) == 0
    assert eng.command(Command(CMD_CANCEL, oid)) == 1
    eng.run()
    assert no_open_orders(eng)


def positions_then(eng: Engine) -> None:
    """Manual long 8 (market at 2 ms), strategy short 3 (market on its first message)."""
    run_to(eng, 2 * MS)
    eng.command(Command(CMD_MANUAL_MARKET, 0, BUY, 0, 8))
    limit(eng, BUY, 9_900, 1)  # a resting order flatten must cancel
    run_to(eng, 10 * MS)
    assert eng.state.pi[:, 0, PI_POS].tolist() == [-3, 8]


def test_flatten_closes_every_position_and_pressing_twice_sends_nothing_more():
    eng = Engine(
        book_market().stream(), strategies.Scripted, [{"otype": OT_MARKET, "side": SELL, "qty": 3}]
    )
    positions_then(eng)
    assert eng.command(Command(CMD_FLATTEN)) == 2
    flat = {int(o[O_OID]) for o in eng.state.o if o[O_OID] >= 0 and o[O_FLAGS] & OF_FLATTEN}
    assert len(flat) == 2
    assert eng.command(Command(CMD_FLATTEN)) == 0  # same instant
    run_to(eng, 10 * MS + MS // 2)
    assert eng.command(Command(CMD_FLATTEN)) == 0  # orders still on their way
    eng.run()
    assert eng.state.pi[:, 0, PI_POS].tolist() == [0, 0]
    assert no_open_orders(eng)
    assert eng.command(Command(CMD_FLATTEN)) == 0  # flat: nothing to do
    j = eng.journal()
    submitted = [
        (int(oid), int(q))
        for oid, to, q in zip(j["oid"], j["to_state"], j["qty"], strict=True)
        if to == ST_SUBMITTED and oid in flat
    ]
    assert sorted(q for _, q in submitted) == [3, 8]
    assert eng.counters()["invalid_transitions"] == 0


def test_halt_cancels_open_orders_and_denies_new_ones_until_resume():
    eng = Engine(book_market().stream(), strategies.Scripted, [{"price": 9_800, "again": 3}])
    run_to(eng, 5 * MS)
    resting = limit(eng, BUY, 9_900, 1)
    run_to(eng, 8 * MS)
    assert eng.command(Command(CMD_HALT)) == 2
    assert eng.state.ctl[CK_TRADING_STATE] == TS_HALTED
    assert limit(eng, BUY, 9_900, 1) == -R_RISK_HALTED
    run_to(eng, 25 * MS)
    assert no_open_orders(eng)
    assert journal_of(eng, resting)[-2][3] == R_KILL_SWITCH
    assert eng.rows[0]["ret2"] == -R_RISK_HALTED  # the strategy's order at 21 ms
    eng.command(Command(CMD_RESUME))
    assert eng.state.ctl[CK_TRADING_STATE] == TS_ACTIVE
    assert limit(eng, BUY, 9_900, 1) >= 0
    eng.run()
    al = eng.alerts()
    kill = [
        (int(r), int(t))
        for c, r, t in zip(al["code"], al["reason"], al["ts"], strict=True)
        if c == A_KILL_SWITCH
    ]
    assert kill == [(R_KILL_SWITCH, 8 * MS), (R_RESUME, 25 * MS)]


def test_commands_are_stamped_with_engine_time_and_event_count():
    eng = Engine(book_market().stream())
    eng.command(Command(CMD_CANCEL_ALL))
    run_to(eng, 5 * MS)
    limit(eng, BUY, 9_900, 1)
    eng.step(2)
    eng.command(Command(CMD_HALT))
    eng.run()
    stamps = [(c.kind, c.ts, c.after_events) for c in eng.commands]
    assert stamps == [
        (CMD_CANCEL_ALL, 0, 0),
        (CMD_MANUAL_LIMIT, 5 * MS, 6),  # the snapshot's 6 rows
        (CMD_HALT, 7 * MS, 8),  # the order's arrival (6 ms) and its acknowledgement (7 ms)
    ]
    assert [c.name for c in eng.commands] == ["cancel_all", "manual_limit", "halt"]
    assert eng.state.ctl[C_COMMANDS] == 3


def session(eng: Engine) -> None:
    """A person's session: orders, a flatten and a cancel-all at chosen moments."""
    run_to(eng, 5 * MS)
    limit(eng, BUY, 9_990, 2)
    limit(eng, SELL, 10_050, 1)
    eng.step(3)
    eng.command(Command(CMD_MANUAL_MARKET, 0, BUY, 0, 6))
    run_to(eng, 15 * MS)
    eng.command(Command(CMD_FLATTEN))
    run_to(eng, 33 * MS + 7)
    eng.command(Command(CMD_CANCEL_ALL))
    eng.run()
    eng.finish()


def test_replaying_the_command_journal_reproduces_the_run():
    def make():
        return Engine(
            book_market().stream(),
            strategies.Scripted,
            [{"price": 9_980, "qty": 2, "again": 4}, {"otype": OT_MARKET, "side": SELL}],
        )

    live = make()
    session(live)
    assert len(live.commands) == 5
    replay = make()
    replay.replay_commands(live.commands)
    replay.finish()
    assert [(c.kind, c.ts, c.after_events) for c in replay.commands] == [
        (c.kind, c.ts, c.after_events) for c in live.commands
    ]
    assert replay.journal_hash() == live.journal_hash()
    assert len(replay.journal()["ts"]) == 20
