"""`cockpit sandbox`: the sandbox venue on loopback, serving until Ctrl-C.

    cockpit sandbox --data ../shared/data/binance-ws/spot_btcusdt_20240808.gz --speed 1

It replays the recorded market as Binance spot would send it (REST depth and exchangeInfo,
combined streams) and matches orders sent to its WebSocket API with the engine's venue
model (adapters/live/sandbox_exec.py). It prints its URL and the sandbox's own test API
key and secret: they open this loopback sandbox and nothing else (`cockpit live --url URL`
uses them by itself when no key is configured).

`--venue binance-usdm` serves the same market as Binance USD-M futures instead
(adapters/live/sandbox_futures_exec.py: `/public/stream` and `/market/stream`, `/fapi/v1`,
the WebSocket API at `/ws-fapi/v1` with `order.modify`, the listenKey user stream at
`/private/ws/<key>`, positions at `/fapi/v3/positionRisk`), for `cockpit live --venue
binance-usdm`.

A Binance spot capture replays from its REST snapshot line; any other data file the
project reads (`cockpit data inspect` lists them) replays as the messages Binance would
have sent for its events. The replay starts with the first subscription and the server
keeps serving the final book after it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from adapters.live import event_loop
from engine.errors import DataError, UsageError


def add_parser(subparsers: Any) -> None:
    """Add the `sandbox` subcommand."""
    p = subparsers.add_parser(
        "sandbox",
        help="run the sandbox venue on loopback (recorded market, orders matched by the engine)",
        description=(
            "Serve a recorded market as a Binance-spot-like venue on 127.0.0.1 (market data "
            "and the WebSocket API on one port) until Ctrl-C; prints the URL and the "
            "sandbox's test key for `cockpit live`."
        ),
    )
    p.add_argument("--data", nargs="+", required=True, metavar="FILE", help="recorded data")
    p.add_argument(
        "--venue",
        choices=("binance-spot", "binance-usdm"),
        default="binance-spot",
        help="venue API to speak: binance-spot (default) or binance-usdm (USD-M futures)",
    )
    p.add_argument("--port", type=int, default=0, help="port (default: one the OS picks)")
    p.add_argument(
        "--faults",
        metavar="SPEC",
        help="fault injection, e.g. drop_diff=20,delay_ack=500 (see adapters/live/sandbox_md.py)",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="multiple of recorded time (default 1; 0 replays as fast as sockets take it)",
    )
    p.add_argument(
        "--max-messages", type=int, default=None, help="replay at most this many messages"
    )


def load_replay(files: Sequence[str], max_messages: int | None = None):
    """The sandbox timeline of data files (a Binance spot capture, or any event stream)."""
    from adapters.formats import detect_format, load
    from adapters.live.sandbox_replay import replay_from_capture, replay_from_events

    for f in files:
        if not Path(f).is_file():
            raise UsageError(f"{f}: no such data file")
    if all(detect_format(f) == "binance-ws" for f in files):
        try:
            return replay_from_capture(list(files), max_messages=max_messages)
        except DataError:
            pass  # not a spot capture with a snapshot line (USD-M...): replay its events
    replay = replay_from_events(load(list(files)))
    if max_messages is not None:
        replay.messages = replay.messages[:max_messages]
    return replay


def check_args(args: argparse.Namespace) -> None:
    """Usage errors before anything is loaded."""
    from adapters.live.sandbox_md import Faults

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: must be within 0..65535")
    if args.speed < 0:
        raise UsageError(f"--speed {args.speed}: must not be negative")
    if args.max_messages is not None and args.max_messages < 1:
        raise UsageError("--max-messages must be at least 1")
    Faults.parse(args.faults)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run `cockpit sandbox` until Ctrl-C (or SIGTERM); returns the exit code."""
    check_args(args)
    replay = load_replay(args.data, args.max_messages)
    event_loop.run(serve(replay, args, out or sys.stdout))
    return 0


async def serve(
    replay: Any,
    args: argparse.Namespace,
    out: TextIO,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve `replay` until `stop` is set (default: until SIGINT or SIGTERM)."""
    from adapters.live.sandbox_auth import SandboxAccount
    from adapters.live.sandbox_exec import SandboxVenue
    from adapters.live.session_env import SANDBOX_API_KEY, SANDBOX_API_SECRET

    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    account = SandboxAccount(SANDBOX_API_KEY, secret=SANDBOX_API_SECRET)
    usdm = getattr(args, "venue", "binance-spot") == "binance-usdm"
    cls: type[SandboxVenue] = SandboxVenue
    if usdm:
        from adapters.live.sandbox_futures import futures_replay
        from adapters.live.sandbox_futures_exec import SandboxFuturesVenue

        replay, cls = futures_replay(replay), SandboxFuturesVenue
    async with cls(
        replay, account=account, speed=args.speed, faults=args.faults, port=args.port
    ) as sb:
        symbols = ", ".join(replay.specs)
        if usdm:
            assert isinstance(sb, SandboxFuturesVenue)
            routes = (
                f"  market data  {sb.ws_url}/public/stream, /market/stream   "
                f"REST {sb.rest_url}/fapi/v1/...\n"
                f"  orders       {sb.ws_api_url}   user data {sb.user_ws_url}/<listenKey>\n"
            )
        else:
            routes = (
                f"  market data  {sb.ws_url}/stream   REST {sb.rest_url}/api/v3/...\n"
                f"  orders       {sb.ws_api_url}\n"
            )
        venue_arg = " --venue binance-usdm" if usdm else ""
        out.write(
            f"sandbox venue at {sb.ws_url} ({symbols}; {len(replay.messages):,} messages at "
            f"speed {args.speed:g}{'; faults ' + args.faults if args.faults else ''}"
            f"{'; USD-M futures' if usdm else ''})\n"
            + routes
            + f"  test API key    {SANDBOX_API_KEY}\n"
            f"  test API secret {SANDBOX_API_SECRET}\n"
            "  (the sandbox's own test account: it opens this loopback sandbox only)\n"
            f"  e.g. cockpit live{venue_arg} --url {sb.ws_url} "
            f"--symbol {next(iter(replay.specs))} "
            "--strategy STRATEGY.py\n"
            "Ctrl-C stops it.\n"
        )
        out.flush()
        await stop.wait()
        held = ""
        if usdm:
            assert isinstance(sb, SandboxFuturesVenue)
            open_pos = [f"{s} {q.normalize():f}" for s, (q, _) in sb.positions.items() if q]
            held = f", positions {', '.join(open_pos) or 'flat'}"
        open_orders = sum(len(sb.matcher.open_orders(sym)) for sym in replay.specs)
        out.write(
            f"sandbox stopped: {sb.messages_sent:,} messages replayed, "
            f"{sb.method_counts.get('order.place', 0):,} orders received, "
            f"{open_orders} open{held}\n"
        )
        out.flush()
