"""Measure opening a 10M-event native file, and show that opening does not read the data.

What is measured: wall time of `engine.data.native.open_native` on a file of N events (10M
by default, 400 MB) written once into a temporary directory: the header parse, the checks
against the file size and the `np.memmap` of the event array. Reported: the median of the
runs (9 by default), min and max, and the same for `read_native_header` alone. To show that
the data is not read, the process's resident memory (VmRSS) is sampled before opening, after
opening, and after touching every event (summing a column): opening should add next to
nothing, touching should add about the file's size (its pages mapped in).

The number that matters: median open time < 50 ms (TARGET_MS) for 10M events. A replay,
a backtest or the cockpit then starts on a day of data without a loading pause; a cost that
grew with the file would mean the data was being read.

The file is in the page cache after writing (opening does not depend on that: it reads
the header only).

    .venv/bin/python benchmarks/bench_native_open.py [--events 10000000] [--runs 9] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
import pyarrow

from engine.bench import machine as engine_machine
from engine.data.native import open_native, read_native_header, write_native
from engine.data.stream import EventStream
from engine.events import FLAG_LAST, KIND_BOOK_DELTA, SIDE_BUY, SIDE_SELL, empty_events
from engine.instruments import Instrument, InstrumentRegistry

TARGET_MS = 50.0
"""Median milliseconds to open the file at or below which opening is fast enough."""


def make_events(n: int) -> np.ndarray:
    """`n` plausible book deltas (contents do not matter to opening; every byte is set)."""
    ev = empty_events(n)
    i = np.arange(n, dtype=np.int64)
    ev["ts_local"] = 1_704_067_200_000_000_000 + i * 1_000
    ev["ts_exch"] = ev["ts_local"] - 200_000
    ev["price"] = 10_000 + (i * 7919) % 50
    ev["size"] = 1 + (i * 104_729) % 1_000
    ev["instrument"] = 0
    ev["kind"] = KIND_BOOK_DELTA
    ev["side"] = np.where(i % 2 == 0, SIDE_BUY, SIDE_SELL)
    ev["flags"] = FLAG_LAST
    return ev


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc), NaN elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


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


def timed_ms(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t) / 1e6)
    return out


def run(n: int, runs: int, directory: str | None) -> dict:
    """Write the file, time the opens, sample RSS; returns the figures."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = Path(tmp) / "bench.evt"
        events = make_events(n)
        registry = InstrumentRegistry([Instrument("SYN0", "synthetic", "0.01", "0.001")])
        t = time.perf_counter()
        size = write_native(EventStream(events, registry, {"source": "bench"}), path)
        write_s = time.perf_counter() - t
        checksum = int(events["size"].sum())
        del events

        open_native(path)  # warm-up: imports, the header in the page cache
        open_ms = timed_ms(lambda: open_native(path), runs)
        header_ms = timed_ms(lambda: read_native_header(path), runs)

        before = rss_mb()
        stream = open_native(path)
        after_open = rss_mb()
        touched = int(np.asarray(stream.events["size"]).sum())  # reads every page
        after_touch = rss_mb()
        assert touched == checksum, "the mapped data differs from what was written"
        assert isinstance(stream.events, np.memmap)
        mapped_type = type(stream.events).__name__
        del stream

    med = statistics.median(open_ms)
    return {
        "measured": "engine.data.native.open_native on a native event file (memory map)",
        "events": n,
        "file_bytes": size,
        "runs": runs,
        "write_s": round(write_s, 3),
        "open_ms_median": round(med, 3),
        "open_ms_min": round(min(open_ms), 3),
        "open_ms_max": round(max(open_ms), 3),
        "read_header_ms_median": round(statistics.median(header_ms), 3),
        "events_type": mapped_type,
        "rss_mb_before_open": round(before, 1),
        "rss_mb_after_open": round(after_open, 1),
        "rss_mb_after_touching_every_event": round(after_touch, 1),
        "target_ms": TARGET_MS,
        "within_target": med <= TARGET_MS,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures (text, or one JSON object with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events in the file")
    parser.add_argument("--runs", type=int, default=9, help="timed opens (median reported)")
    parser.add_argument("--dir", default=None, help="where to write the temporary file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.events < 1 or args.runs < 1:
        parser.error("--events and --runs must be at least 1")
    r = run(args.events, args.runs, args.dir)
    if args.json:
        print(json.dumps(r))
        return 0
    m = r["machine"]
    verdict = "within" if r["within_target"] else "ABOVE"
    print(f"measured: {r['measured']}")
    print(
        f"  {r['events']:,} events, {r['file_bytes'] / 1e6:,.0f} MB "
        f"(written in {r['write_s']} s), median of {r['runs']} opens"
    )
    print(
        f"  open: median {r['open_ms_median']:.3f} ms (min {r['open_ms_min']:.3f}, "
        f"max {r['open_ms_max']:.3f}); read_native_header alone: median "
        f"{r['read_header_ms_median']:.3f} ms; {verdict} the {TARGET_MS:.0f} ms target"
    )
    print(
        f"  not read at open: the events are a {r['events_type']}; resident memory "
        f"{r['rss_mb_before_open']:,.1f} MB before opening, {r['rss_mb_after_open']:,.1f} MB "
        f"after, {r['rss_mb_after_touching_every_event']:,.1f} MB after touching every event"
    )
    print(
        f"  machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, python {m['python']}, "
        f"numpy {m['numpy']}, numba {m['numba']}, pyarrow {m['pyarrow']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
