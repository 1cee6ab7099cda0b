"""Measure the live path over loopback: tick-to-order latency and market data throughput.

Tick-to-order: the sandbox replays a recorded BTCUSDT market one message at a time and
stamps each when it has handed it to the socket; a LiveSession runs the shared test
strategy in
mode 1, which answers every market data message with an order (an IOC buy far below the
bid: it expires at once, nothing rests); the sandbox stamps the order.place when its
socket hands the frame over (before it parses and checks it) and only then sends the next
message (ping-pong, so every order pairs with exactly one update and nothing queues). By
default the sandbox runs on the session's event loop (one process: the sandbox's own work
on a message is done before the session can read it, so the send stamp follows it);
`--sandbox-process` runs it in a process of its own (stamped at the write, as a venue
elsewhere would be; on two shared cores the two processes then compete for them).
Reported: median and p99 of send-to-arrival, and where the time goes, from the session's
own section timers (perf_counter_ns):

    net in    sandbox send -> the frame's arrival at the client (its ts_local)
    decode    JSON, book sequencing, rows (the market data client)
    wake      rows handed over -> the stepping cycle starts (event loop scheduling)
    engine    LiveEngine.step_until + take_outbox (the strategy runs in here)
    encode    outbox rows -> venue requests (client ids, decimals, filters)
    journal   the intents' append_batch with its sync (the journal is on --journal-dir:
              /dev/shm shows the path without the disk)
    send      signing, JSON and the WebSocket write of each order (place_now), its task
    out       the rest: loopback, the sandbox's socket reading the frame

Throughput ("messages/s one adapter connection sustains without falling behind"): the
sandbox runs in another process (`cockpit sandbox --speed 0`, as fast as its socket takes
them) and one client drinks the stream: a bare websockets reader (the ceiling the sandbox
and the socket allow), the Binance market data client alone, and a whole LiveSession (the
client, the engine stepping, the strategy idle). A client slower than the sandbox is the
bottleneck: its rate is the most it sustains; faster messages would queue in the socket.
The client's CPU time per message (process time over the flood) bounds what it sustains
with a core to itself, whatever the sandbox manages to send.

The targets (issue #7): tick-to-order median <= 200 us and p99 <= 1 ms on this machine;
and the market data throughput one connection sustains, reported against 2,000 messages/s
(20 times a busy Binance BTCUSDT feed of ~100 messages/s with depth@100ms, trades and
bookTicker).

    .venv/bin/python benchmarks/bench_live.py [--messages 3000] [--flood 30000] [--json]
        [--journal-dir DIR] [--sandbox-process] [--busy-poll]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.live import event_loop  # noqa: E402
from adapters.live.sandbox_auth import SandboxAccount  # noqa: E402
from adapters.live.sandbox_exec import SandboxVenue  # noqa: E402
from adapters.live.sandbox_replay import ReplayMessage, replay_from_capture  # noqa: E402
from adapters.live.session import LiveSession, SessionOptions  # noqa: E402
from adapters.live.session_env import (  # noqa: E402
    SANDBOX_API_KEY,
    SANDBOX_API_SECRET,
    endpoints_for,
)
from adapters.live.signing import HmacSha256Signer  # noqa: E402
from engine.bench import machine  # noqa: E402
from engine.strategy import load_strategy_class  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "binance-ws" / "spot_btcusdt_20240808.gz"
STRATEGY = ROOT / "tests" / "adapters" / "live" / "touch_strategy.py"
"""The shared test strategy: one compiled loop for tests and this benchmark."""
TARGET_MEDIAN_US = 200.0
"""Issue #7's tick-to-order targets on this machine."""
TARGET_P99_MS = 1.0
TARGET_MSGS_PER_S = 2_000
ANSWER_TIMEOUT = 0.05
"""Seconds the sandbox waits for an answer before it sends the next message anyway."""
BIG_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 10**7},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 10**7},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 10**9},
]
"""An order per message is far beyond Binance's 100 orders / 10 s: lifted for the bench."""


