"""Position drift bookkeeping (session_drift) and booking a fill the engine did not place
(session_positions.book_fill): pure, no venue."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from adapters.live.session_drift import DriftMonitor, drift_markers
from adapters.live.session_positions import book_fill
from engine.instruments import Instrument, InstrumentRegistry
from engine.live import LiveEngine
from engine.state import PF_COST, PF_REALIZED, PI_POS, PI_VOLUME

S = 1_000_000_000  # ns


def test_a_difference_is_an_alert_only_after_the_grace_period() -> None:
    m = DriftMonitor(2 * S)
    assert m.observe({"X": D(1)}, {"X": D(1)}, 0) == ([], [])
    assert m.observe({"X": D(1)}, {"X": D(2)}, 1 * S) == ([], [])  # differs since 1 s
    assert m.observe({"X": D(1)}, {"X": D(2)}, 2 * S) == ([], [])
    raised, cleared = m.observe({"X": D(1)}, {"X": D(2)}, 3 * S)
    assert [(d.symbol, d.engine, d.venue, d.seconds) for d in raised] == [("X", 1, 2, 2.0)]
    assert cleared == []
    assert m.observe({"X": D(1)}, {"X": D(2)}, 4 * S) == ([], [])  # raised once
    assert m.alerts()[0].seconds == 3.0  # the age keeps growing
    assert m.observe({"X": D(2)}, {"X": D(2)}, 5 * S) == ([], ["X"])
    assert m.alerts() == ()


def test_a_transient_difference_and_an_absent_venue_symbol() -> None:
    m = DriftMonitor(2 * S)
    m.observe({"X": D(0)}, {"X": D(1)}, 0)
    assert m.observe({"X": D(1)}, {"X": D(1)}, S) == ([], [])  # the fill caught up
    assert m.observe({"X": D(1)}, {"X": D(2)}, 2 * S) == ([], [])  # a new difference...
    assert m.observe({"X": D(1)}, {"X": D(2)}, 3 * S) == ([], [])  # ...timed from 2 s
    assert m.observe({"X": D(0)}, {}, 10 * S) == ([], [])  # venue silent about X: flat
    raised, _ = m.observe({"Y": D(1)}, {}, 20 * S)
    assert raised == []  # Y: first seen now
    (d,) = m.observe({"Y": D(1)}, {}, 22 * S)[0]
    assert d.text() == "Y engine 1 venue 0 (2.0s)"


def test_drift_markers() -> None:
    m = DriftMonitor(0)
    raised, _ = m.observe({"X": D("0.0010")}, {"X": D("0.00300000")}, 5)
    (marker,) = drift_markers(raised, [], True, 5)
    assert (marker.name, marker.data) == (
        "position_drift",
        {"symbol": "X", "engine": "0.001", "venue": "0.003", "halted": 1},
    )
    (ended,) = drift_markers([], ["X"], False, 6)
    assert (ended.name, ended.data) == ("position_drift_ended", {"symbol": "X"})


@pytest.fixture
def engine() -> LiveEngine:
    reg = InstrumentRegistry([Instrument("X", "binance", D("0.01"), D("0.001"))])
    return LiveEngine(reg)


def test_book_fill_opens_adds_reduces_and_flips_the_manual_row(engine: LiveEngine) -> None:
    st = engine.state
    row = st.pi.shape[0] - 1
    assert book_fill(engine, 0, 10, 1000) == 0.0  # buy 10 lots at 1000 ticks
    assert book_fill(engine, 0, 10, 2000) == 0.0  # 20 lots, average 1500 ticks
    assert (st.pi[row, 0, PI_POS], st.pf[row, 0, PF_COST]) == (20, 30_000.0)
    # Sell 5 at 1700: realized (1700 - 1500) ticks * 5 lots = 1000 ticks*lots = 0.01 quote
    assert book_fill(engine, 0, -5, 1700) == pytest.approx(0.01)
    assert st.pi[row, 0, PI_POS] == 15 and st.pf[row, 0, PF_COST] == 22_500.0
    # Sell 25 at 1400: 15 closed at -100 ticks each, 10 opened short at 1400
    assert book_fill(engine, 0, -25, 1400) == pytest.approx(-0.015)
    assert (st.pi[row, 0, PI_POS], st.pf[row, 0, PF_COST]) == (-10, -14_000.0)
    assert st.pf[row, 0, PF_REALIZED] == pytest.approx(-0.005)
    assert st.pi[row, 0, PI_VOLUME] == 50
    assert book_fill(engine, 0, 10, 1400) == pytest.approx(0.0)  # closes flat
    assert (st.pi[row, 0, PI_POS], st.pf[row, 0, PF_COST]) == (0, 0.0)
    assert int(st.pi[:row, 0, PI_POS].sum()) == 0  # strategy rows untouched


def test_overdue_names_the_differences_about_to_become_alerts() -> None:
    m = DriftMonitor(2 * S)
    m.observe({"X": D(1), "Y": D(0)}, {"X": D(2)}, 0)
    assert m.overdue(S) == [] and m.overdue(2 * S) == ["X"]
    m.observe({"X": D(1), "Y": D(0)}, {"X": D(2)}, 2 * S)  # raised
    assert m.overdue(3 * S) == []
