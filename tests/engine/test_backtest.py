"""engine.backtest: the report's numbers agree with the fills, the metrics with hand sums,
and the Parquet files hold what the engine recorded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.backtest import (
    NS_PER_YEAR,
    OUTPUT_FILES,
    coerce_params,
    equity_on_grid,
    max_drawdown,
    run_backtest,
    sharpe_ratio,
)
from engine.codes import ALERT_NAMES, REASON_NAMES, ST_SUBMITTED, STATE_NAMES
from engine.config import EngineConfig, RiskLimits
from engine.errors import UsageError
from engine.state import IF_LOT, IF_MULT, IF_TICK, MK_MARK_X2
from engine.strategy import load_strategy_class
from engine.synthetic import SyntheticConfig, generate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def maker():
    return load_strategy_class(str(EXAMPLES / "market_maker.py"))


@pytest.fixture(scope="module")
def result(maker, tmp_path_factory):
    """The market maker on two synthetic instruments (one instance on each), with alerts:
    a tight position limit makes pre-trade risk deny some quotes."""
    stream = generate(SyntheticConfig(n_events=150_000, seed=5, n_instruments=2))
    config = EngineConfig(risk=RiskLimits(max_position=300), equity_interval_ns=500_000_000)
    out = tmp_path_factory.mktemp("backtest")
    params = [
        {"instrument": 0, "half_spread": 0, "size": 100, "max_position": 400},
        {"instrument": 1, "half_spread": 1, "size": 50, "max_position": 1000, "skew": 0.0},
    ]
    return run_backtest(stream, maker, params, config, capital=5_000.0, out_dir=out)


# ------------------------------------------------------------------- report vs fills


def test_total_pnl_is_cash_flows_plus_mark_to_market(result):
    eng, rep = result.engine, result.report
    f = eng.fills()
    assert rep.fills == len(f["qty"]) > 50
    st = eng.state
    money = st.instf[:, IF_TICK] * st.instf[:, IF_LOT] * st.instf[:, IF_MULT]
    inst = f["inst"]
    # Buying pays price * qty, selling receives it; fees are paid on top.
    cash = float(np.sum(-f["side"] * f["price"] * f["qty"] * money[inst])) - float(f["fee"].sum())
    mtm = 0.0
    for i in range(st.mk.shape[0]):
        pos = int(np.sum((f["side"] * f["qty"])[inst == i]))
        assert pos == rep.instruments[i]["position_lots"]
        mtm += pos * st.mk[i, MK_MARK_X2] / 2 * money[i]
    assert rep.total_pnl == pytest.approx(cash + mtm, abs=1e-9)
    assert rep.total_pnl == pytest.approx(rep.realized_pnl + rep.unrealized_pnl - rep.fees)
    assert rep.fees == pytest.approx(float(f["fee"].sum()))
    # The last equity sample (taken by finish) is the same number, computed by the engine.
    assert rep.total_pnl == pytest.approx(eng.equity_curve()["equity"][-1], abs=1e-9)
    assert rep.return_frac == pytest.approx(rep.total_pnl / 5_000.0)


def test_order_counts_and_ratios(result):
    eng, rep = result.engine, result.report
    j, f = eng.journal(), eng.fills()
    sent = j["to_state"] == ST_SUBMITTED
    assert rep.orders == int(sent.sum()) > 100
    assert rep.lots_sent == int(j["qty"][sent].sum())
    assert rep.lots_filled == int(f["qty"].sum())
    assert rep.orders_filled == len(set(f["cid"].tolist()))
    assert rep.fill_ratio == pytest.approx(rep.orders_filled / rep.orders)
    assert rep.order_to_trade == pytest.approx((rep.orders + rep.cancels) / rep.fills)
    assert rep.maker_fills + rep.taker_fills == rep.fills
    assert rep.invalid_transitions == 0
    # The position limit (300 lots) denies some of instance 0's quotes (400 allowed by it).
    assert rep.orders_denied > 0
    assert rep.rejections.get("risk_position_limit", 0) == rep.orders_denied
    assert rep.alerts == {"risk_denial": rep.orders_denied}
    assert rep.events == eng.events_processed and rep.data_events == 150_000
    assert rep.events_per_second and rep.events_per_second > 0


def test_report_metrics_match_the_curve(result):
    eng, rep = result.engine, result.report
    c = eng.equity_curve()
    start = int(eng.events["ts_local"][0])
    eq = np.concatenate([[0.0], c["equity"]])
    ts = np.concatenate([[start], c["ts"]])
    assert rep.max_drawdown == pytest.approx(max_drawdown(eq, 5_000.0)[0])
    grid = equity_on_grid(ts, eq, start, rep.end_ns, 500_000_000)
    assert rep.sharpe == pytest.approx(sharpe_ratio(grid, 5_000.0, 500_000_000))
    assert rep.sharpe_sample_ns == 500_000_000


# ------------------------------------------------------------------ metrics by hand


def test_equity_on_grid_carries_the_last_value_forward():
    ts = np.array([10, 25, 40])
    eq = np.array([1.0, 2.0, 3.0])
    got = equity_on_grid(ts, eq, 0, 50, 10)
    assert got.tolist() == [0.0, 1.0, 1.0, 2.0, 3.0, 3.0]  # grid 0, 10, ..., 50
    assert equity_on_grid(ts, eq, 0, 9, 10).tolist() == [0.0]
    with pytest.raises(UsageError):
        equity_on_grid(ts, eq, 0, 50, 0)


def test_sharpe_by_hand():
    # Equity 0, 1, 3, 2, 5 on capital 100: returns .01, .02, -.01, .03.
    r = [0.01, 0.02, -0.01, 0.03]
    mean = sum(r) / 4  # 0.0125
    var = sum((x - mean) ** 2 for x in r) / 3  # sample variance: 8.75e-4 / 3
    per_year = 365.25 * 24 * 3600  # one-second periods in a year
    want = mean / math.sqrt(var) * math.sqrt(per_year)
    got = sharpe_ratio(np.array([0.0, 1.0, 3.0, 2.0, 5.0]), 100.0, 1_000_000_000)
    assert got == pytest.approx(want, rel=1e-12)
    assert got == pytest.approx(4111.7, rel=1e-4)
    # Minute sampling: the same returns scale by sqrt(60) less.
    minute = sharpe_ratio(np.array([0.0, 1.0, 3.0, 2.0, 5.0]), 100.0, 60_000_000_000)
    assert minute == pytest.approx(want / math.sqrt(60))
    assert NS_PER_YEAR == per_year * 1e9


def test_sharpe_undefined_cases():
    assert sharpe_ratio(np.array([0.0, 1.0]), 100.0, 10) is None  # one return
    assert sharpe_ratio(np.array([0.0, 1.0, 2.0, 3.0]), 100.0, 10) is None  # no variation
    assert sharpe_ratio(np.zeros(0), 100.0, 10) is None
    with pytest.raises(UsageError):
        sharpe_ratio(np.array([0.0, 1.0, 3.0]), 0.0, 10)


def test_max_drawdown_by_hand():
    # Peaks 0, 5, 5, 8, 8, 8; falls 0, 0, 2, 0, 6, 4; worst 6 from the peak of 8.
    dd, frac = max_drawdown(np.array([0.0, 5.0, 3.0, 8.0, 2.0, 4.0]), 100.0)
    assert dd == 6.0
    assert frac == pytest.approx(6.0 / 108.0)
    assert max_drawdown(np.array([0.0, 1.0, 2.0]), 100.0) == (0.0, 0.0)  # never falls
    assert max_drawdown(np.zeros(0), 100.0) == (0.0, 0.0)
    dd, frac = max_drawdown(np.array([0.0, -3.0, -1.0]), 10.0)  # losing from the start
    assert (dd, frac) == (3.0, pytest.approx(0.3))


# ------------------------------------------------------------------------- the files


def test_parquet_files(result):
    eng, files = result.engine, result.files
    out = files["journal"].parent
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)

    j = pq.read_table(files["journal"])
    ej = eng.journal()
    assert j.num_rows == len(ej["ts"]) > 0
    assert (
        j.column_names
        == (
            "ts oid cid inst symbol strat from_state to_state reason price qty "
            "from_state_name to_state_name reason_name"
        ).split()
    )
    assert j["ts"].to_numpy().tolist() == ej["ts"].tolist()
    names = j["to_state_name"].to_pylist()
    assert names == [STATE_NAMES[int(s)] for s in ej["to_state"]]
    assert j["reason_name"].to_pylist() == [REASON_NAMES[int(r)] for r in ej["reason"]]
    assert set(j["symbol"].to_pylist()) == {"SYN0", "SYN1"}

    f = pq.read_table(files["fills"])
    ef = eng.fills()
    assert f.num_rows == len(ef["qty"]) == result.report.fills
    assert (
        f.column_names
        == (
            "ts oid cid inst symbol strat side liq price qty fee side_name liq_name "
            "price_value qty_value"
        ).split()
    )
    assert f["fee"].to_numpy().tolist() == ef["fee"].tolist()
    assert set(f["side_name"].to_pylist()) <= {"buy", "sell"}
    assert f["price_value"].to_numpy() == pytest.approx(ef["price"] * 0.01)
    assert f["qty_value"].to_numpy() == pytest.approx(ef["qty"] * 0.001)

    e = pq.read_table(files["equity"])
    ec = eng.equity_curve()
    assert e.column_names == ["ts", "equity", "position", "drawdown"]
    assert e.num_rows == len(ec["ts"]) > 100  # about one sample every 0.5 s
    assert e["drawdown"].to_numpy().max() == pytest.approx(result.report.max_drawdown)

    a = pq.read_table(files["alerts"])
    assert a.num_rows == len(eng.alerts()["code"]) == result.report.orders_denied
    assert set(a["code_name"].to_pylist()) == {ALERT_NAMES[1]}
    assert set(a["reason_name"].to_pylist()) == {"risk_position_limit"}

    inst = pq.read_table(files["instances"])
    assert inst.num_rows == 2
    assert inst["half_spread"].to_pylist() == [0, 1]
    assert sum(inst["equity"].to_pylist()) == pytest.approx(result.report.total_pnl)

    report = json.loads(files["report"].read_text())
    assert report == json.loads(json.dumps(result.report.to_dict()))


def test_empty_tables_are_written(maker, tmp_path):
    """A strategy that never trades (size above the order limit) still writes every file."""
    stream = generate(SyntheticConfig(n_events=5_000, seed=3))
    res = run_backtest(
        stream,
        maker,
        {"size": 10, "max_position": 0},  # no side may be quoted: never sends an order
        EngineConfig(),
        out_dir=tmp_path / "out",
    )
    assert res.report.orders == 0 and res.report.fills == 0
    assert res.report.fill_ratio is None and res.report.order_to_trade is None
    assert res.report.total_pnl == 0.0 and res.report.max_drawdown == 0.0
    for name in ("journal", "fills", "alerts"):
        assert pq.read_table(res.files[name]).num_rows == 0


# ---------------------------------------------------------------------- parameters


def test_coerce_params(maker):
    got = coerce_params(
        maker, {"size": "1_000", "skew": "0.25", "post_only": "no", "max_age_ns": "1e9"}
    )
    assert got == {"size": 1000, "skew": 0.25, "post_only": False, "max_age_ns": 10**9}
    assert coerce_params(maker, {"size": 5, "skew": 1, "post_only": True}) == {
        "size": 5,
        "skew": 1.0,
        "post_only": True,
    }
    for bad, match in [
        ({"sise": "1"}, "unknown parameter 'sise'"),
        ({"bid_oid": "1"}, "unknown parameter 'bid_oid'"),  # state, not a parameter
        ({"size": "abc"}, "parameter 'size' expects int"),
        ({"size": "1.5"}, "parameter 'size' expects int"),
        ({"size": True}, "parameter 'size' expects int"),
        ({"skew": "nan"}, "parameter 'skew' expects float"),
        ({"post_only": "maybe"}, "parameter 'post_only' expects bool"),
    ]:
        with pytest.raises(UsageError, match=match):
            coerce_params(maker, bad)


def test_run_backtest_rejects_bad_arguments(maker):
    stream = generate(SyntheticConfig(n_events=5_000, seed=3))
    with pytest.raises(UsageError, match="capital"):
        run_backtest(stream, maker, {}, capital=0.0)
    with pytest.raises(UsageError, match="sample_ns"):
        run_backtest(stream, maker, {}, sample_ns=-1)
    with pytest.raises(UsageError, match="unknown parameter"):
        run_backtest(stream, maker, [{}, {"nope": 1}])