class PingPongVenue(SandboxVenue):
    """The sandbox sending one message, then waiting for the order that answers it."""

    def __init__(self, *args: Any, stamp_at_write: bool = True, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.stamp_at_write = stamp_at_write
        """True: a message's send time is when its frame was written (the sandbox in its own
        process); False: after the sandbox's matching step (one process, one event loop,
        where the client can read the frame only once the sandbox has finished)."""
        self._wrote = (0, 0)
        self.sent_perf: dict[int, int] = {}
        self.sent_wall: dict[int, int] = {}
        self.answers: list[tuple[int, int, str]] = []
        """(message index, send-to-arrival ns, the order's client id) of every answered
        message."""
        self._current = 0
        self._arrived = 0
        self._answered = asyncio.Event()

    async def on_message(self, i: int, m: ReplayMessage) -> None:
        self._current = i
        self._answered.clear()
        await super().on_message(i, m)  # the sandbox's own matching step for the message
        if self.stamp_at_write:
            self.sent_perf[i], self.sent_wall[i] = self._wrote
        else:
            self.sent_perf[i], self.sent_wall[i] = time.perf_counter_ns(), time.time_ns()
        try:
            await asyncio.wait_for(self._answered.wait(), ANSWER_TIMEOUT)
        except TimeoutError:
            pass  # not answered (the client was not in sync yet): go on

    async def _send(self, client: Any, text: str) -> None:
        await super()._send(client, text)
        self._wrote = (time.perf_counter_ns(), time.time_ns())

    def _on_request(self, session: Any, frame: str | bytes) -> None:
        # Arrival: the frame as the venue's socket handed it over, before the venue parses
        # and checks it (its signature check is the venue's time, not the cockpit's).
        self._arrived = time.perf_counter_ns()
        super()._on_request(session, frame)

    def _place_stamped(self, session: Any, p: dict, frames: list[dict]) -> Any:
        i = self._current
        if i in self.sent_perf and not self._answered.is_set():
            cid = str(p.get("newClientOrderId", ""))
            self.answers.append((i, self._arrived - self.sent_perf[i], cid))
            self._answered.set()
        return SandboxVenue._place(self, session, p, frames)

    _METHODS = {**SandboxVenue._METHODS, "order.place": _place_stamped}


def pct(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def _pingpong_venue(n_messages: int, stamp_at_write: bool) -> PingPongVenue:
    replay = replay_from_capture(DATA, max_messages=n_messages)
    account = SandboxAccount(SANDBOX_API_KEY, secret=SANDBOX_API_SECRET)
    return PingPongVenue(
        replay, account=account, speed=0, rate_limits=BIG_LIMITS, stamp_at_write=stamp_at_write
    )


def _session(url: str, journal: Path, busy_poll: bool = False) -> LiveSession:
    return LiveSession.binance_spot(
        endpoints_for(url),
        ["BTCUSDT"],
        api_key=SANDBOX_API_KEY,
        signer=HmacSha256Signer(SANDBOX_API_SECRET),
        strategy_cls=load_strategy_class(str(STRATEGY)),
        instances=[{"mode": 1, "qty": 100, "offset": 1000}],
        journal_path=journal,
        options=SessionOptions(session_prefix="bench", busy_poll=busy_poll),
    )


def _note_triggers(session: LiveSession) -> dict[str, int]:
    """For each order sent, the arrival time (the rows' ts_local, wall ns) of the market
    data that the step sending it had just taken in: the order's client id -> that time."""
    triggers: dict[str, int] = {}
    last = [0]
    on_rows, send = session._on_md_rows, session._send

    def rows_noted(rows: np.ndarray) -> None:
        last[0] = int(rows[0]["ts_local"])
        on_rows(rows)

    def send_noted(p: Any) -> None:
        triggers[p.request.client_id] = last[0]
        send(p)

    session.md.on_events = rows_noted
    session._send = send_noted  # type: ignore[method-assign]
    return triggers


async def serve_pingpong(n_messages: int) -> None:
    """The sandbox half, in its own process: print its URL, replay, print the stamps."""
    async with _pingpong_venue(n_messages, stamp_at_write=True) as sb:
        print("ready", sb.ws_url, flush=True)
        await sb.replay_done.wait()
        result = {"answers": sb.answers, "sent_wall": sb.sent_wall}
        print("result", json.dumps(result), flush=True)


async def tick_to_order(
    n_messages: int,
    journal_dir: Path,
    skip: int,
    one_process: bool = False,
    busy_poll: bool = False,
) -> dict[str, Any]:
    journal = journal_dir / f"bench-live-{os.getpid()}.journal"
    journal.unlink(missing_ok=True)
    if one_process:
        async with _pingpong_venue(n_messages, stamp_at_write=False) as sb:
            session = _session(sb.ws_url, journal, busy_poll)
            await session.start()
            triggers = _note_triggers(session)
            await sb.replay_done.wait()
            await session.stop()
        answers_raw, sent_wall = sb.answers, sb.sent_wall
    else:
        cmd = [sys.executable, __file__, "--serve-pingpong", str(n_messages)]
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdout=asyncio.subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            limit=1 << 24,
        )
        assert proc.stdout is not None
        first = (await proc.stdout.readline()).decode().split()
        if first[:1] != ["ready"]:
            proc.kill()
            raise RuntimeError(f"the ping-pong sandbox did not start: {first!r}")
        session = _session(first[1], journal, busy_poll)
        await session.start()
        triggers = _note_triggers(session)
        line = (await proc.stdout.readline()).decode()
        await session.stop()
        await proc.wait()
        if not line.startswith("result "):
            raise RuntimeError(f"the ping-pong sandbox failed: {line[:200]!r}")
        result = json.loads(line[len("result ") :])
        answers_raw = [tuple(a) for a in result["answers"]]
        sent_wall = {int(k): v for k, v in result["sent_wall"].items()}
    journal.unlink(missing_ok=True)
    answers = [a for a in answers_raw if a[0] > skip]
    total = [ns / 1e3 for _, ns, _ in answers]
    net_in = [(triggers[cid] - sent_wall[i]) / 1e3 for i, _, cid in answers if cid in triggers]
    t = session.timings
    sections = {"net in": statistics.median(net_in) if net_in else float("nan")}
    for name in ("decode", "wake", "engine", "encode", "journal", "send"):
        samples = t.samples(name)[skip:] / 1e3
        sections[name] = float(np.median(samples)) if len(samples) else float("nan")
    median = statistics.median(total)
    sections["out"] = median - sum(sections.values())
    return {
        "messages": n_messages,
        "answered": len(answers),
        "median_us": median,
        "p99_us": pct(total, 99),
        "p90_us": pct(total, 90),
        "max_us": max(total),
        "sections_median_us": sections,
        "journal_dir": str(journal_dir),
        "sandbox": "one process with the session" if one_process else "its own process",
        "busy_poll": busy_poll,
        "orders_sent": session.status().orders,
    }


def start_sandbox(n: int) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "cockpit", "sandbox", "--data", str(DATA), "--speed", "0"]
    cmd += ["--max-messages", str(n)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if not first.startswith("sandbox venue at "):
        proc.kill()
        raise RuntimeError(f"the sandbox did not start: {first!r}")
    return proc, first.split()[3]


def stop_sandbox(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


async def _until_quiet(
    count: Any, quiet: float = 1.0, limit: float = 120.0
) -> tuple[int, float, float]:
    """Poll `count()` until it stops moving: (messages, wall seconds from the first to the
    last, CPU seconds of this process meanwhile)."""
    first_t = last_t = first_cpu = last_cpu = None
    first_n = last = 0
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        n = count()
        now, cpu = time.perf_counter(), time.process_time()
        if n > last:
            if first_t is None:
                first_t, first_cpu, first_n = now, cpu, n
            last, last_t, last_cpu = n, now, cpu
        elif last_t is not None and now - last_t > quiet:
            break
    if first_t is None or last_t is None or last_t <= first_t:
        return last, float("nan"), float("nan")
    assert first_cpu is not None and last_cpu is not None
    # Per message: the CPU the client spent on the messages after the first poll.
    return last, last_t - first_t, (last_cpu - first_cpu) / max(last - first_n, 1)


async def flood_bare(url: str) -> tuple[int, float, float]:
    from websockets.asyncio.client import connect

    streams = "btcusdt@depth@100ms/btcusdt@trade/btcusdt@bookTicker"
    counter = [0]
    async with connect(f"{url}/stream?streams={streams}", max_size=None) as ws:

        async def read() -> None:
            async for frame in ws:
                orjson.loads(frame)
                counter[0] += 1

        task = asyncio.create_task(read())
        result = await _until_quiet(lambda: counter[0])
        task.cancel()
        return result


async def flood_md(url: str) -> tuple[int, float, float]:
    from adapters.live.binance_spot_md import BinanceSpotMarketData

    md = BinanceSpotMarketData(
        ["BTCUSDT"], ws_url=url, rest_url=url.replace("ws://", "http://"), on_events=len
    )
    async with md:
        return await _until_quiet(lambda: md.messages)


async def flood_session(url: str, journal_dir: Path) -> tuple[int, float, float]:
    journal = journal_dir / f"bench-flood-{os.getpid()}.journal"
    journal.unlink(missing_ok=True)
    session = LiveSession.binance_spot(
        endpoints_for(url),
        ["BTCUSDT"],
        api_key=SANDBOX_API_KEY,
        signer=HmacSha256Signer(SANDBOX_API_SECRET),
        strategy_cls=load_strategy_class(str(STRATEGY)),
        instances=[{"at": 10**9}],  # idle: the engine steps, nothing is sent
        journal_path=journal,
    )
    await session.start()
    try:
        return await _until_quiet(lambda: session.md.messages)
    finally:
        await session.stop()
        journal.unlink(missing_ok=True)


def throughput(n: int, journal_dir: Path) -> dict[str, Any]:
    out = {}
    for name, run in (
        ("bare reader", lambda url: flood_bare(url)),
        ("market data client", lambda url: flood_md(url)),
        ("live session", lambda url: flood_session(url, journal_dir)),
    ):
        proc, url = start_sandbox(n)
        try:
            msgs, secs, cpu = event_loop.run(run(url))
        finally:
            stop_sandbox(proc)
        out[name] = {
            "messages": msgs,
            "seconds": secs,
            "per_s": msgs / secs if secs else 0.0,
            "cpu_us_per_message": cpu * 1e6,
            "cpu_bound_per_s": 1.0 / cpu if cpu else 0.0,
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=3000, help="ping-pong messages")
    ap.add_argument("--skip", type=int, default=200, help="warm-up messages left out")
    ap.add_argument("--flood", type=int, default=30_000, help="messages per throughput run")
    ap.add_argument("--journal-dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--sandbox-process",
        action="store_true",
        help="run the ping-pong sandbox in its own process (default: on the session's loop)",
    )
    ap.add_argument(
        "--busy-poll", action="store_true", help="the session polls instead of sleeping"
    )
    ap.add_argument("--serve-pingpong", type=int, metavar="N", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_pingpong:
        event_loop.run(serve_pingpong(args.serve_pingpong))
        return 0
    report = {
        "machine": machine(),
        "event_loop": event_loop.loop_name(),
        "tick_to_order": event_loop.run(
            tick_to_order(
                args.messages,
                args.journal_dir,
                args.skip,
                not args.sandbox_process,
                args.busy_poll,
            )
        ),
        "throughput": throughput(args.flood, args.journal_dir),
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    m, t = report["machine"], report["tick_to_order"]
    print(
        f"bench_live on {m['cpu']} ({m['cores']} cores, load {m['load_avg_1m']}), "
        f"python {m['python']}, numba {m['numba']}, event loop {report['event_loop']}"
    )
    print(
        f"tick-to-order over loopback, the sandbox in {t['sandbox']}"
        f"{', busy polling' if t['busy_poll'] else ''} ({t['answered']} of "
        f"{t['messages']} updates answered, journal synced on {t['journal_dir']}):"
    )
    print(
        f"  median {t['median_us']:.0f} us  p90 {t['p90_us']:.0f} us  p99 {t['p99_us']:.0f} us"
        f"  max {t['max_us']:.0f} us   (target median <= {TARGET_MEDIAN_US:g} us, "
        f"p99 <= {TARGET_P99_MS:g} ms: "
        f"{'met' if _met(t) else 'NOT met'})"
    )
    total = t["median_us"]
    for name, us in t["sections_median_us"].items():
        print(f"    {name:<8} {us:8.1f} us  {us / total:6.1%}")
    print("market data throughput, one connection, sandbox in another process at speed 0:")
    for name, r in report["throughput"].items():
        print(
            f"  {name:<20} {r['per_s']:>8,.0f} messages/s ({r['messages']:,} in "
            f"{r['seconds']:.2f} s); client CPU {r['cpu_us_per_message']:.0f} us/message, "
            f"so at most {r['cpu_bound_per_s']:,.0f}/s on one core"
        )
    print(
        "  (the bare reader's rate is the sandbox's own ceiling: a client reaching it is not "
        "the bottleneck; the CPU bound is what the client sustains with a core to itself)"
    )
    rate = min(
        report["throughput"]["live session"]["per_s"],
        report["throughput"]["live session"]["cpu_bound_per_s"],
    )
    verdict = "met" if rate >= TARGET_MSGS_PER_S else "NOT met"
    print(f"  target >= {TARGET_MSGS_PER_S:,} messages/s for the live session: {verdict}")
    return 0


def _met(t: dict) -> bool:
    """Whether the tick-to-order figures meet both targets."""
    return t["median_us"] <= TARGET_MEDIAN_US and t["p99_us"] <= TARGET_P99_MS * 1e3


if __name__ == "__main__":
    sys.exit(main())
