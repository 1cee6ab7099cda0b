"""Measure the cockpit's responsiveness while the engine runs as fast as possible.

What is measured, on the seeded synthetic market (1M+ events) with a strategy (the example
market maker by default):

1. headless: the engine alone, `Engine.run` in chunks of about 25 ms (what the bridge uses),
   for `--seconds` of wall time or to the end of the data: events (data + scheduled) per s.
2. with the UI: the real CockpitApp, its bridge in a Textual thread worker at "as fast as
   possible", for the same time. Measured:
   - engine events per second (to compare with 1.),
   - frames per second: snapshots the UI drew (the poll timer runs at 20 Hz),
   - event-loop lag: how late a 10 ms asyncio sleep wakes (p50/p95/p99),
   - key latency, view path: from a key press ("]" / "[": ladder tick grouping) to the
     ladder drawing a row with the new grouping,
   - key latency, engine path: from a key press (space: pause, then play) through the
     engine thread and back to the status bar drawing "PAUSED" / "PLAYING".

The UI runs headless (Textual's `run_test` driver: every frame is composed, nothing is
written to a terminal), or with `--terminal` in a real pseudo-terminal under tmux (the same
measurement in a child process that writes its figures to a file).

The numbers that matter (the cockpit issue): frames/s >= 10, key latency p95 <= 100 ms on
both paths, and engine throughput with the UI >= 50 % of headless.

    .venv/bin/python benchmarks/bench_ui.py [--events 16000000] [--seconds 4] [--json]
        [--strategy examples/market_maker.py | none] [--terminal]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cockpit.app import CockpitApp  # noqa: E402
from cockpit.bridge import EngineBridge  # noqa: E402
from cockpit.replay_pacing import MAX_CHUNK_SECONDS  # noqa: E402
from cockpit.widgets.ladder import Ladder  # noqa: E402
from cockpit.widgets.status import StatusBar  # noqa: E402
from engine.runner import Engine  # noqa: E402
from engine.strategy import load_strategy_class  # noqa: E402
from engine.synthetic import SyntheticConfig, generate  # noqa: E402

TARGET_FPS = 10.0
TARGET_KEY_MS = 100.0
TARGET_RATIO = 0.5
KEY_EVERY = 0.5
"""Seconds between measured key presses."""


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def build(args: argparse.Namespace):
    """The stream and strategy (class, instances) for both runs."""
    stream = generate(SyntheticConfig(n_events=args.events, seed=7))
    if args.strategy == "none":
        return stream, None, []
    return stream, load_strategy_class(args.strategy), [{}]


def headless(stream, cls, instances, seconds: float) -> dict:
    """Engine alone, in chunks sized like the bridge's."""
    eng = Engine(stream, cls, instances)
    eng.start()
    eng.step(1000)  # warm: first chunk, buffers
    chunk = 20_000
    t0 = time.perf_counter()
    e0 = eng.events_processed
    while time.perf_counter() - t0 < seconds and not eng.at_end:
        c0 = time.perf_counter()
        before = eng.events_processed
        eng.run(max_events=chunk)
        dt = time.perf_counter() - c0
        if dt > 0:
            chunk = int(
                min(max((eng.events_processed - before) / dt * MAX_CHUNK_SECONDS, 1000), 5e6)
            )
    wall = time.perf_counter() - t0
    return {
        "events": eng.events_processed - e0,
        "seconds": wall,
        "events_per_s": (eng.events_processed - e0) / wall,
        "reached_end": eng.at_end,
    }


class _Probe:
    """Records when the ladder and the status bar draw, by wrapping their render methods."""

    def __init__(self) -> None:
        self.ladder_group: tuple[float, int] = (0.0, 0)
        self.status_text: tuple[float, str] = (0.0, "")
        orig_line = Ladder.render_line
        orig_status = StatusBar.render
        probe = self

        def render_line(ladder, y):
            strip = orig_line(ladder, y)
            probe.ladder_group = (time.perf_counter(), ladder.state.group)
            return strip

        def render(bar):
            text = orig_status(bar)
            probe.status_text = (time.perf_counter(), text.plain)
            return text

        Ladder.render_line = render_line
        StatusBar.render = render


