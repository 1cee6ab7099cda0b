"""The scheduled-event heap: order by (time, sequence), FIFO ties, overflow."""

from __future__ import annotations

import numpy as np
import pytest

from engine.codes import EV_ORDER_ARRIVE, EV_REPORT, EV_TIMER
from engine.config import EngineConfig
from engine.runner import Engine, EngineError
from engine.scheduler import NEVER, next_time, pop, schedule
from engine.state import CK_SEQ, N_HEAP, new_state
from engine.stats import C_HEAP_OVERFLOW
from tests.engine import strategies
from tests.engine.market import book_market


def drain_heap(st) -> list[tuple]:
    out = []
    while st.ctl[N_HEAP] > 0:
        out.append(tuple(int(x) for x in pop(st)))
    return out


def test_pop_order_is_time_then_scheduling_order():
    st = new_state(1, 0, heap_capacity=256)
    rng = np.random.default_rng(3)
    times = rng.integers(0, 20, size=200)  # many equal times
    for k, ts in enumerate(times):
        assert schedule(st, int(ts), EV_TIMER, k, k * 2, k * 3, k * 4)
    assert st.ctl[N_HEAP] == 200
    assert next_time(st) == times.min()
    got = drain_heap(st)
    expected = sorted(range(200), key=lambda k: (times[k], k))  # stable: FIFO within a time
    assert [g[0] for g in got] == [int(times[k]) for k in expected]
    assert [g[2] for g in got] == expected
    assert all(
        g[1] == EV_TIMER and g[3:] == (r * 2, r * 3, r * 4)
        for g, r in zip(got, expected, strict=True)
    )
    assert next_time(st) == NEVER
    # Popped entries are zeroed so equal states are byte-identical.
    assert not st.hp.any()


def test_ties_are_fifo_across_interleaved_pushes_and_pops():
    st = new_state(1, 0, heap_capacity=16)
    schedule(st, 5, EV_REPORT, 1, 0, 0, 0)
    schedule(st, 5, EV_REPORT, 2, 0, 0, 0)
    schedule(st, 3, EV_ORDER_ARRIVE, 3, 0, 0, 0)
    assert pop(st)[2] == 3
    schedule(st, 5, EV_REPORT, 4, 0, 0, 0)
    schedule(st, 4, EV_REPORT, 5, 0, 0, 0)
    assert [g[2] for g in drain_heap(st)] == [5, 1, 2, 4]
    assert st.ctl[CK_SEQ] == 5


def test_overflow_is_refused_and_counted():
    st = new_state(1, 0, heap_capacity=4)
    for k in range(4):
        assert schedule(st, 10 - k, EV_TIMER, k, 0, 0, 0)
    assert not schedule(st, 1, EV_TIMER, 99, 0, 0, 0)
    assert not schedule(st, 1, EV_TIMER, 98, 0, 0, 0)
    assert st.ctl[C_HEAP_OVERFLOW] == 2
    assert [g[2] for g in drain_heap(st)] == [3, 2, 1, 0]  # the heap itself is intact


def test_engine_raises_when_the_heap_overflows():
    # 40 orders sent at once need 40 arrival events in flight; the heap holds 16.
    cfg = EngineConfig(heap_capacity=16)
    eng = Engine(
        book_market().stream(),
        strategies.Scripted,
        [{"price": 9_900, "count": 40}],
        cfg,
    )
    with pytest.raises(EngineError, match="heap overflowed"):
        eng.run()
    # Enough room: the same run finishes.
    eng = Engine(
        book_market().stream(), strategies.Scripted, [{"price": 9_900, "count": 40}], EngineConfig()
    )
    eng.run()
    assert eng.at_end
    assert eng.rows[0]["ok"] == 40
