"""After the data ends, set-parameter commands, StrategyRunner and user risk rules."""

from __future__ import annotations

import pytest
from numba import typeof

from engine.codes import (
    A_USER_RULE,
    R_RISK_USER_RULE,
    R_STRATEGY_STOPPED,
    R_VENUE_ACK,
    ST_ACCEPTED,
    ST_PENDING_CANCEL,
    ST_SUBMITTED,
)
from engine.commands import (
    CMD_FLATTEN,
    CMD_MANUAL_LIMIT,
    CMD_MANUAL_MARKET,
    CMD_SET_PARAM,
    CMD_STOP_STRATEGY,
    Command,
)
from engine.config import EngineConfig
from engine.errors import UsageError
from engine.risk_rules import RiskRuleError, compile_rule
from engine.runner import Engine
from engine.state import CI_RULE_ADDR, PI_POS
from engine.strategy_runner import StrategyRunner
from tests.engine import rules, strategies
from tests.engine.market import BUY, MS, SELL, book_market, fills_of, journal_of, run_to

# book_market(): snapshot at 1 ms, then idle rows at 11, 21, ..., 61 ms (7 messages)
LAST = 61 * MS


# ------------------------------------------------------------------ after the data


def test_an_order_sent_on_the_last_message_still_reaches_the_venue():
    eng = Engine(book_market().stream(), strategies.Scripted, [{"price": 9_900, "at": 7}])
    eng.run()
    oid = int(eng.rows[0]["oid"])
    assert journal_of(eng, oid)[-1] == (
        LAST + 2 * MS,
        ST_SUBMITTED,
        ST_ACCEPTED,
        R_VENUE_ACK,
        9_900,
        1,
    )
    assert eng.at_end and eng.rows[0]["hist"] == ST_ACCEPTED  # the strategy was told


def test_timers_due_after_the_data_do_not_fire_and_are_counted():
    eng = Engine(book_market().stream(), strategies.Scripted, [{"timer_at": 100 * MS, "at": 0}])
    eng.run()
    assert eng.rows[0]["n_tick"] == 0
    assert eng.counters()["timers_after_end"] == 1


def test_flatten_after_the_end_trades_against_the_last_book():
    eng = Engine(book_market().stream())
    run_to(eng, 2 * MS)
    eng.command(Command(CMD_MANUAL_MARKET, 0, BUY, 0, 3))
    eng.run()
    assert eng.state.pi[-1, 0, PI_POS] == 3
    assert eng.command(Command(CMD_FLATTEN)) == 1
    assert eng.state.pi[-1, 0, PI_POS] == 0  # processed at once: the venue still answers
    assert fills_of(eng)[-1] == (LAST + MS, SELL, 1, 9_990, 3)
    oid = eng.command(Command(CMD_MANUAL_LIMIT, 0, BUY, 9_900, 1))
    assert journal_of(eng, oid)[-1][2] == ST_ACCEPTED  # a person may still place orders


# ----------------------------------------------------------------- set parameter


def test_set_params_is_a_journaled_command_that_replays():
    inst = [{"price": 9_900, "at": 1, "again": 4}, {"price": 9_800, "at": 1, "again": 4}]
    eng = Engine(book_market().stream(), strategies.Scripted, inst)
    run_to(eng, 15 * MS)
    assert eng.set_params({"price": "9_850", "qty": 2}, instance=1) == {"price": 9_850, "qty": 2}
    eng.run()
    assert eng.rows["price"].tolist() == [9_900, 9_850]
    assert eng.rows["qty"].tolist() == [1, 2]
    cmd = eng.commands[-1]
    assert (cmd.kind, cmd.a, cmd.ts) == (CMD_SET_PARAM, 1, 15 * MS)
    again = Engine(book_market().stream(), strategies.Scripted, inst)
    again.replay_commands(eng.commands)
    assert again.journal_hash() == eng.journal_hash()
    assert again.rows.tobytes() == eng.rows.tobytes()


@pytest.mark.parametrize(
    ("params", "instance", "message"),
    [
        ({"nope": 1}, -1, "unknown parameter 'nope'"),
        ({"qty": "many"}, -1, "parameter 'qty' expects int"),
        ({"instrument": 1}, -1, "'instrument' cannot change on a running engine"),
        ({"qty": 2}, 5, "strategy instance 5 does not exist"),
    ],
)
def test_bad_parameters_are_refused_and_not_journaled(params, instance, message):
    eng = Engine(book_market().stream(), strategies.Scripted, [{}])
    with pytest.raises(UsageError, match=message):
        eng.set_params(params, instance=instance)
    assert eng.commands == []


# ------------------------------------------------------------------ StrategyRunner


