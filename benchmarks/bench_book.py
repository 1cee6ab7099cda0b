"""Measure the L2 book's update cost: `apply_events` over 1M synthetic deltas near the touch.

What is measured: wall time of one `engine.book.apply_events` call over N book deltas
(EVENT_DTYPE rows), on a book reset before every run (the reset is not timed), after a
warm-up run that also triggers compilation. Reported: the median over the runs of ns per
delta, the same as deltas per second, plus min and max.

The deltas: a random-walk mid; each delta is a bid or an ask 1..50 ticks from the mid
(geometric: near-touch levels are much more frequent), a size of 0 (remove) one time in
five and 1..1000 lots otherwise, plus the removals a feed sends when the mid moves (so the
book never crosses and holds about 40 levels a side). Seeded: every run sees the same data.

The number that matters: median ns per delta <= 30 (TARGET_NS). Above it, replaying a
day of a busy instrument's depth stream stops being a matter of seconds.

    .venv/bin/python benchmarks/bench_book.py [--n 1000000] [--runs 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numba
import numpy as np

from engine.bench import machine as engine_machine
from engine.book import apply_events, level_count, new_book
from engine.events import KIND_BOOK_DELTA, SIDE_BUY, SIDE_SELL, empty_events

TARGET_NS = 30.0
"""Median ns per delta at or below which the book is fast enough."""
WINDOW = 50
"""Levels live within this many ticks of the mid."""


def synthetic_deltas(n: int, n_instruments: int = 1, seed: int = 7) -> np.ndarray:
    """`n` book deltas around a random-walk mid per instrument (see the module docstring)."""
    rng = np.random.default_rng(seed)
    # Random deltas, then the removals a real feed sends when the mid moves are inserted
    # before the delta that first sees the new mid: the level the mid moved onto and the
    # level that left the 50-tick window on the other side. So the book never crosses and
    # each side holds at most 50 levels, as in a real depth stream.
    inst = rng.integers(0, n_instruments, n)
    step = rng.choice(np.array([-1, 0, 1]), size=n, p=[0.01, 0.98, 0.01])
    mid = np.zeros(n, np.int64)
    for i in range(n_instruments):
        mask = inst == i
        mid[mask] = 100_000 + np.cumsum(step[mask])
    side = np.where(rng.random(n) < 0.5, SIDE_BUY, SIDE_SELL)
    offset = np.minimum(rng.geometric(0.12, n), WINDOW)  # 1..50 ticks, mean about 8
    size = rng.integers(1, 1001, n)
    size[rng.random(n) < 0.2] = 0
    price = mid - side * offset

    moved = np.flatnonzero(step)
    up = step[moved] > 0  # up: the ask at the new mid goes, the bid 51 below the new mid goes
    m = mid[moved]
    rm_side = np.concatenate([np.where(up, SIDE_SELL, SIDE_BUY), np.where(up, SIDE_BUY, SIDE_SELL)])
    rm_price = np.concatenate([m, np.where(up, m - WINDOW - 1, m + WINDOW + 1)])
    order = np.argsort(
        np.concatenate([np.arange(n), np.tile(moved, 2)]) * 2
        + np.concatenate([np.ones(n, np.int64), np.zeros(2 * len(moved), np.int64)]),
        kind="stable",
    )[:n]
    ev = empty_events(n)
    ev["ts_local"] = np.arange(n, dtype=np.int64) * 1_000
    ev["ts_exch"] = ev["ts_local"]
    ev["instrument"] = np.concatenate([inst, np.tile(inst[moved], 2)])[order]
    ev["kind"] = KIND_BOOK_DELTA
    ev["side"] = np.concatenate([side, rm_side])[order]
    ev["price"] = np.concatenate([price, rm_price])[order]
    ev["size"] = np.concatenate([size, np.zeros(2 * len(moved), np.int64)])[order]
    return ev


def run(n: int, runs: int, n_instruments: int, capacity: int) -> dict:
    """Time `runs` passes over `n` deltas; returns the figures as a dict."""
    events = synthetic_deltas(n, n_instruments)
    t0 = time.perf_counter()
    book = new_book(n_instruments, capacity)
    apply_events(book, events, 0, len(events))  # compile (or load the cache) and warm up
    warmup_s = time.perf_counter() - t0
    times = []
    applied = 0
    for _ in range(runs):
        book = new_book(n_instruments, capacity)
        t = time.perf_counter_ns()
        applied = apply_events(book, events, 0, len(events))
        times.append(time.perf_counter_ns() - t)
    assert applied == n, (applied, n)
    per = [t / n for t in times]
    median = statistics.median(per)
    return {
        "measured": "engine.book.apply_events over synthetic L2 deltas near the touch",
        "deltas": n,
        "runs": runs,
        "instruments": n_instruments,
        "capacity": capacity,
        "levels_at_end": [
            [int(level_count(book, i, SIDE_BUY)), int(level_count(book, i, SIDE_SELL))]
            for i in range(n_instruments)
        ],
        "dropped": int(book.dropped.sum()),
        "median_ns_per_delta": round(median, 2),
        "min_ns_per_delta": round(min(per), 2),
        "max_ns_per_delta": round(max(per), 2),
        "deltas_per_s": round(1e9 / median),
        "target_ns_per_delta": TARGET_NS,
        "within_target": median <= TARGET_NS,
        "warmup_s_incl_compile": round(warmup_s, 3),
        "machine": {
            "processor": _cpu_name(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
        },
    }


def _cpu_name() -> str:
    """The CPU model (engine.bench.machine reads /proc/cpuinfo) and the architecture."""
    return f"{engine_machine()['cpu']} ({platform.machine()})"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures (a table, or JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="deltas per run")
    parser.add_argument("--runs", type=int, default=7, help="timed runs (median reported)")
    parser.add_argument("--instruments", type=int, default=1, help="instruments in the book")
    parser.add_argument("--capacity", type=int, default=4096, help="levels per side")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.n < 1 or args.runs < 1 or args.instruments < 1:
        parser.error("--n, --runs and --instruments must be at least 1")
    r = run(args.n, args.runs, args.instruments, args.capacity)
    if args.json:
        print(json.dumps(r))
        return 0
    m = r["machine"]
    verdict = "within" if r["within_target"] else "ABOVE"
    print(f"measured: {r['measured']}")
    print(
        f"  {r['deltas']:,} deltas, {r['instruments']} instrument(s), capacity {r['capacity']}, "
        f"median of {r['runs']} runs (warm-up incl. compile {r['warmup_s_incl_compile']} s)"
    )
    print(f"  levels at end (bid, ask): {r['levels_at_end']}, dropped: {r['dropped']}")
    print(
        f"  median {r['median_ns_per_delta']:.1f} ns/delta "
        f"(min {r['min_ns_per_delta']:.1f}, max {r['max_ns_per_delta']:.1f}) "
        f"= {r['deltas_per_s'] / 1e6:.1f} M deltas/s; "
        f"{verdict} the {TARGET_NS:.0f} ns target"
    )
    print(
        f"  machine: {m['processor']}, {m['platform']}, python {m['python']}, "
        f"numpy {m['numpy']}, numba {m['numba']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
