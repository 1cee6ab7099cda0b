"""Where a session connects: `session_env.endpoints_for(url, venue)` and `environment_of`."""

from __future__ import annotations

import pytest

from adapters.live.session_env import (
    BINANCE_LIVE,
    BINANCE_TESTNET,
    USDM_LIVE,
    USDM_TESTNET,
    endpoints_for,
    environment_of,
)
from engine.errors import UsageError


def test_the_sandbox_serves_both_venues_on_one_port() -> None:
    spot = endpoints_for("ws://127.0.0.1:8765")
    assert (spot.venue, spot.ws_api, spot.user_ws) == (
        "binance-spot",
        "ws://127.0.0.1:8765/ws-api/v3",
        "",
    )
    usdm = endpoints_for("ws://127.0.0.1:8765", "binance-usdm")
    assert usdm.environment == "sandbox" and usdm.venue == "binance-usdm"
    assert usdm.md_ws == "ws://127.0.0.1:8765" and usdm.rest == "http://127.0.0.1:8765"
    assert usdm.ws_api == "ws://127.0.0.1:8765/ws-fapi/v1"
    assert usdm.user_ws == "ws://127.0.0.1:8765/private/ws"


@pytest.mark.parametrize(
    ("url", "venue", "expected"),
    [
        (None, "binance-spot", BINANCE_LIVE),
        (None, "binance-usdm", USDM_LIVE),
        ("wss://fstream.binance.com", "binance-usdm", USDM_LIVE),
        ("wss://testnet.binancefuture.com/ws-fapi/v1", "binance-usdm", USDM_TESTNET),
        ("wss://stream.testnet.binance.vision", "binance-spot", BINANCE_TESTNET),
    ],
)
def test_real_hosts(url: str | None, venue: str, expected: object) -> None:
    assert endpoints_for(url, venue) == expected


@pytest.mark.parametrize(
    ("url", "venue", "message"),
    [
        ("wss://testnet.binancefuture.com", "binance-spot", "spot testnet"),
        ("wss://stream.testnet.binance.vision", "binance-usdm", "USD-M's testnet"),
        ("wss://example.com", "binance-usdm", "not the sandbox"),
        ("ws://127.0.0.1:1", "kraken", "--venue 'kraken'"),
    ],
)
def test_other_hosts_and_venues_are_usage_errors(url: str, venue: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        endpoints_for(url, venue)


def test_environment_of_futures_testnet() -> None:
    assert environment_of("wss://fstream.binancefuture.com") == "testnet"
    assert environment_of("wss://fstream.binance.com") == "live"
