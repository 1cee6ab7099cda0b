"""The venue clients of a live session: market data and execution for each venue API.

`LiveSession` is venue-neutral (it talks to a `BinanceSpotMarketData`-like client and a
`BinanceSpotExec`-like client); what differs per venue is built here:

- `binance-spot`: `BinanceSpotMarketData` (`<md_ws>/stream`, REST `/api/v3`) and
  `BinanceSpotExec` (`/ws-api/v3`; amends are cancel-replace, a new client id).
- `binance-usdm`: `BinanceFuturesMarketData` twice, as Binance splits the routes: books
  and quotes on `/public` (the session's main market data client: book sync, status) and
  aggTrades on `/market` (an extra client: its rows go to the engine too), and
  `BinanceFuturesExec` (`/ws-fapi/v1`, the listenKey user stream at
  `<user_ws>/<listenKey>`, positions by REST; amends are `order.modify`, in place). The
  positions are read by the session at start (`fetch_positions`), not by the client.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.live.binance_futures_exec import BinanceFuturesExec
from adapters.live.binance_futures_md import BinanceFuturesMarketData, futures_market_data
from adapters.live.binance_spot_exec import BinanceSpotExec
from adapters.live.binance_spot_md import BinanceSpotMarketData
from adapters.live.session_env import Endpoints
from adapters.live.signing import Signer
from adapters.live.ws_venue import WsConfig
from engine.errors import UsageError


def binance_spot_clients(
    endpoints: Endpoints,
    symbols: Sequence[str],
    *,
    api_key: str,
    signer: Signer,
    md_config: WsConfig | None = None,
    exec_config: WsConfig | None = None,
    resolve_after: float = 2.0,
) -> tuple[BinanceSpotMarketData, BinanceSpotExec]:
    """Market data and execution clients for Binance spot (or its testnet, or the sandbox)."""
    md = BinanceSpotMarketData(
        symbols, ws_url=endpoints.md_ws, rest_url=endpoints.rest, config=md_config
    )
    ex = BinanceSpotExec(
        api_key=api_key,
        signer=signer,
        ws_url=endpoints.ws_api,
        symbols=symbols,
        config=exec_config,
        resolve_after=resolve_after,
    )
    return md, ex


def binance_usdm_clients(
    endpoints: Endpoints,
    symbols: Sequence[str],
    *,
    api_key: str,
    signer: Signer,
    md_config: WsConfig | None = None,
    exec_config: WsConfig | None = None,
    resolve_after: float = 2.0,
) -> tuple[BinanceFuturesMarketData, BinanceFuturesExec, BinanceFuturesMarketData]:
    """Market data (`/public`: books, quotes), execution, and trades (`/market`) clients
    for Binance USD-M futures.

    Raises:
        UsageError: `endpoints` are not USD-M's (no user data stream base).
    """
    if endpoints.venue != "binance-usdm" or not endpoints.user_ws:
        raise UsageError("USD-M futures needs USD-M endpoints: endpoints_for(url, 'binance-usdm')")
    md, trades = futures_market_data(
        symbols, ws_url=endpoints.md_ws, rest_url=endpoints.rest, config=md_config
    )
    ex = BinanceFuturesExec(
        api_key=api_key,
        signer=signer,
        ws_url=endpoints.ws_api,
        user_ws_url=endpoints.user_ws,
        rest_url=endpoints.rest,
        symbols=symbols,
        config=exec_config,
        resolve_after=resolve_after,
        read_positions=False,  # the session reads them before it reconciles
    )
    return md, ex, trades
