"""Determinism: the same data, configuration and commands give byte-identical results,
however the run is cut into chunks and across a checkpoint and restore."""

from __future__ import annotations

import numpy as np
import pytest

from engine.codes import STOP_END_OF_DATA
from engine.commands import CMD_FLATTEN, CMD_MANUAL_LIMIT, Command
from engine.config import EngineConfig, RiskLimits
from engine.runner import Engine, EngineError
from engine.synthetic import SyntheticConfig, generate
from tests.engine import strategies

CONFIG = EngineConfig(
    queue_model="proportional",
    equity_interval_ns=100_000_000,
    risk=RiskLimits(max_position=3, layer_levels=2, spoof_min_qty=2, spoof_ticks_away=1),
)


def make(config: EngineConfig = CONFIG) -> Engine:
    stream = generate(SyntheticConfig(n_events=4_000, seed=11, n_instruments=2))
    start = int(stream.events["ts_local"][0])
    instances = [
        {
            "instrument": m % 2,
            "qty": 1 + m % 2,
            "mode": m % 3,
            "step": 4 + m,
            "count": 9 + m,
            "timer_at": start + m,
        }
        for m in range(4)
    ]
    return Engine(stream, strategies.Churn, instances, config)


def arrays(eng: Engine) -> dict[str, np.ndarray]:
    """Every array of the engine state, by path, plus the strategy rows."""
    out = {"rows": eng.rows}

    def walk(prefix, obj):
        if isinstance(obj, np.ndarray):
            out[prefix] = obj
        else:
            for name in obj._fields:
                walk(f"{prefix}.{name}" if prefix else name, getattr(obj, name))

    walk("", eng.state)
    return out


def assert_same(a: Engine, b: Engine) -> None:
    assert a.journal_hash() == b.journal_hash()
    xa, xb = arrays(a), arrays(b)
    assert xa.keys() == xb.keys()
    for name in xa:
        assert xa[name].tobytes() == xb[name].tobytes(), name
    for table in ("journal", "fills", "alerts", "equity_curve"):
        ta, tb = getattr(a, table)(), getattr(b, table)()
        for col in ta:
            assert ta[col].tobytes() == tb[col].tobytes(), (table, col)


@pytest.fixture(scope="module")
def reference() -> Engine:
    eng = make()
    assert eng.run() == STOP_END_OF_DATA
    eng.finish()
    c = eng.counters()
    # The run exercises what determinism is about.
    assert c["fills"] > 30 and c["cancels"] > 500 and c["orders_denied"] > 100
    assert c["maker_fills"] > 10 and c["taker_fills"] > 10 and c["alerts"] > 100
    assert eng.rows["n_tick"].min() > 100
    return eng


def test_two_runs_are_identical(reference):
    again = make()
    again.run()
    again.finish()
    assert_same(reference, again)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_chunk_sizes_including_ones_give_the_same_run(reference, seed):
    rng = np.random.default_rng(seed)
    eng = make()
    calls = 0
    while True:
        n = 1 if rng.random() < 0.5 else int(rng.integers(2, 400))
        calls += 1
        if eng.run(max_events=n, chunk=int(rng.integers(1, 50))) == STOP_END_OF_DATA:
            break
    eng.finish()
    assert calls > 100
    assert_same(reference, eng)


def test_checkpoint_and_restore_finish_byte_identical(reference, tmp_path):
    rng = np.random.default_rng(7)
    total = reference.events_processed
    for cut in sorted(int(x) for x in rng.integers(1, total, size=3)):
        first = make()
        first.run(max_events=cut)
        assert first.events_processed == cut
        path = tmp_path / f"cut{cut}.ckpt"
        first.checkpoint(path)
        second = make()
        second.restore(path)
        assert second.events_processed == cut
        second.run()
        second.finish()
        assert_same(reference, second)
        # The interrupted engine itself also finishes identically.
        first.run()
        first.finish()
        assert_same(reference, first)


def test_checkpoint_keeps_commands_and_a_restored_run_replays_them(tmp_path):
    def session(eng: Engine, until: int) -> None:
        eng.run(max_events=500)
        eng.command(Command(CMD_MANUAL_LIMIT, 0, 1, 9_990, 2))
        eng.run(max_events=until - eng.events_processed)

    a = make()
    session(a, 1_500)
    a.checkpoint(tmp_path / "a.ckpt")
    a.command(Command(CMD_FLATTEN))
    a.run()
    a.finish()
    b = make()
    b.restore(tmp_path / "a.ckpt")
    assert [(c.kind, c.after_events) for c in b.commands] == [(CMD_MANUAL_LIMIT, 500)]
    b.command(Command(CMD_FLATTEN))
    b.run()
    b.finish()
    assert_same(a, b)
    c = make()
    c.replay_commands(a.commands)
    c.finish()
    assert c.journal_hash() == a.journal_hash()


def test_restore_refuses_a_checkpoint_of_another_run(tmp_path):
    eng = make()
    eng.run(max_events=10)
    eng.checkpoint(tmp_path / "x.ckpt")
    other = Engine(
        generate(SyntheticConfig(n_events=3_000, seed=11, n_instruments=2)),
        strategies.Churn,
        [{}],
    )
    with pytest.raises(EngineError, match="does not match"):
        other.restore(tmp_path / "x.ckpt")
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(EngineError, match="unreadable"):
        eng.restore(tmp_path / "bad.ckpt")


def test_different_configuration_gives_a_different_hash(reference):
    other = make(CONFIG.with_overrides(entry_latency_ns=2_000_000))
    other.run()
    other.finish()
    assert other.journal_hash() != reference.journal_hash()
