"""The benchmark runs and its report is well formed (never a timing assertion)."""

from __future__ import annotations

from engine.bench import run_seed, seed_report, seed_stream
from engine.events import FLAG_LAST


def test_seed_stream_is_seeded_single_row_messages() -> None:
    a, b = seed_stream(5_000, seed=3), seed_stream(5_000, seed=3)
    assert a.events.tobytes() == b.events.tobytes()
    assert a.events.tobytes() != seed_stream(5_000, seed=4).events.tobytes()
    assert (a.events["flags"] & FLAG_LAST).all()
    assert (a.events["ts_local"][1:] > a.events["ts_local"][:-1]).all()


def test_seed_run_places_one_in_ten_and_cancels_the_rest() -> None:
    r = run_seed(5_000, ticks_per_ns=1.0)
    # 4,500 preloaded orders, then about 500 more; about 4,500 cancels.
    assert r.orders - 4_500 in range(400, 600)
    assert r.cancels in range(4_400, 4_600)
    assert r.counters["invalid_transitions"] == 0
    assert r.counters["orders_denied"] == 0
    # Every input event and every venue/OMS event it caused was timed once.
    assert r.loop_events == 5_000 + 2 * (r.orders - 4_500) + 2 * r.cancels


def test_seed_report_is_well_formed_and_deterministic() -> None:
    rep = seed_report(repeats=2, n_events=5_000)
    lat = rep["latency_ns_per_loop_event"]
    assert set(lat) == {"median", "p90", "p99", "p99_9", "max"}
    assert 0 < lat["median"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"] <= lat["max"]
    assert rep["deterministic"] is True
    assert rep["bytes_per_event"]["input_event"] == 40
    assert rep["bytes_per_event"]["allocated_in_loop"] == 0
    assert rep["clock_read_ns"] > 0
