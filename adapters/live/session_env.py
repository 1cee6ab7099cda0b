"""Where a live session connects: the endpoints behind one URL, and which world they are.

A session names its venue by one URL (`cockpit live --url ...`):

- a loopback URL (`ws://127.0.0.1:P`) is the sandbox venue: market data (`/stream`), REST
  and the WebSocket API (`/ws-api/v3`) share its one port;
- a URL on Binance's spot testnet (`*.testnet.binance.vision`) is the testnet, whose three
  endpoints are on three hosts;
- no URL, or one on `binance.com`, is the real venue (real money).

The environment decides what a session may do without being told twice: the CLI refuses
the real venue unless asked explicitly, and only the sandbox falls back to its test key.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Final, Literal

from engine.errors import UsageError

Environment = Literal["sandbox", "testnet", "live"]

LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})

SANDBOX_API_KEY: Final = "cockpit-sandbox-test-key-0000000000000000"
SANDBOX_API_SECRET: Final = "cockpit-sandbox-test-secret-not-a-real-one"
"""The sandbox's own test account (HMAC). Only the loopback sandbox accepts it; it is printed
by `cockpit sandbox` on purpose and is not a secret of anyone."""


@dataclass(frozen=True)
class Endpoints:
    """The three addresses of a Binance-spot-like venue."""

    environment: Environment
    md_ws: str
    """Market data WebSocket base (the client appends `/stream`)."""
    rest: str
    """REST base (exchangeInfo, depth snapshots)."""
    ws_api: str
    """WebSocket API (orders and the user data stream)."""


BINANCE_LIVE: Final = Endpoints(
    "live",
    "wss://stream.binance.com:9443",
    "https://api.binance.com",
    "wss://ws-api.binance.com:443/ws-api/v3",
)
BINANCE_TESTNET: Final = Endpoints(
    "testnet",
    "wss://stream.testnet.binance.vision",
    "https://testnet.binance.vision",
    "wss://ws-api.testnet.binance.vision/ws-api/v3",
)


def environment_of(url: str | None) -> Environment:
    """sandbox (loopback), testnet (binance.vision's testnet) or live (anything else)."""
    if not url:
        return "live"
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host in LOOPBACK:
        return "sandbox"
    if host.endswith("testnet.binance.vision"):
        return "testnet"
    return "live"


def endpoints_for(url: str | None) -> Endpoints:
    """The endpoints a session uses for `url` (see the module docstring).

    Raises:
        UsageError: not a ws:// or wss:// URL, or a non-loopback host that is neither
            Binance nor its testnet (the session knows no other venue's layout).
    """
    if not url:
        return BINANCE_LIVE
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise UsageError(f"--url {url!r}: expected ws://HOST:PORT or wss://HOST")
    env = environment_of(url)
    if env == "sandbox":
        if parts.port is None:
            raise UsageError(f"--url {url!r}: the sandbox's URL has a port (ws://127.0.0.1:P)")
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        base = f"{host}:{parts.port}"
        return Endpoints("sandbox", f"ws://{base}", f"http://{base}", f"ws://{base}/ws-api/v3")
    if env == "testnet":
        return BINANCE_TESTNET
    if parts.hostname.lower().endswith("binance.com"):
        return BINANCE_LIVE
    raise UsageError(
        f"--url {url!r}: not the sandbox (loopback), Binance's spot testnet or Binance"
    )
