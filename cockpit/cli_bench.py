"""`cockpit bench`: the engine benchmark (engine/bench.py) as a command with a printed table."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.errors import UsageError

SCENARIOS = ("seed", "book", "mm", "real", "many", "cold", "app")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def add_parser(sub) -> None:
    """Register `cockpit bench`."""
    p = sub.add_parser("bench", help="engine benchmark: latency per event, throughput, cold start")
    p.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="seed (100k events, 10%% place / 90%% cancel: the published scenario), book "
        "(book-only replay), mm (market maker on synthetic), real (market maker on recorded "
        "data), many (1,000 strategies), cold (first run vs warm numba cache), app (`cockpit` "
        "started in a pseudo-terminal until its first frame, warm cache); default: seed",
    )
    p.add_argument("--events", type=int, default=None, help="input events (default per scenario)")
    p.add_argument("--repeats", type=int, default=5, help="runs per scenario (medians reported)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _mm_class():
    from engine.strategy import load_strategy_class

    return load_strategy_class(str(EXAMPLES / "market_maker.py"))


def _scenario(name: str, events: int | None, repeats: int) -> dict:
    from engine import bench
    from engine.synthetic import SyntheticConfig, generate

    if name == "seed":
        return bench.seed_report(repeats=repeats, n_events=events or 100_000)
    if name == "book":
        stream = generate(SyntheticConfig(n_events=events or 1_000_000, seed=7))
        return {"scenario": "book", **bench.throughput(stream, repeats=repeats)}
    if name == "mm":
        stream = generate(SyntheticConfig(n_events=events or 1_000_000, seed=7))
        return {"scenario": "mm", **bench.throughput(stream, _mm_class(), [{}], repeats)}
    if name == "real":
        from adapters.formats import load

        f = SHARED / "binance-ws" / "spot_btcusdt_20240808.gz"
        if not f.exists():
            raise UsageError(f"{f}: recorded data not found (../shared beside the checkout)")
        stream = load([f, f.with_name("spot_btcusdt_20240809.gz")])
        return {
            "scenario": "real",
            "file": f.name,
            **bench.throughput(stream, _mm_class(), [{}], repeats),
        }
    if name == "many":
        stream = generate(SyntheticConfig(n_events=events or 1_000_000, seed=7))
        inst = [{"half_spread": 1 + k % 7} for k in range(1000)]
        out = bench.throughput(stream, _mm_class(), inst, max(1, repeats // 2))
        return {"scenario": "many", "instances": 1000, **out}
    if name == "cold":
        return _cold_start()
    if name == "app":
        return _app_start(repeats)
    raise UsageError(f"unknown scenario {name!r}")


def _cold_start() -> dict:
    """Time a full seed run in a fresh process: empty numba cache (cold) vs filled (warm)."""
    code = "from engine.bench import run_seed; run_seed(20_000)"
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            times.append(time.perf_counter() - t0)
    return {"scenario": "cold", "cold_s": times[0], "warm_s": times[1]}


FIRST_FRAME_MARK = b"PAUSED"
"""Text of the status bar in the first complete frame (the app starts paused)."""


def _first_frame_s(timeout: float = 120.0) -> float:
    """Seconds from starting `cockpit` in a 120x40 pseudo-terminal to its first frame."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cockpit.cli_app", "--no-mouse"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""
    try:
        while time.perf_counter() - t0 < timeout:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                seen = (seen + chunk)[-4096:]
                if FIRST_FRAME_MARK in seen:
                    return time.perf_counter() - t0
            if proc.poll() is not None:
                break
        raise UsageError("cockpit did not show its first frame (see `cockpit` in a terminal)")
    finally:
        proc.kill()
        proc.wait()
        os.close(master)


def _app_start(repeats: int) -> dict:
    """`cockpit` to its first frame: one launch to fill the numba cache, then `repeats`."""
    import statistics

    _first_frame_s(timeout=900.0)  # a cold cache compiles here
    times = [_first_frame_s() for _ in range(max(1, repeats))]
    return {"scenario": "app", "first_frame_s": statistics.median(times), "runs_s": times}


def run(args: argparse.Namespace) -> int:
    """Run the chosen scenarios and print the report."""
    from engine.bench import machine

    if args.repeats < 1:
        raise UsageError("--repeats must be at least 1")
    if args.events is not None and args.events < 1000:
        raise UsageError("--events must be at least 1000")
    results = [_scenario(s, args.events, args.repeats) for s in (args.scenario or ["seed"])]
    report = {"machine": machine(), "results": results}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    _print(report)
    return 0


def _print(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False)
    m = report["machine"]
    con.print(f"[bold]cockpit bench[/] on {m['cpu']} ({m['cores']} cores, load {m['load_avg_1m']})")
    for r in report["results"]:
        if r["scenario"] == "seed":
            t = Table(title="seed: 100k events, 10% place / 90% cancel", title_justify="left")
            for col in (
                "median",
                "p90",
                "p99",
                "p99.9",
                "max",
                "bytes/event",
                "events/s",
                "deterministic",
            ):
                t.add_column(col, justify="right")
            lat = r["latency_ns_per_loop_event"]
            t.add_row(
                *(f"{lat[k] / 1000:.3f} µs" for k in ("median", "p90", "p99", "p99_9", "max")),
                str(r["bytes_per_event"]["input_event"]),
                f"{r['events_per_s']:,.0f}",
                "yes" if r["deterministic"] else "NO",
            )
            con.print(t)
            con.print(
                f"  one event = one loop iteration ({r['loop_events_per_run']:,} per run: data "
                f"events and the venue/OMS events they caused); {r['ns_per_input_event']:.0f} ns "
                f"per input event all included; clock read {r['clock_read_ns']:.1f} ns (included)"
            )
        elif r["scenario"] == "app":
            runs = ", ".join(f"{x:.2f}" for x in r["runs_s"])
            con.print(f"app: first frame of `cockpit` in {r['first_frame_s']:.2f} s (warm; {runs})")
        elif r["scenario"] == "cold":
            con.print(f"cold start {r['cold_s']:.1f} s, warm {r['warm_s']:.1f} s (20k-event run)")
        else:
            con.print(
                f"{r['scenario']}: {r['events']:,} events, {r['events_per_s']:,.0f} events/s, "
                f"{r.get('orders', 0):,} orders, {r.get('fills', 0):,} fills, deterministic "
                f"{'yes' if r['deterministic'] else 'NO'}"
            )
