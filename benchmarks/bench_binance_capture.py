"""Measure load_binance_capture throughput on the recorded Binance WebSocket captures.

What it measures: wall time of `adapters.binance_ws.load_binance_capture` (gzip
decompression, the per-line orjson parse, depth sync, exact decimal conversion, tick
inference, event building) for every file in ../shared/data/binance-ws (beside the
checkout), each loaded `--runs` times after one warm-up load. Reported per file and in
total: the median of messages (lines) per second and of depth level updates per second.
It also times the floor the Python loop cannot beat: decompression alone, and
decompression plus `orjson.loads` of every line, so the share of JSON parsing is visible.

The number that matters: >= 150,000 messages/s (TARGET_MSGS_PER_S) over all files. A day of
USD-M BTCUSDT at the recorded rate (about 270 messages/s, 23 M a day) then loads in about
2.5 minutes; below it a day's replay is dominated by loading.

    .venv/bin/python benchmarks/bench_binance_capture.py [--runs 5] [--dir PATH] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import io
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.binance_ws import load_binance_capture  # noqa: E402

TARGET_MSGS_PER_S = 150_000
"""Median messages per second over all files at or above which loading is fast enough."""
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance-ws"


def _lines(path: Path):
    return io.BufferedReader(gzip.GzipFile(path, "rb"), 1 << 20)


def floor_times(path: Path) -> tuple[float, float]:
    """Seconds to decompress and split the lines, and to also orjson-parse each line."""
    t = time.perf_counter()
    with _lines(path) as f:
        for _ in f:
            pass
    read_s = time.perf_counter() - t
    loads = orjson.loads
    t = time.perf_counter()
    with _lines(path) as f:
        for line in f:
            loads(line[line.find(b" ") + 1 :])
    return read_s, time.perf_counter() - t


def bench_file(path: Path, runs: int) -> dict:
    """Median throughput of `runs` loads of one file (after a warm-up load)."""
    stream = load_binance_capture(path)
    msgs, levels = stream.meta["lines"], stream.meta["level_updates"]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        load_binance_capture(path)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    read_s, parse_s = floor_times(path)
    return {
        "file": path.name,
        "messages": msgs,
        "level_updates": levels,
        "events": len(stream.events),
        "median_s": med,
        "msgs_per_s": msgs / med,
        "levels_per_s": levels / med,
        "read_s": read_s,
        "read_parse_s": parse_s,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed loads per file")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="folder of captures")
    parser.add_argument("--profile", action="store_true", help="cProfile one load of each")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    files = sorted(p for p in args.dir.glob("*") if p.is_file() and not p.name.startswith("."))
    if not args.dir.is_dir() or not files:
        print(
            f"no Binance captures found in {args.dir}: this benchmark reads the recorded data "
            "in ../shared/data/binance-ws beside the checkout (or pass --dir)",
            file=sys.stderr,
        )
        return 2
    print("measured: adapters.binance_ws.load_binance_capture on recorded captures")
    print(f"  median of {args.runs} loads per file after a warm-up load")
    print(
        f"  {'file':<28}{'messages':>10}{'levels':>10}{'median s':>10}"
        f"{'msgs/s':>10}{'levels/s':>11}{'  read s':>9}{' +json s':>9}"
    )
    results = [bench_file(p, args.runs) for p in files]
    for r in results:
        print(
            f"  {r['file']:<28}{r['messages']:>10,}{r['level_updates']:>10,}"
            f"{r['median_s']:>10.3f}{r['msgs_per_s']:>10,.0f}{r['levels_per_s']:>11,.0f}"
            f"{r['read_s']:>9.3f}{r['read_parse_s']:>9.3f}"
        )
    total_s = sum(r["median_s"] for r in results)
    msgs = sum(r["messages"] for r in results)
    levels = sum(r["level_updates"] for r in results)
    json_s = sum(r["read_parse_s"] - r["read_s"] for r in results)
    read_s = sum(r["read_s"] for r in results)
    rate = msgs / total_s
    verdict = "within" if rate >= TARGET_MSGS_PER_S else "BELOW"
    print(
        f"  total: {msgs:,} messages, {levels:,} level updates in {total_s:.3f} s = "
        f"{rate:,.0f} messages/s, {levels / total_s:,.0f} level updates/s; "
        f"{verdict} the {TARGET_MSGS_PER_S:,} messages/s target"
    )
    print(
        f"  of which gzip+line split {read_s / total_s:.0%}, orjson.loads {json_s / total_s:.0%}, "
        f"the rest is the Python loop, sync and vectorised conversion"
    )
    print(
        f"  machine: {platform.processor() or platform.machine()}, {platform.platform()}, "
        f"python {platform.python_version()}, orjson {orjson.__version__}"
    )
    if args.profile:
        for p in files:
            prof = cProfile.Profile()
            prof.runcall(load_binance_capture, p)
            print(f"\nprofile of one load of {p.name}:")
            pstats.Stats(prof).sort_stats("tottime").print_stats(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
