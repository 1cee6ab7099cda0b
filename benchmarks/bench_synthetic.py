"""Measure the synthetic market generator: 1M events, median after a warm-up.

What is measured: wall time of `engine.synthetic.generate` for a config of N events (1M by
default, one instrument, seed 7, otherwise the defaults), after one warm-up call that
compiles the kernel or loads it from numba's cache (timed separately). Each run generates
the same bytes (checked). Reported: median, min and max seconds, and events per second.

The number that matters: median <= 0.5 s for 1M events (TARGET_S), i.e. >= 2M events/s.
The cockpit opens on the embedded 200k-event market, generated at start-up: at that rate it
costs 0.1 s, below what a person notices; tests and benchmarks that generate millions of
events stay quick too.

    .venv/bin/python benchmarks/bench_synthetic.py [--events 1000000] [--runs 7]
                                                   [--instruments 1] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import time

import numba
import numpy as np
import pyarrow

from engine.bench import machine as engine_machine
from engine.synthetic import SyntheticConfig, generate

TARGET_S = 0.5
"""Median seconds for 1M events at or below which generation is fast enough."""


def cpu_name() -> str:
    """The CPU model (engine.bench.machine reads /proc/cpuinfo)."""
    return engine_machine()["cpu"]


def machine() -> dict:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "pyarrow": pyarrow.__version__,
    }


def run(n: int, runs: int, instruments: int) -> dict:
    """Warm up, then time `runs` generations; returns the figures."""
    config = SyntheticConfig(n_events=n, seed=7, n_instruments=instruments)
    t = time.perf_counter()
    first = generate(config)
    warmup_s = time.perf_counter() - t
    digest = hashlib.sha256(first.events.tobytes()).hexdigest()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        stream = generate(config)
        times.append(time.perf_counter() - t)
        assert hashlib.sha256(stream.events.tobytes()).hexdigest() == digest, "not deterministic"
    med = statistics.median(times)
    # The target is stated for 1M events; scale it for other sizes.
    target = TARGET_S * n / 1_000_000
    return {
        "measured": "engine.synthetic.generate (seeded zero-intelligence market)",
        "events": n,
        "instruments": instruments,
        "messages": first.meta["counts"]["messages"],
        "runs": runs,
        "warmup_s_incl_compile_or_cache_load": round(warmup_s, 3),
        "median_s": round(med, 4),
        "min_s": round(min(times), 4),
        "max_s": round(max(times), 4),
        "events_per_s": round(n / med),
        "sha256": digest,
        "target_s": target,
        "within_target": med <= target,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures (text, or one JSON object with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events per generation")
    parser.add_argument("--runs", type=int, default=7, help="timed runs (median reported)")
    parser.add_argument("--instruments", type=int, default=1, help="instruments")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.instruments < 1:
        parser.error("--runs and --instruments must be at least 1")
    r = run(args.events, args.runs, args.instruments)
    if args.json:
        print(json.dumps(r))
        return 0
    m = r["machine"]
    verdict = "within" if r["within_target"] else "ABOVE"
    print(f"measured: {r['measured']}")
    print(
        f"  {r['events']:,} events ({r['messages']:,} venue messages), {r['instruments']} "
        f"instrument(s), median of {r['runs']} runs after a warm-up of "
        f"{r['warmup_s_incl_compile_or_cache_load']} s (compile or cache load)"
    )
    print(
        f"  median {r['median_s']:.3f} s (min {r['min_s']:.3f}, max {r['max_s']:.3f}) = "
        f"{r['events_per_s'] / 1e6:.2f} M events/s; {verdict} the {r['target_s']:.2f} s target"
    )
    print(
        f"  machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, python {m['python']}, "
        f"numpy {m['numpy']}, numba {m['numba']}, pyarrow {m['pyarrow']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
