"""The example strategies compile, trade and behave on the synthetic market and real data.

Real data (../shared/data, see its README): the market maker and the momentum strategy run on
the Binance spot BTCUSDT capture of 2024-08-08; the pairs trader on BTCUSDT against ETHUSDT,
the spot captures of the same six minutes loaded together (two markets driven by one thing,
the classic stat-arb pair).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adapters.formats import load
from engine.config import EngineConfig
from engine.data.merge import merge_streams
from engine.runner import Engine
from engine.strategy import load_strategy_class
from engine.synthetic import SyntheticConfig, generate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BTC = "binance-ws/spot_btcusdt_20240808.gz"
ETH = "binance-ws/spot_ethusdt_20240808.gz"

# Parameters for the real captures: BTC at about 61,700 USDT is 6.17M ticks of 0.01, so
# thresholds in ticks are larger than on the synthetic market (100.00 with tick 0.01).
REAL_PARAMS = {
    "market_maker": {"half_spread": 0, "size": 200, "max_position": 2000},
    "momentum": {"threshold": 20.0, "size": 500, "stop_ticks": 200},
    "pairs_trader": {"size": 1000},  # value_ratio comes from the instruments, below
}


def strategy(name: str) -> type:
    return load_strategy_class(str(EXAMPLES / f"{name}.py"))


@pytest.fixture(scope="module")
def synthetic_one():
    return generate(SyntheticConfig(n_events=200_000, seed=11))


@pytest.fixture(scope="module")
def synthetic_two():
    return generate(
        SyntheticConfig(n_events=300_000, seed=11, n_instruments=2, start_price=("100.00", "50.00"))
    )


@pytest.fixture(scope="module")
def btc(shared_data):
    return load(shared_data / BTC)


@pytest.fixture(scope="module")
def btc_eth(shared_data):
    return merge_streams([load(shared_data / BTC), load(shared_data / ETH)])


def value_ratio(stream) -> float:
    """(tick1 * lot1) / (tick2 * lot2) of instruments 0 and 1: the pairs trader's value_ratio."""
    a, b = stream.instruments[0], stream.instruments[1]
    return float((a.tick_size * a.lot_size) / (b.tick_size * b.lot_size))


def run(stream, name: str, params: dict) -> Engine:
    eng = Engine(stream, strategy(name), [params], EngineConfig())
    eng.start()
    eng.run()
    eng.finish()
    return eng


def check_run(eng: Engine) -> None:
    """Orders went out and filled, every transition was valid, nothing raised."""
    c = eng.counters()
    assert c["orders_submitted"] > 10
    assert c["fills"] > 5
    assert c["invalid_transitions"] == 0
    assert eng.faults == []
    assert len(eng.fills()["qty"]) == c["fills"]


def positions_over_time(eng: Engine, inst: int) -> np.ndarray:
    """The position of instance 0 in `inst` after each of its fills (lots)."""
    f = eng.fills()
    mine = (f["strat"] == 0) & (f["inst"] == inst)
    return np.cumsum(f["side"][mine] * f["qty"][mine])


def test_every_example_is_one_strategy_class():
    for name in ("market_maker", "pairs_trader", "momentum"):
        cls = strategy(name)
        assert cls.__doc__ and cls.params
        module = __import__(cls.__module__)
        assert module.__doc__ and "Parameters" in module.__doc__


# ------------------------------------------------------------------------ market maker


def test_market_maker_synthetic(synthetic_one):
    params = {"half_spread": 1, "size": 100, "max_position": 500}
    eng = run(synthetic_one, "market_maker", params)
    check_run(eng)
    assert eng.counters()["maker_fills"] == eng.counters()["fills"]  # post-only: never takes
    # One order a side: the position never goes beyond the limit, even with partial fills.
    assert np.abs(positions_over_time(eng, 0)).max() <= 500
    assert run(synthetic_one, "market_maker", params).journal_hash() == eng.journal_hash()


def test_market_maker_skews_against_inventory(synthetic_one):
    """With a strong skew the inventory stays nearer flat than without."""
    base = {"half_spread": 1, "size": 100, "max_position": 2000}
    flat = positions_over_time(run(synthetic_one, "market_maker", {**base, "skew": 0.0}), 0)
    skewed = positions_over_time(run(synthetic_one, "market_maker", {**base, "skew": 2.0}), 0)
    assert np.abs(skewed).mean() < np.abs(flat).mean()


def test_market_maker_real(btc):
    eng = run(btc, "market_maker", REAL_PARAMS["market_maker"])
    check_run(eng)
    assert np.abs(positions_over_time(eng, 0)).max() <= 2000
    assert not eng.alerts()["code"].size  # no self-trades: quotes never cross our own
    assert run(btc, "market_maker", REAL_PARAMS["market_maker"]).journal_hash() == (
        eng.journal_hash()
    )


# ---------------------------------------------------------------------------- momentum


def test_momentum_synthetic(synthetic_one):
    eng = run(synthetic_one, "momentum", {})
    check_run(eng)
    assert eng.counters()["taker_fills"] == eng.counters()["fills"]  # market orders only
    size, units = 100, 3
    assert np.abs(positions_over_time(eng, 0)).max() <= size * units
    assert int(eng.rows[0]["entries"]) > 0
    assert run(synthetic_one, "momentum", {}).journal_hash() == eng.journal_hash()


def test_momentum_real(btc):
    params = REAL_PARAMS["momentum"]
    eng = run(btc, "momentum", params)
    check_run(eng)
    assert np.abs(positions_over_time(eng, 0)).max() <= params["size"] * 3
    assert int(eng.rows[0]["stops"]) > 0  # the trailing stop fires on this capture
    assert run(btc, "momentum", params).journal_hash() == eng.journal_hash()


# ------------------------------------------------------------------------ pairs trader


def test_pairs_trader_synthetic(synthetic_two):
    eng = run(synthetic_two, "pairs_trader", {})
    check_run(eng)
    f = eng.fills()
    assert set(np.unique(f["inst"])) == {0, 1}  # both legs trade
    row = eng.rows[0]
    assert int(row["entries"]) > 0 and int(row["exits"]) + int(row["stops"]) > 0
    assert run(synthetic_two, "pairs_trader", {}).journal_hash() == eng.journal_hash()


def test_pairs_trader_real(btc_eth):
    assert [i.symbol for i in btc_eth.instruments] == ["BTCUSDT", "ETHUSDT"]
    params = {**REAL_PARAMS["pairs_trader"], "value_ratio": value_ratio(btc_eth)}
    assert params["value_ratio"] == pytest.approx(0.1)
    eng = run(btc_eth, "pairs_trader", params)
    check_run(eng)
    f = eng.fills()
    tick = eng.state.instf[:, 0]
    lot = eng.state.instf[:, 1]
    value = f["price"] * tick[f["inst"]] * f["qty"] * lot[f["inst"]]
    v1, v2 = value[f["inst"] == 0].sum(), value[f["inst"] == 1].sum()
    # hedge_ratio 1: both legs trade about the same value (the hedge leg is rounded to lots
    # and the IOC orders can fill partially, so not exactly).
    assert 0.8 < v1 / v2 < 1.25
    # The legs never point the same way: orders only move each leg towards its target,
    # and the targets have opposite signs.
    signed = f["side"] * f["qty"]
    pos1 = np.cumsum(np.where(f["inst"] == 0, signed, 0))
    pos2 = np.cumsum(np.where(f["inst"] == 1, signed, 0))
    assert np.all(np.sign(pos1) * np.sign(pos2) <= 0)
    assert run(btc_eth, "pairs_trader", params).journal_hash() == eng.journal_hash()
