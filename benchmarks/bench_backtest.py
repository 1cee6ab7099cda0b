"""Measure a headless backtest: the example market maker on 1M synthetic events.

Two scenarios, both on the seeded synthetic market (engine/synthetic.py, one instrument,
seed 7), the engine's default configuration (1 ms order entry and acknowledgement latency,
trades-only queue model) and the process pinned to one core:

1. One market maker (examples/market_maker.py, default parameters) over 1M data events.
   A warm-up run compiles the loop (or loads it from numba's cache); then `--runs` runs,
   each on a fresh engine (building it is not timed), time `Engine.run` to the end.
   Reported: events/s (data events plus the engine's own scheduled events: order arrivals,
   acknowledgements, fills and cancels) and data events/s (the 1M input events over the same
   time), median, min and max over the runs.
   The number that matters: median data events/s >= 5,000,000 (TARGET_EVENTS_PER_S).

2. 1,000 market makers with different parameters (half spread 0..4 ticks, size 50..500
   lots, skew 0..1.5, requote distance 1..3 ticks) over the same 1M events, one run after
   the warm-up of scenario 1. Every message reaches all 1,000 instances. Reported: events/s
   as above, hook calls, orders and fills, and memory: the engine state's arrays (nbytes of
   every array of EngineState plus the strategy rows), and the process's resident set size
   before building the engine and after the run (RSS delta) and its peak. The journal, fills
   and alerts the run produces are drained and dropped every `--chunk` events, as a long run
   would stream them to disk; their row counts and bytes are reported (`--keep` holds them in
   memory instead, and counts them in the RSS).

    .venv/bin/python benchmarks/bench_backtest.py [--events 1000000] [--runs 5]
        [--instances 1000] [--skip-many] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.bench import machine as engine_machine
from engine.config import EngineConfig
from engine.runner import Drained, Engine
from engine.strategy import load_strategy_class
from engine.synthetic import SyntheticConfig, generate

ROOT = Path(__file__).resolve().parents[1]
TARGET_EVENTS_PER_S = 5_000_000
"""Median data events/s of one market maker at or above which scenario 1 passes."""


def machine() -> dict[str, Any]:
    """What the figures were measured on (engine.bench.machine, plus pinning)."""
    return {
        **engine_machine(),
        "pinned_to": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
    }


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def state_nbytes(engine: Engine) -> int:
    """Bytes of every array of the engine state (book included) plus the strategy rows."""
    total = 0

    def walk(obj: Any) -> None:
        nonlocal total
        if isinstance(obj, np.ndarray):
            total += obj.nbytes
        else:
            for name in obj._fields:
                walk(getattr(obj, name))

    walk(engine.state)
    return total + engine.rows.nbytes


def drained_rows(d: Drained) -> tuple[int, int]:
    """(journal + fills + alerts + equity rows, their bytes) held in a Drained."""
    rows = nbytes = 0
    for chunks in (d.journal, d.fills, d.alerts, d.equity):
        rows += sum(len(c) for c in chunks)
    for chunks in (d.journal, d.fills, d.fees, d.alerts, d.equity, d.equity_value):
        nbytes += sum(c.nbytes for c in chunks)
    return rows, nbytes


def many_params(n: int) -> list[dict[str, Any]]:
    """Different parameters for each of n market makers (a deterministic grid)."""
    return [
        {
            "half_spread": i % 5,
            "size": 50 + 10 * (i % 46),
            "skew": (i % 7) * 0.25,
            "requote_ticks": 1 + i % 3,
            "max_position": 2000,
        }
        for i in range(n)
    ]


def one_maker(stream, cls, runs: int) -> dict[str, Any]:
    """Scenario 1: one market maker, `runs` timed runs after a warm-up."""
    warm = Engine(stream, cls, [{}], EngineConfig())
    t0 = time.perf_counter()
    warm.start()
    warm.run()
    warmup_s = time.perf_counter() - t0
    rates, data_rates, walls = [], [], []
    hashes = set()
    for _ in range(runs):
        eng = Engine(stream, cls, [{}], EngineConfig())
        eng.start()
        eng.run()
        rates.append(eng.events_processed / eng.wall_seconds)
        data_rates.append(eng.cursor / eng.wall_seconds)
        walls.append(eng.wall_seconds)
        eng.finish()
        hashes.add(eng.journal_hash())
    c = eng.counters()
    median_data = statistics.median(data_rates)
    return {
        "warmup_seconds": round(warmup_s, 3),
        "runs": runs,
        "events": eng.events_processed,
        "data_events": eng.cursor,
        "events_per_s_median": round(statistics.median(rates)),
        "events_per_s_min": round(min(rates)),
        "events_per_s_max": round(max(rates)),
        "data_events_per_s_median": round(median_data),
        "data_events_per_s_min": round(min(data_rates)),
        "data_events_per_s_max": round(max(data_rates)),
        "loop_seconds_median": round(statistics.median(walls), 4),
        "orders": c["orders_submitted"],
        "cancels": c["cancels"],
        "fills": c["fills"],
        "strategy_calls": c["strategy_calls"],
        "deterministic": len(hashes) == 1,
        "target_data_events_per_s": TARGET_EVENTS_PER_S,
        "meets_target": median_data >= TARGET_EVENTS_PER_S,
    }


def many_makers(stream, cls, n: int, chunk: int, keep: bool) -> dict[str, Any]:
    """Scenario 2: n market makers with different parameters, one run."""
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    eng = Engine(stream, cls, many_params(n), EngineConfig())
    build_s = time.perf_counter() - t0
    nbytes = state_nbytes(eng)
    eng.start()
    produced_rows = produced_bytes = 0
    while not eng.at_end:
        eng.run(max_events=chunk)
        eng.drain()
        if not keep:  # stream out: count what was produced, then let it go
            rows, b = drained_rows(eng.drained)
            produced_rows += rows
            produced_bytes += b
            eng.drained = Drained()
    if keep:
        produced_rows, produced_bytes = drained_rows(eng.drained)
    rss1 = rss_bytes()
    c = eng.counters()
    return {
        "instances": n,
        "build_seconds": round(build_s, 3),
        "events": eng.events_processed,
        "data_events": eng.cursor,
        "loop_seconds": round(eng.wall_seconds, 3),
        "events_per_s": round(eng.events_processed / eng.wall_seconds),
        "data_events_per_s": round(eng.cursor / eng.wall_seconds),
        "strategy_calls": c["strategy_calls"],
        "orders": c["orders_submitted"],
        "cancels": c["cancels"],
        "fills": c["fills"],
        "alerts": c["alerts"],
        "state_nbytes": nbytes,
        "rss_before_bytes": rss0,
        "rss_after_bytes": rss1,
        "rss_delta_bytes": rss1 - rss0,
        "peak_rss_bytes": peak_rss_bytes(),
        "output_rows": produced_rows,
        "output_bytes": produced_bytes,
        "outputs_kept_in_memory": keep,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--chunk", type=int, default=100_000, help="events between drains")
    ap.add_argument("--keep", action="store_true", help="keep journal/fills/alerts in memory")
    ap.add_argument("--skip-many", action="store_true", help="only scenario 1")
    ap.add_argument("--no-pin", action="store_true", help="do not pin to one core")
    ap.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = ap.parse_args()

    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cls = load_strategy_class(str(ROOT / "examples" / "market_maker.py"))
    t0 = time.perf_counter()
    stream = generate(SyntheticConfig(n_events=args.events, seed=7))
    gen_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "machine": machine(),
        "synthetic": {"events": args.events, "seed": 7, "generate_seconds": round(gen_s, 3)},
        "one_market_maker": one_maker(stream, cls, args.runs),
    }
    if not args.skip_many:
        out["many_market_makers"] = many_makers(stream, cls, args.instances, args.chunk, args.keep)
    if args.json:
        print(json.dumps(out, indent=1))
        return
    m = out["machine"]
    print(
        f"machine: {m['cpu']}, {m['cores']} cores (pinned to {m['pinned_to']}), "
        f"load {m['load_average_1m']}, Python {m['python']}, numba {m['numba']}"
    )
    one = out["one_market_maker"]
    print(
        f"one market maker, {one['data_events']:,} data events ({one['events']:,} with the "
        f"engine's own), median of {one['runs']} runs after warm-up:\n"
        f"  {one['data_events_per_s_median']:,} data events/s "
        f"(min {one['data_events_per_s_min']:,}, max {one['data_events_per_s_max']:,}); "
        f"{one['events_per_s_median']:,} events/s\n"
        f"  {one['orders']:,} orders, {one['cancels']:,} cancels, {one['fills']:,} fills; "
        f"target {TARGET_EVENTS_PER_S:,} data events/s: "
        f"{'met' if one['meets_target'] else 'NOT met'}; deterministic: {one['deterministic']}"
    )
    if "many_market_makers" in out:
        many = out["many_market_makers"]
        mib = 1 << 20
        print(
            f"{many['instances']:,} market makers, one run:\n"
            f"  {many['data_events_per_s']:,} data events/s, {many['events_per_s']:,} events/s "
            f"({many['loop_seconds']:.1f} s; {many['strategy_calls']:,} hook calls, "
            f"{many['orders']:,} orders, {many['fills']:,} fills, {many['alerts']:,} alerts)\n"
            f"  engine state {many['state_nbytes'] / mib:,.1f} MiB; RSS "
            f"{many['rss_before_bytes'] / mib:,.0f} -> {many['rss_after_bytes'] / mib:,.0f} MiB "
            f"(delta {many['rss_delta_bytes'] / mib:+,.0f} MiB, peak "
            f"{many['peak_rss_bytes'] / mib:,.0f} MiB); outputs {many['output_rows']:,} rows, "
            f"{many['output_bytes'] / mib:,.0f} MiB "
            f"({'kept' if many['outputs_kept_in_memory'] else 'drained and dropped'})"
        )


if __name__ == "__main__":
    main()