def test_runner_stops_and_restarts_one_instance():
    inst = [{"price": 9_900, "at": 1}, {"price": 9_800, "at": 1, "again": 5}]
    runner = StrategyRunner(book_market().stream(), strategies.Scripted, inst)
    runner.start()
    run_to(runner.engine, 5 * MS)
    second = int(runner.engine.rows[1]["oid"])
    runner.stop(1)
    assert journal_of(runner.engine, second)[-1][2:4] == (ST_PENDING_CANCEL, R_STRATEGY_STOPPED)
    run_to(runner.engine, 30 * MS)
    status = runner.status()
    assert [(s.running, s.faulted, s.open_orders) for s in status] == [
        (True, False, 1),
        (False, False, 0),
    ]
    n_data = int(runner.engine.rows[1]["n_data"])
    runner.start(1)
    runner.run()
    assert runner.engine.rows[1]["n_data"] == n_data + 4  # 31, 41, 51, 61 ms
    assert runner.engine.faults == []
    runner.stop()
    kinds = [c.kind for c in runner.engine.commands]
    assert kinds[0] == CMD_STOP_STRATEGY and len(kinds) == 2


def test_runner_start_calls_on_start_again():
    runner = StrategyRunner(book_market().stream(), strategies.Raiser, [{}, {}])
    runner.start()
    runner.stop(0)
    runner.start(0)
    assert runner.engine.rows["tags"].tolist() == [2, 1]


def test_runner_save_reset_load_finishes_byte_identical(tmp_path):
    inst = [{"step": 3, "count": 4, "mode": 1, "timer_at": 5 * MS, "qty": 2}]
    runner = StrategyRunner(book_market(n_ticks=30, step=2 * MS).stream(), strategies.Churn, inst)
    run_to(runner.engine, 20 * MS)
    runner.save(tmp_path / "a.ckpt")
    runner.run()
    runner.stop()
    whole = runner.engine.journal_hash()
    fresh = runner.reset()
    assert fresh.events_processed == 0 and fresh.rows["n_data"].tolist() == [0]
    runner.load(tmp_path / "a.ckpt")
    runner.run()
    runner.stop()
    assert runner.engine.journal_hash() == whole


def test_stopping_an_instance_that_does_not_exist_is_a_usage_error():
    runner = StrategyRunner(book_market().stream(), strategies.Scripted, [{}])
    with pytest.raises(UsageError, match="instance 3 does not exist"):
        runner.stop(3)


# ------------------------------------------------------------------ user risk rules


def _rule_engine(rule, params=()) -> Engine:
    cfg = EngineConfig(risk_rule=rule, risk_rule_params=params)
    return Engine(book_market().stream(), config=cfg)


def test_a_user_rule_denies_with_its_code_and_flatten_is_exempt():
    eng = _rule_engine(rules.deny_big_sells, (4.0,))
    run_to(eng, 2 * MS)
    eng.command(Command(CMD_MANUAL_MARKET, 0, BUY, 0, 8))  # buys pass
    run_to(eng, 5 * MS)
    assert eng.command(Command(CMD_MANUAL_MARKET, 0, SELL, 0, 5)) == -R_RISK_USER_RULE
    al = eng.alerts()
    assert (int(al["code"][-1]), int(al["reason"][-1]), int(al["value"][-1])) == (
        A_USER_RULE,
        R_RISK_USER_RULE,
        5,
    )
    assert eng.command(Command(CMD_MANUAL_LIMIT, 0, SELL, 10_100, 4)) >= 0
    run_to(eng, 10 * MS)
    eng.command(Command(CMD_FLATTEN))  # one market sell of 8: the rule is not asked
    eng.run()
    assert eng.state.pi[-1, 0, PI_POS] == 0


def test_a_rule_sees_the_mid_and_its_params():
    eng = _rule_engine(rules.deny_far_from_mid, (15.0,))
    run_to(eng, 2 * MS)  # mid 10_000
    assert eng.command(Command(CMD_MANUAL_LIMIT, 0, BUY, 9_985, 1)) >= 0
    assert eng.command(Command(CMD_MANUAL_LIMIT, 0, BUY, 9_984, 1)) == -R_RISK_USER_RULE


def test_every_rule_gives_the_state_one_type_so_nothing_recompiles():
    a = _rule_engine(rules.deny_big_sells).state
    b = _rule_engine(rules.deny_far_from_mid).state
    c = _rule_engine(None).state
    assert typeof(a) == typeof(b) == typeof(c)
    assert a.ctl[CI_RULE_ADDR] != b.ctl[CI_RULE_ADDR] and c.ctl[CI_RULE_ADDR] == 0


def test_a_restored_checkpoint_keeps_this_process_rule(tmp_path):
    eng = _rule_engine(rules.deny_big_sells, (4.0,))
    run_to(eng, 2 * MS)
    eng.checkpoint(tmp_path / "c.ckpt")
    other = _rule_engine(rules.deny_far_from_mid, (15.0,))
    other.restore(tmp_path / "c.ckpt")
    assert (
        other.state.ctl[CI_RULE_ADDR]
        == _rule_engine(rules.deny_far_from_mid).state.ctl[CI_RULE_ADDR]
    )


def test_rules_that_cannot_be_used_say_why():
    with pytest.raises(RiskRuleError, match="wrong_arity: takes 3 arguments, expected 9"):
        compile_rule(rules.wrong_arity)
    with pytest.raises(RiskRuleError, match="not_numba: numba cannot compile it"):
        compile_rule(rules.not_numba)
