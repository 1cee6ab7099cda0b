"""Portfolio accounting: average price, realised and unrealised PnL, flips, fees, equity."""

from __future__ import annotations

import pytest

from engine.codes import SIDE_BUY_CODE, SIDE_SELL_CODE
from engine.commands import CMD_MANUAL_LIMIT, CMD_MANUAL_MARKET, Command
from engine.config import EngineConfig, configure
from engine.portfolio import apply_fill, equity, unrealized
from engine.runner import Engine
from engine.state import (
    MK_MARK_X2,
    PF_COST,
    PF_FEES,
    PF_REALIZED,
    PI_POS,
    PI_VOLUME,
    new_state,
)
from tests.engine.market import BUY, MS, Market, run_to


def state():
    """Tick 0.01, lot 1: money = ticks * lots / 100."""
    m = Market(n_instruments=2)
    st = new_state(2, 1)
    configure(st, EngineConfig(), m.instruments)
    return st


def test_average_price_realised_pnl_on_partial_close_and_flip():
    st = state()
    pi, pf = st.pi[0, 0], st.pf[0, 0]
    apply_fill(st, 0, 0, SIDE_BUY_CODE, 10_000, 10, 0.5)
    apply_fill(st, 0, 0, SIDE_BUY_CODE, 10_200, 10, 0.25)
    assert pi[PI_POS] == 20
    assert pf[PF_COST] / pi[PI_POS] == 10_100  # average price, ticks
    assert pf[PF_REALIZED] == 0.0
    # Partial close: 5 sold 2 points above the average.
    apply_fill(st, 0, 0, SIDE_SELL_CODE, 10_300, 5, 0.0)
    assert pi[PI_POS] == 15
    assert pf[PF_REALIZED] == pytest.approx(10.0, abs=1e-12)
    assert pf[PF_COST] / pi[PI_POS] == pytest.approx(10_100)  # unchanged by a close
    # Flip: sell 25 at 100.00 closes 15 at a loss of 1.00 each and opens 10 short at 100.00.
    apply_fill(st, 0, 0, SIDE_SELL_CODE, 10_000, 25, 0.0)
    assert pi[PI_POS] == -10
    assert pf[PF_REALIZED] == pytest.approx(10.0 - 15.0, abs=1e-12)
    assert pf[PF_COST] == pytest.approx(-100_000.0)
    assert pi[PI_VOLUME] == 50
    assert pf[PF_FEES] == pytest.approx(0.75)
    # Cover exactly: flat, no cost left.
    apply_fill(st, 0, 0, SIDE_BUY_CODE, 9_950, 10, 0.0)
    assert pi[PI_POS] == 0
    assert pf[PF_COST] == 0.0
    assert pf[PF_REALIZED] == pytest.approx(-5.0 + 5.0, abs=1e-12)


def test_short_side_accounting_mirrors_the_long_side():
    st = state()
    apply_fill(st, 0, 0, SIDE_SELL_CODE, 10_000, 4, 0.0)
    apply_fill(st, 0, 0, SIDE_SELL_CODE, 10_100, 4, 0.0)
    assert st.pf[0, 0, PF_COST] / st.pi[0, 0, PI_POS] == 10_050
    apply_fill(st, 0, 0, SIDE_BUY_CODE, 9_950, 2, 0.0)  # buy back 1.00 below the average
    assert st.pf[0, 0, PF_REALIZED] == pytest.approx(2.0, abs=1e-12)
    assert st.pi[0, 0, PI_POS] == -6


def test_unrealised_at_the_mark_and_equity():
    st = state()
    apply_fill(st, 0, 0, SIDE_BUY_CODE, 10_000, 10, 0.5)
    assert unrealized(st, 0, 0) == 0.0  # no mark yet
    st.mk[0, MK_MARK_X2] = 2 * 10_050
    assert unrealized(st, 0, 0) == pytest.approx(5.0, abs=1e-12)
    apply_fill(st, 0, 1, SIDE_SELL_CODE, 5_000, 2, 0.1)
    st.mk[1, MK_MARK_X2] = 2 * 5_100 + 1  # a half-tick mid
    assert unrealized(st, 0, 1) == pytest.approx(-2.01, abs=1e-12)
    assert equity(st, 0) == pytest.approx(5.0 - 2.01 - 0.6, abs=1e-12)
    assert equity(st, 1) == 0.0  # the manual row has nothing


def equity_market() -> Market:
    m = Market()
    m.snapshot(MS, bids=[(9_990, 10)], asks=[(10_010, 10)])
    for k in range(1, 5):
        m.tick(MS + k * 10 * MS)
    m.snapshot(51 * MS, bids=[(10_090, 10)], asks=[(10_110, 10)])
    m.tick(61 * MS)
    return m


def test_equity_curve_samples_positions_and_pnl():
    eng = Engine(equity_market().stream(), config=EngineConfig(equity_interval_ns=10 * MS))
    run_to(eng, 5 * MS)
    eng.command(Command(CMD_MANUAL_MARKET, 0, BUY, 0, 4))  # 4 @ 100.10, fee 0.2002
    eng.run()
    eng.finish()
    curve = eng.equity_curve()
    fee = 10_010 * 4 * 0.01 * 0.0005
    # Samples every 10 ms from the first event on, then one when the run finishes.
    assert curve["ts"].tolist() == [11 * MS, 21 * MS, 31 * MS, 41 * MS, 51 * MS, 61 * MS, 61 * MS]
    assert curve["position"].tolist() == [4] * 7
    at_100 = (10_000 - 10_010) * 4 * 0.01 - fee
    at_101 = (10_100 - 10_010) * 4 * 0.01 - fee
    # The 51 ms sample is taken as the clock reaches it, before that snapshot applies.
    assert curve["equity"].tolist() == pytest.approx([at_100] * 5 + [at_101] * 2, abs=1e-9)


def test_manual_and_strategy_rows_are_kept_apart():
    eng = Engine(equity_market().stream())
    run_to(eng, 5 * MS)
    eng.command(Command(CMD_MANUAL_LIMIT, 0, BUY, 9_900, 3))  # rests
    eng.command(Command(CMD_MANUAL_MARKET, 0, BUY, 0, 2))
    eng.run()
    assert eng.state.pi[:, 0, PI_POS].tolist() == [0, 2]  # row 0 unused, row 1 manual
