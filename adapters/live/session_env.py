"""Where a live session connects: the endpoints behind one URL, and which world they are.

A session names its venue by an API (`--venue binance-spot | binance-usdm`) and one URL
(`cockpit live --url ...`):

- a loopback URL (`ws://127.0.0.1:P`) is the sandbox venue: market data, REST and the
  WebSocket API share its one port (spot: `/stream`, `/api/v3`, `/ws-api/v3`; USD-M:
  `/public/stream`, `/fapi/v1`, `/ws-fapi/v1`, user data at `/private/ws/<listenKey>`);
- a URL on Binance's spot testnet (`*.testnet.binance.vision`) or USD-M testnet
  (`*.binancefuture.com`) is the testnet, whose endpoints are on several hosts;
- no URL, or one on `binance.com`, is the real venue (real money).

USD-M hosts (not from Binance's own pages, which our search corpus lacked; the connector
constants of nautilus_trader): live `wss://fstream.binance.com` (routes `/public`,
`/market`, `/private`), `https://fapi.binance.com`, `wss://ws-fapi.binance.com/ws-fapi/v1`;
testnet `wss://fstream.binancefuture.com`, `https://testnet.binancefuture.com`,
`wss://testnet.binancefuture.com/ws-fapi/v1`. Whether the testnet serves the `/public` and
`/private` routes was not checked: verify before a testnet run.

The environment decides what a session may do without being told twice: the CLI refuses
the real venue unless asked explicitly, and only the sandbox falls back to its test key.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Final, Literal

from engine.errors import UsageError

Environment = Literal["sandbox", "testnet", "live"]
Venue = Literal["binance-spot", "binance-usdm"]
VENUES: Final[tuple[Venue, ...]] = ("binance-spot", "binance-usdm")

LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})

SANDBOX_API_KEY: Final = "cockpit-sandbox-test-key-0000000000000000"
SANDBOX_API_SECRET: Final = "cockpit-sandbox-test-secret-not-a-real-one"
"""The sandbox's own test account (HMAC). Only the loopback sandbox accepts it; it is printed
by `cockpit sandbox` on purpose and is not a secret of anyone."""


@dataclass(frozen=True)
class Endpoints:
    """The addresses of a Binance-like venue."""

    environment: Environment
    md_ws: str
    """Market data WebSocket base (spot appends `/stream`, USD-M `/<route>/stream`)."""
    rest: str
    """REST base (exchangeInfo, depth snapshots; USD-M positions)."""
    ws_api: str
    """WebSocket API (orders; spot's user data stream too)."""
    user_ws: str = ""
    """USD-M: the user data stream base (`<user_ws>/<listenKey>`); '' for spot."""
    venue: Venue = "binance-spot"


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
USDM_LIVE: Final = Endpoints(
    "live",
    "wss://fstream.binance.com",
    "https://fapi.binance.com",
    "wss://ws-fapi.binance.com/ws-fapi/v1",
    "wss://fstream.binance.com/private/ws",
    "binance-usdm",
)
USDM_TESTNET: Final = Endpoints(
    "testnet",
    "wss://fstream.binancefuture.com",
    "https://testnet.binancefuture.com",
    "wss://testnet.binancefuture.com/ws-fapi/v1",
    "wss://fstream.binancefuture.com/private/ws",
    "binance-usdm",
)


def environment_of(url: str | None) -> Environment:
    """sandbox (loopback), testnet (binance.vision's testnet) or live (anything else)."""
    if not url:
        return "live"
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host in LOOPBACK:
        return "sandbox"
    if host.endswith("testnet.binance.vision") or host.endswith("binancefuture.com"):
        return "testnet"
    return "live"


def endpoints_for(url: str | None, venue: str = "binance-spot") -> Endpoints:
    """The endpoints a session uses for `url` on `venue` (see the module docstring).

    Raises:
        UsageError: an unknown venue, not a ws:// or wss:// URL, or a non-loopback host
            that is not the venue's own or its testnet's (no other layout is known).
    """
    if venue not in VENUES:
        raise UsageError(f"--venue {venue!r}: one of {', '.join(VENUES)}")
    usdm = venue == "binance-usdm"
    if not url:
        return USDM_LIVE if usdm else BINANCE_LIVE
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise UsageError(f"--url {url!r}: expected ws://HOST:PORT or wss://HOST")
    env = environment_of(url)
    host = parts.hostname.lower()
    if env == "sandbox":
        if parts.port is None:
            raise UsageError(f"--url {url!r}: the sandbox's URL has a port (ws://127.0.0.1:P)")
        name = host if ":" not in host else f"[{host}]"
        base = f"{name}:{parts.port}"
        if usdm:
            return Endpoints(
                "sandbox",
                f"ws://{base}",
                f"http://{base}",
                f"ws://{base}/ws-fapi/v1",
                f"ws://{base}/private/ws",
                "binance-usdm",
            )
        return Endpoints("sandbox", f"ws://{base}", f"http://{base}", f"ws://{base}/ws-api/v3")
    if usdm:
        if host.endswith("binancefuture.com"):
            return USDM_TESTNET
        if host.endswith("binance.com"):
            return USDM_LIVE
        raise UsageError(
            f"--url {url!r}: not the sandbox (loopback), Binance USD-M's testnet "
            "(binancefuture.com) or Binance"
        )
    if env == "testnet" and host.endswith("testnet.binance.vision"):
        return BINANCE_TESTNET
    if host.endswith("binance.com"):
        return BINANCE_LIVE
    raise UsageError(
        f"--url {url!r}: not the sandbox (loopback), Binance's spot testnet or Binance"
    )