async def measure(app: CockpitApp, seconds: float) -> dict:
    """Run inside the app's event loop: play at max speed, press keys, collect figures."""
    probe = _Probe()
    bridge = app.bridge
    await asyncio.sleep(0.5)  # first frames, layout
    lags: list[float] = []
    stop = False

    async def lag_probe() -> None:
        while not stop:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append((time.perf_counter() - t - 0.01) * 1000)

    ended_at: list[float] = []

    async def end_probe() -> None:
        while not stop and not ended_at:
            if bridge.engine.at_end:
                ended_at.append(time.perf_counter())
            await asyncio.sleep(0.005)

    lag_task = asyncio.create_task(lag_probe())
    end_task = asyncio.create_task(end_probe())
    bridge.play()
    await asyncio.sleep(0.3)
    # Engine path, first (while the data lasts): pause and play through the engine
    # thread, seen in the status bar.
    engine_ms: list[float] = []
    for i in range(10):
        want = "PAUSED" if i % 2 == 0 else "PLAYING"
        t_key = time.perf_counter()
        app.simulate_key("space")
        deadline = t_key + 2.0
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.0005)
            t_draw, text = probe.status_text
            if t_draw > t_key and want in text:
                engine_ms.append((t_draw - t_key) * 1000)
                break
        await asyncio.sleep(0.2)
    eng = bridge.engine
    t0 = time.perf_counter()
    e0 = eng.events_processed
    f0 = app.frames
    view_ms: list[float] = []
    coarse = True
    while time.perf_counter() - t0 < seconds and not eng.at_end:
        await asyncio.sleep(KEY_EVERY)
        before = app.ladder_state.group
        t_key = time.perf_counter()
        app.simulate_key("right_square_bracket" if coarse else "left_square_bracket")
        coarse = not coarse
        deadline = t_key + 2.0
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.0005)
            t_draw, group = probe.ladder_group
            if t_draw > t_key and group != before:
                view_ms.append((t_draw - t_key) * 1000)
                break
    wall = (ended_at[0] if ended_at else time.perf_counter()) - t0
    events = eng.events_processed - e0
    frames = app.frames - f0
    stop = True
    await lag_task
    await end_task
    bridge.pause()
    return {
        "events": events,
        "seconds": wall,
        "events_per_s": events / wall,
        "frames_per_s": frames / wall,
        "loop_lag_ms": {"p50": _pct(lags, 50), "p95": _pct(lags, 95), "p99": _pct(lags, 99)},
        "key_view_ms": {
            "n": len(view_ms),
            "p50": _pct(view_ms, 50),
            "p95": _pct(view_ms, 95),
            "max": max(view_ms, default=float("nan")),
        },
        "key_engine_ms": {
            "n": len(engine_ms),
            "p50": _pct(engine_ms, 50),
            "p95": _pct(engine_ms, 95),
            "max": max(engine_ms, default=float("nan")),
        },
        "reached_end": eng.at_end,
    }


def with_ui_headless(stream, cls, instances, seconds: float, size: tuple[int, int]) -> dict:
    """The app under Textual's headless driver."""
    bridge = EngineBridge(Engine(stream, cls, instances), speed=None)
    app = CockpitApp(bridge)

    async def main() -> dict:
        async with app.run_test(size=size):
            return await measure(app, seconds)

    return asyncio.run(main())


def with_ui_child(args: argparse.Namespace) -> None:
    """Child process in a real terminal: run the app, measure, write JSON to args.out."""
    stream, cls, instances = build(args)
    bridge = EngineBridge(Engine(stream, cls, instances), speed=None)
    app = CockpitApp(bridge)
    result: dict = {}

    async def go() -> None:
        result.update(await measure(app, args.seconds))
        app.exit()

    app.call_later(lambda: app.run_worker(go(), exclusive=False))
    app.run()
    Path(args.out).write_text(json.dumps(result))


