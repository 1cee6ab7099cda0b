"""Binance USD-M futures market data over WebSocket: depth diffs, aggregate trades, best bid/offer.

Routes. Binance split the USD-M futures WebSocket host by traffic class (announced
2026-03-06; the old `wss://fstream.binance.com/stream` keeps working until it is retired):
`/public` carries the high-frequency book streams (`<sym>@depth@100ms`, `<sym>@bookTicker`),
`/market` the other market streams (`<sym>@aggTrade`, markPrice, klines, tickers...),
`/private` the user data stream. One client is one connection, so one client serves one
route: `futures_market_data()` builds the pair (books and quotes on `/public`, trades on
`/market`); both base URLs are parameters. Source of the split: Binance's "Base URL split"
change log as carried by the connectors we checked (nautilus `BINANCE_FUTURES_USD_WS_PUBLIC_URL`
= `wss://fstream.binance.com/public/ws`, "high-frequency book data"; siebly/binance v3.5.0
"USDM Public topics / USDM Market topics"); the official page was not in our search corpus.
Verify the stream-to-route table against the live docs before a production run.

The local book follows Binance's futures procedure, with the rule shared with the capture
loader (`adapters.binance_ws.depth_diff_verdict(futures=True, ...)`): diffs are buffered
from the subscription; a REST snapshot (`GET /fapi/v1/depth`, limit 5..1000) is fetched;
diffs with `u < lastUpdateId` are dropped; the first applied one must satisfy
`U <= lastUpdateId <= u`; then each diff's `pu` must equal the previous diff's `u`, else the
book is cleared (FLAG_RESYNC) and rebuilt. Unlike spot, consecutive futures diffs need not
have `U == previous u + 1`: `pu` is the only continuity evidence.

Everything else (exchangeInfo loading, snapshot retries, repeats, rotation at 23.5 h,
`serverShutdown`, limits) is `BinanceSpotMarketData`'s, which this class extends: the
frames and REST paths differ, the procedure does not.

Futures frames carry exchange times: depth `E`/`T`, aggTrade `T`, bookTicker `T` (spot's
bookTicker has none), so quotes here have a real `ts_exch`. aggTrade `m` true means the
buyer was the maker (the aggressor sold). A REST depth weighs 2/5/10/20 for limits
<=50/100/500/1000.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final, Literal

from adapters.binance_ws import VENUE_USDM, depth_diff_verdict
from adapters.live.binance_spot_md import BinanceSpotMarketData
from adapters.live.book_sync import Rule
from adapters.live.rate_limit import Limit
from adapters.live.rows import MS
from engine.errors import UsageError

WS_URL: Final = "wss://fstream.binance.com"
REST_URL: Final = "https://fapi.binance.com"
Route = Literal["public", "market"]
ROUTE_OF_STREAM: Final[dict[str, Route]] = {
    "depth": "public",
    "bookTicker": "public",
    "aggTrade": "market",
}
"""Stream type -> the route that serves it."""
PUBLIC_STREAMS: Final = ("depth@100ms", "bookTicker")
MARKET_STREAMS: Final = ("aggTrade",)
DEPTH_LIMITS: Final = (5, 10, 20, 50, 100, 500, 1000)
DEFAULT_REST_LIMITS: Final = (Limit("REQUEST_WEIGHT", 2400, 60.0),)

_DEPTH, _TRADE, _TICKER = range(3)
_CODES: Final = {"depth": _DEPTH, "aggTrade": _TRADE, "bookTicker": _TICKER}
_KNOWN_FIELDS: Final = {
    _DEPTH: frozenset({"e", "E", "T", "s", "U", "u", "pu", "b", "a"}),
    _TRADE: frozenset({"e", "E", "a", "s", "p", "q", "f", "l", "T", "m"}),
    _TICKER: frozenset({"e", "u", "E", "T", "s", "b", "B", "a", "A"}),
}
_KIND_NAMES: Final = {_DEPTH: "depthUpdate", _TRADE: "aggTrade", _TICKER: "bookTicker"}


def futures_depth_weight(limit: int) -> int:
    """REST weight of GET /fapi/v1/depth with this limit (one of DEPTH_LIMITS)."""
    if limit not in DEPTH_LIMITS:
        raise UsageError(f"futures depth limit must be one of {DEPTH_LIMITS}, got {limit}")
    return 2 if limit <= 50 else 5 if limit == 100 else 10 if limit == 500 else 20


def futures_rule(bridging: bool, book_id: int, first: int, last: int, prev: int | None):
    """Binance USD-M's continuity rule (the capture loader's), as a BookSequencer rule."""
    return depth_diff_verdict(True, bridging, book_id, first, last, prev)


class BinanceFuturesMarketData(BinanceSpotMarketData):
    """Live Binance USD-M books, aggregate trades and quotes on one route.

    Args:
        symbols: e.g. ["BTCUSDT"].
        route: "public" (depth, bookTicker) or "market" (aggTrade).
        ws_url: the host, without the route (`wss://fstream.binance.com`, or a sandbox's).
        rest_url: `https://fapi.binance.com`, or a sandbox's.
        streams: per-symbol streams; default the route's (PUBLIC_STREAMS / MARKET_STREAMS).
        depth_limit: levels a side of each REST snapshot (DEPTH_LIMITS).
        **kwargs: BinanceSpotMarketData's (instruments, rest) and WsVenue's.

    Raises:
        UsageError: a stream the route does not serve, a bad depth limit.
    """

    venue: ClassVar[str] = VENUE_USDM
    depth_path: ClassVar[str] = "/fapi/v1/depth"
    exchange_info_path: ClassVar[str] = "/fapi/v1/exchangeInfo"
    instrument_kind: ClassVar[str] = "perpetual"

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        route: Route = "public",
        ws_url: str = WS_URL,
        rest_url: str = REST_URL,
        streams: Sequence[str] | None = None,
        depth_limit: int = 1000,
        **kwargs: Any,
    ) -> None:
        if route not in ("public", "market"):
            raise UsageError(f"route must be 'public' or 'market', got {route!r}")
        streams = tuple(streams or (PUBLIC_STREAMS if route == "public" else MARKET_STREAMS))
        for stream in streams:
            kind = stream.split("@", 1)[0]
            if ROUTE_OF_STREAM.get(kind) != route:
                raise UsageError(f"stream {stream!r} is not served on /{route}")
        futures_depth_weight(depth_limit)
        self.route = route
        self._has_books = any(s.startswith("depth") for s in streams)
        # The spot constructor validates against spot's depth weights and stream names.
        super().__init__(
            symbols,
            ws_url=ws_url,
            rest_url=rest_url,
            depth_limit=min(depth_limit, 1000),
            streams=[s.replace("aggTrade", "trade") for s in streams],
            **kwargs,
        )
        self.streams = streams
        self._routes = {}
        for sym in self.symbols:
            for stream in streams:
                self._routes[f"{sym.lower()}@{stream}"] = (_CODES[stream.split("@")[0]], sym)
        self._last_trade = {}
        self._last_ticker = {}

    def _register(self, symbol: str, inst: Any) -> None:
        if not self._has_books:
            # Trades only: the instrument without a book (no snapshot to fetch).
            if symbol in self.symbols:
                self._iids[symbol] = self.instruments.add(inst)
                self._insts[symbol] = inst
            return
        super()._register(symbol, inst)

    def exchange_info_params(self) -> dict[str, Any]:
        return {}  # /fapi/v1/exchangeInfo takes no symbol filter

    def depth_cost(self) -> int:
        return futures_depth_weight(self.depth_limit)

    def url(self) -> str:
        return f"{self.ws_url}/{self.route}/stream"

    def book_rule(self, key: str) -> Rule:
        return futures_rule

    known_fields: ClassVar[dict[int, frozenset]] = _KNOWN_FIELDS
    kind_names: ClassVar[dict[int, str]] = _KIND_NAMES

    def depth_ids(self, data: dict) -> tuple[int, int, int | None]:
        """Futures diffs also carry the previous diff's last id (`pu`): the continuity rule."""
        return int(data["U"]), int(data["u"]), int(data["pu"])

    def depth_time_ns(self, data: dict) -> int:
        """The transaction time `T` (futures diffs carry it; spot only the event time)."""
        return int(data["T"]) * MS

    def trade_id(self, data: dict) -> int:
        """aggTrade ids (`a`): the futures stream sends aggregated trades."""
        return int(data["a"])

    def ticker_time_ns(self, data: dict) -> int | None:
        """Futures bookTickers carry their transaction time `T`."""
        return int(data["T"]) * MS


def futures_market_data(
    symbols: Sequence[str],
    *,
    ws_url: str = WS_URL,
    rest_url: str = REST_URL,
    public_url: str | None = None,
    market_url: str | None = None,
    **kwargs: Any,
) -> tuple[BinanceFuturesMarketData, BinanceFuturesMarketData]:
    """The (books and quotes on `/public`, trades on `/market`) pair of clients.

    `public_url` / `market_url` override `ws_url` per route (a host that serves one route
    only). The two share nothing but their arguments: start and stop both.
    """
    public = BinanceFuturesMarketData(
        symbols, route="public", ws_url=public_url or ws_url, rest_url=rest_url, **kwargs
    )
    market = BinanceFuturesMarketData(
        symbols, route="market", ws_url=market_url or ws_url, rest_url=rest_url, **kwargs
    )
    return public, market
