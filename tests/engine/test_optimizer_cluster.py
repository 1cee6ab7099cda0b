"""The optimizer on a Dask cluster (loopback only) gives the same run as local threads."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import UsageError
from engine.optimizer import OptimizeConfig, ParamSpec, optimize
from engine.strategy import load_strategy_class
from engine.synthetic import SyntheticConfig, generate

distributed = pytest.importorskip("distributed", reason="the 'cluster' extra is not installed")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIG = OptimizeConfig(
    space=(ParamSpec("threshold", 0.2, 4.0), ParamSpec("stop_ticks", 0, 40, integer=True)),
    fixed={"fast_ns": 300_000_000, "slow_ns": 3_000_000_000, "warmup_ns": 3_000_000_000},
    objective="pnl",
    budget=12,
    popsize=6,
    seed=11,
    holdout=0.3,
    workers=1,
)


@pytest.fixture(scope="module")
def momentum():
    return load_strategy_class(str(EXAMPLES / "momentum.py"))


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(n_events=20_000, seed=4, jump_rate=0.2, jump_size=0.003))


@pytest.fixture(scope="module")
def local(momentum, market):
    return optimize(market, momentum, CONFIG)


def _comparable(result) -> list[tuple]:
    return [
        (e.window, e.generation, e.index, sorted(e.params.items()), e.status, e.message,
         e.score, e.oos_score, sorted(e.stats_in.items()), sorted((e.stats_out or {}).items()))
        for e in result.evaluations
    ]  # fmt: skip


def _cluster(**kw):
    return distributed.LocalCluster(host="127.0.0.1", protocol="tcp", dashboard_address=None, **kw)


def test_a_cluster_of_threads_gives_the_local_result(momentum, market, local):
    with _cluster(n_workers=2, threads_per_worker=1, processes=False) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        remote = optimize(
            market, momentum, CONFIG.__class__(**{**vars(CONFIG), "cluster": address})
        )
    assert remote.backend == "dask" and remote.workers == 2
    assert _comparable(remote) == _comparable(local)
    assert remote.best_params == local.best_params
    assert remote.best_score == local.best_score and remote.best_oos_score == local.best_oos_score


@pytest.mark.slow
def test_a_cluster_of_processes_gives_the_local_result(momentum, market, local):
    # A separate worker process: the context really crosses the wire (pickled once) and the
    # worker loads the strategy from its source.
    with _cluster(n_workers=1, threads_per_worker=2, processes=True) as cluster:
        address = cluster.scheduler_address
        remote = optimize(
            market, momentum, CONFIG.__class__(**{**vars(CONFIG), "cluster": address})
        )
    assert remote.backend == "dask"
    assert _comparable(remote) == _comparable(local)


def test_an_unreachable_cluster_is_a_usage_error(momentum, market, monkeypatch):
    monkeypatch.setattr("engine.evaluation.CONNECT_TIMEOUT_S", 1.0)
    cfg = CONFIG.__class__(**{**vars(CONFIG), "cluster": "tcp://127.0.0.1:9"})
    with pytest.raises(UsageError, match="cannot connect"):
        optimize(market, momentum, cfg)