def with_ui_terminal(args: argparse.Namespace) -> dict:
    """Run the child under tmux at the requested size and read its figures."""
    if shutil.which("tmux") is None:
        raise SystemExit("--terminal needs tmux")
    out = Path(tempfile.mkdtemp()) / "ui.json"
    name = f"bench-ui-{uuid.uuid4().hex[:8]}"
    w, h = args.size
    cmd = (
        f"{sys.executable} {Path(__file__).resolve()} --child --out {out} "
        f"--events {args.events} --seconds {args.seconds} --strategy {args.strategy}"
    )
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            str(w),
            "-y",
            str(h),
            f"cd {ROOT} && TERM=xterm-256color {cmd}",
        ],
        check=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    if not out.exists():
        raise SystemExit("the child did not report (see tmux)")
    return json.loads(out.read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=16_000_000)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--strategy", default=str(ROOT / "examples" / "market_maker.py"))
    p.add_argument(
        "--size",
        type=lambda s: tuple(int(x) for x in s.split("x")),
        default=(160, 48),
        help="terminal size WxH (default 160x48)",
    )
    p.add_argument("--terminal", action="store_true", help="a real terminal under tmux")
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        with_ui_child(args)
        return 0
    stream, cls, instances = build(args)
    head = headless(stream, cls, instances, args.seconds)
    ui = (
        with_ui_terminal(args)
        if args.terminal
        else with_ui_headless(stream, cls, instances, args.seconds, args.size)
    )
    ratio = ui["events_per_s"] / head["events_per_s"]
    keys = (ui["key_view_ms"], ui["key_engine_ms"])
    keys_ok = all(k["n"] > 0 and k["p95"] <= TARGET_KEY_MS for k in keys)
    ok = ui["frames_per_s"] >= TARGET_FPS and keys_ok and ratio >= TARGET_RATIO
    report = {
        "events_in_stream": args.events,
        "strategy": Path(args.strategy).stem if args.strategy != "none" else None,
        "mode": "terminal (tmux)" if args.terminal else "headless driver",
        "size": f"{args.size[0]}x{args.size[1]}",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "headless": head,
        "with_ui": ui,
        "throughput_ratio": ratio,
        "targets": {
            "frames_per_s": TARGET_FPS,
            "key_p95_ms": TARGET_KEY_MS,
            "throughput_ratio": TARGET_RATIO,
        },
        "ok": ok,
    }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(
            f"stream {args.events:,} events, strategy {report['strategy']}, "
            f"UI {report['mode']} {report['size']}, {report['cpus']} CPUs"
        )
        print(f"engine headless     {head['events_per_s']:>12,.0f} events/s")
        print(
            f"engine with the UI  {ui['events_per_s']:>12,.0f} events/s  "
            f"({ratio:.0%} of headless; target >= {TARGET_RATIO:.0%})"
        )
        print(f"UI frames           {ui['frames_per_s']:>12.1f} /s (target >= {TARGET_FPS:g})")
        lag = ui["loop_lag_ms"]
        print(
            f"event-loop lag      p50 {lag['p50']:.1f} ms, p95 {lag['p95']:.1f} ms, "
            f"p99 {lag['p99']:.1f} ms"
        )
        for name, key in (
            ("key -> screen, view", "key_view_ms"),
            ("key -> screen, engine", "key_engine_ms"),
        ):
            k = ui[key]
            print(
                f"{name:<22}p50 {k['p50']:.1f} ms, p95 {k['p95']:.1f} ms, max {k['max']:.1f} "
                f"ms over {k['n']} presses (target p95 <= {TARGET_KEY_MS:g} ms)"
            )
        print("OK" if ok else "BELOW TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
