"""Binance spot market data over WebSocket: depth diffs, trades and best bid/offer per symbol.

Streams: one connection to the combined-stream endpoint `/stream`, subscribed with
`{"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms", "btcusdt@trade",
"btcusdt@bookTicker"], "id": N}` (acknowledged `{"result": null, "id": N}`), frames in the
envelope `{"stream": NAME, "data": {...}}`.

The local book follows Binance's documented procedure, with the rule shared with the capture
loader (`adapters.binance_ws.depth_diff_verdict`): diffs are buffered from the subscription
on; a REST snapshot (`GET /api/v3/depth`) is fetched; diffs with `u <= lastUpdateId` are
dropped; the first applied one must satisfy `U <= lastUpdateId + 1 <= u`; then each diff's
`U` must be the previous `u + 1`. A snapshot older than the first buffered diff is fetched
again (up to `WsConfig.snapshot_attempts`). A gap emits a clear with FLAG_RESYNC and the
book is rebuilt the same way. A diff repeated after it was applied is ignored.

Binance's quirks and limits, and what this client does about them:

- A connection lives at most 24 h: rotated at 23.5 h by default (`WsConfig.rotate_after`),
  new connection first. A `serverShutdown` event (bare or in an envelope) rotates at once.
- The server pings every 20 s and drops a connection that does not pong within a minute;
  the websockets library answers pings itself.
- 5 incoming messages a second per connection (pings, pongs and control frames count):
  outgoing frames go through a 5-a-second limiter. 300 connection attempts per 5 minutes
  per IP: the reconnection budget. 1024 streams per connection: more raise UsageError.
- REST weight: 6000 a minute (replaced by the figures `exchangeInfo` publishes); a depth
  snapshot weighs 5/25/50/250 for limits up to 100/500/1000/5000. The `X-MBX-USED-WEIGHT-1M`
  header feeds the limiter; 429 and 418 pause it for `Retry-After`.
- bookTicker carries no exchange time: `ts_exch` is the receive time and the rows carry
  FLAG_EXCH_TS_MISSING, like the REST snapshot. Depth diffs use `E`, trades `T`.
- Trade `m` true means the buyer was the maker: the aggressor sold (SIDE_SELL). Trades and
  tickers whose id (`t`, `u`) is not above the last one seen are repeats and dropped.
- Tick and lot size come from exchangeInfo's PRICE_FILTER `tickSize` and LOT_SIZE
  `stepSize` unless instruments are given; `filters` keeps NOTIONAL/MIN_NOTIONAL too.
- The local book is the snapshot's depth (`depth_limit` levels a side) plus whatever diffs
  add outside it: levels beyond the snapshot's depth are incomplete, as with any client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Final

import numpy as np
import orjson

from adapters.binance_ws import VENUE_SPOT, depth_diff_verdict
from adapters.live.book_sync import BookUpdate, Rule
from adapters.live.http import RestClient
from adapters.live.rate_limit import Limit, RateLimiter, limits_from_binance
from adapters.live.rows import MS, book_rows, quote_rows, trade_rows
from adapters.live.ws_venue import ParseError, WsVenue
from engine.errors import DataError, UsageError
from engine.events import SIDE_BUY, SIDE_SELL
from engine.instruments import Instrument

WS_URL: Final = "wss://stream.binance.com:9443"
REST_URL: Final = "https://api.binance.com"
STREAMS: Final = ("depth@100ms", "trade", "bookTicker")
MAX_STREAMS: Final = 1024
DEFAULT_REST_LIMITS: Final = (
    Limit("REQUEST_WEIGHT", 6000, 60.0),
    Limit("RAW_REQUESTS", 61000, 300.0),
)

_DEPTH, _TRADE, _TICKER = range(3)
_KNOWN_FIELDS: Final = {
    _DEPTH: frozenset({"e", "E", "s", "U", "u", "b", "a"}),
    _TRADE: frozenset({"e", "E", "s", "t", "p", "q", "T", "m", "M"}),
    _TICKER: frozenset({"u", "s", "b", "B", "a", "A"}),
}
_KIND_NAMES: Final = {_DEPTH: "depthUpdate", _TRADE: "trade", _TICKER: "bookTicker"}


def depth_weight(limit: int) -> int:
    """REST weight of GET /api/v3/depth with this limit."""
    if not 1 <= limit <= 5000:
        raise UsageError(f"depth limit must be within 1..5000, got {limit}")
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


@dataclass(frozen=True)
class SymbolFilters:
    """The exchangeInfo filters of one symbol that matter for prices, sizes and orders."""

    symbol: str
    status: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal | None
    """From NOTIONAL (or the older MIN_NOTIONAL) filter; None when neither is present."""
    venue: str = VENUE_SPOT
    kind: str = "spot"
    """The engine instrument kind (`spot`; USD-M perpetuals: `perpetual`)."""

    def instrument(self) -> Instrument:
        """The engine instrument: tick = tickSize, lot = stepSize."""
        return Instrument(
            symbol=self.symbol,
            venue=self.venue,
            tick_size=self.tick_size.normalize(),
            lot_size=self.step_size.normalize(),
            kind=self.kind,
        )


def parse_exchange_info(
    info: Mapping[str, Any], *, venue: str = VENUE_SPOT, kind: str = "spot"
) -> tuple[dict[str, SymbolFilters], list[Limit]]:
    """Symbol filters and REST rate limits from a GET /api/v3/exchangeInfo body.

    USD-M futures' `/fapi/v1/exchangeInfo` has the same shape, except that its MIN_NOTIONAL
    filter names the amount `notional` (spot: `minNotional`); both are read.

    Raises:
        DataError: a symbol without PRICE_FILTER or LOT_SIZE, or a malformed number.
    """
    out: dict[str, SymbolFilters] = {}
    try:
        for sym in info["symbols"]:
            name = sym["symbol"]
            filters = {f["filterType"]: f for f in sym.get("filters", ())}
            if "PRICE_FILTER" not in filters or "LOT_SIZE" not in filters:
                raise DataError(f"{name}: no PRICE_FILTER or LOT_SIZE", field="filters")
            notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL")
            out[name] = SymbolFilters(
                symbol=name,
                status=str(sym.get("status", "")),
                tick_size=Decimal(filters["PRICE_FILTER"]["tickSize"]),
                step_size=Decimal(filters["LOT_SIZE"]["stepSize"]),
                min_qty=Decimal(filters["LOT_SIZE"].get("minQty", "0")),
                min_notional=None
                if notional is None
                else Decimal(notional.get("minNotional", notional.get("notional"))),
                venue=venue,
                kind=kind,
            )
        limits = limits_from_binance(info.get("rateLimits", ()))
    except (KeyError, TypeError, ArithmeticError, ValueError) as exc:
        raise DataError(f"unexpected exchangeInfo shape: {exc!r}", field="symbols") from None
    return out, limits


class BinanceSpotMarketData(WsVenue):
    """Live Binance spot books, trades and quotes as event rows.

    Args:
        symbols: e.g. ["BTCUSDT"].
        ws_url, rest_url: the venue (or the sandbox: `SandboxMarketData.ws_url/rest_url`).
        instruments: tick and lot sizes by symbol; fetched from exchangeInfo at `start()`
            for the symbols missing.
        depth_limit: levels a side of each REST snapshot (5000 at most).
        streams: the per-symbol streams to subscribe.
        rest: a RestClient to use (default: one on `rest_url` with Binance's limits).
        **kwargs: WsVenue's (on_events, config, signer, clocks).
    """

    venue: ClassVar[str] = VENUE_SPOT
    rotate_after: ClassVar[float | None] = 23.5 * 3600
    connect_budget: ClassVar[tuple[int, float]] = (300, 300.0)
    ws_send_limits: ClassVar[tuple[Limit, ...]] = (Limit("MESSAGES", 5, 1.0),)
    snapshot_from_rest: ClassVar[bool] = True
    depth_path: ClassVar[str] = "/api/v3/depth"
    exchange_info_path: ClassVar[str] = "/api/v3/exchangeInfo"
    instrument_kind: ClassVar[str] = "spot"

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        ws_url: str = WS_URL,
        rest_url: str = REST_URL,
        instruments: Mapping[str, Instrument] | None = None,
        depth_limit: int = 1000,
        streams: Sequence[str] = STREAMS,
        rest: RestClient | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not symbols:
            raise UsageError("no symbols to subscribe")
        if len(symbols) * len(streams) > MAX_STREAMS:
            raise UsageError(f"more than {MAX_STREAMS} streams on one connection")
        depth_weight(depth_limit)  # validates
        self.symbols = [s.upper() for s in symbols]
        self.ws_url = ws_url.rstrip("/")
        self.depth_limit = depth_limit
        self.streams = tuple(streams)
        self.rest = rest or RestClient(
            rest_url,
            limiter=RateLimiter(DEFAULT_REST_LIMITS, clock=self._mono, sleep=self._sleep),
            used_weight=("x-mbx-used-weight-1m", "REQUEST_WEIGHT"),
        )
        self.filters: dict[str, SymbolFilters] = {}
        self._routes: dict[str, tuple[int, str]] = {}
        for sym in self.symbols:
            for stream in self.streams:
                kind = stream.split("@", 1)[0]
                code = {"depth": _DEPTH, "trade": _TRADE, "bookTicker": _TICKER}.get(kind)
                if code is None:
                    raise UsageError(f"unsupported stream {stream!r} (depth, trade, bookTicker)")
                self._routes[f"{sym.lower()}@{stream}"] = (code, sym)
        self._last_trade: dict[str, int] = {}
        self._last_ticker: dict[str, int] = {}
        self.repeated_trades = 0
        self.repeated_tickers = 0
        self.shutdown_notices = 0
        for sym, inst in (instruments or {}).items():
            self._register(sym.upper(), inst)

    def _register(self, symbol: str, inst: Instrument) -> None:
        if symbol not in self.symbols:
            return
        if inst.symbol != symbol:
            raise UsageError(f"instrument {inst.symbol} given for symbol {symbol}")
        self.add_book(symbol, inst)

    async def load_instruments(self) -> dict[str, SymbolFilters]:
        """Fetch exchangeInfo for our symbols: filters, instruments and the REST limits."""
        info = await self.rest.get_json(
            self.exchange_info_path,
            self.exchange_info_params(),
            costs={"REQUEST_WEIGHT": 20, "RAW_REQUESTS": 1},
        )
        filters, limits = parse_exchange_info(info, venue=self.venue, kind=self.instrument_kind)
        missing = [s for s in self.symbols if s not in filters]
        if missing:
            raise DataError(f"exchangeInfo does not list {', '.join(missing)}", field="symbols")
        self.filters.update(filters)
        if limits:
            self.rest.limiter = RateLimiter(limits, clock=self._mono, sleep=self._sleep)
        for sym in self.symbols:
            if sym not in self._iids:
                self._register(sym, filters[sym].instrument())
        return filters

    def depth_cost(self) -> int:
        """REST weight of one depth snapshot at `depth_limit`."""
        return depth_weight(self.depth_limit)

    def exchange_info_params(self) -> dict[str, Any]:
        """Query of the exchangeInfo request (spot: our symbols)."""
        return {"symbols": orjson.dumps(self.symbols).decode()}

    async def start(self) -> None:
        """Fetch missing instruments, then connect in the background."""
        if any(sym not in self._iids for sym in self.symbols):
            await self.load_instruments()
        await super().start()

    def book_id(self, symbol: str) -> int:
        """The id the local book is at (snapshot `lastUpdateId` or last applied `u`)."""
        return self.sequencer(symbol.upper()).book_id

    # -- WsVenue hooks ---------------------------------------------------------------------

    def url(self) -> str:
        return f"{self.ws_url}/stream"

    def subscribe_requests(self) -> list[dict]:
        return [{"method": "SUBSCRIBE", "params": list(self._routes)}]

    def book_rule(self, key: str) -> Rule:
        def spot_rule(bridging: bool, book_id: int, first: int, last: int, prev: int | None):
            return depth_diff_verdict(False, bridging, book_id, first, last, None)

        return spot_rule

    async def fetch_snapshot(self, key: str) -> BookUpdate:
        data = await self.rest.get_json(
            self.depth_path,
            {"symbol": key, "limit": self.depth_limit},
            costs={"REQUEST_WEIGHT": self.depth_cost(), "RAW_REQUESTS": 1},
        )
        ts = self._now_ns()
        iid, inst = self.instrument_of(key)
        try:
            last = int(data["lastUpdateId"])
            rows = book_rows(
                iid,
                inst,
                data["bids"],
                data["asks"],
                ts_exch=ts,
                ts_local=ts,
                snapshot=True,
                exch_missing=True,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{key}: unexpected depth snapshot shape: {exc!r}") from None
        return BookUpdate(key, True, last, last, None, rows, ts, ts)

    # What differs between Binance's spot and futures streams (binance_futures_md overrides).
    known_fields: ClassVar[dict[int, frozenset]] = _KNOWN_FIELDS
    kind_names: ClassVar[dict[int, str]] = _KIND_NAMES

    def depth_ids(self, data: dict) -> tuple[int, int, int | None]:
        """First and last update id of a depth diff, and the previous diff's last (if sent)."""
        return int(data["U"]), int(data["u"]), None

    def depth_time_ns(self, data: dict) -> int:
        """The venue's time of a depth diff."""
        return int(data["E"]) * MS

    def trade_id(self, data: dict) -> int:
        """The id that orders trades (repeats are dropped)."""
        return int(data["t"])

    def ticker_time_ns(self, data: dict) -> int | None:
        """The venue's time of a bookTicker, None when the stream does not send one."""
        return None

    def parse(self, msg: Any, ts_local: int) -> Sequence[np.ndarray | BookUpdate]:
        if not isinstance(msg, dict):
            raise ParseError(f"expected a JSON object, got {type(msg).__name__}")
        stream = msg.get("stream")
        data = msg.get("data") if stream is not None else msg
        if isinstance(data, dict) and data.get("e") == "serverShutdown":
            self.shutdown_notices += 1
            self.request_rotation("serverShutdown")
            return ()
        if stream is None:
            self.note_unknown("(no stream) " + ",".join(sorted(msg)[:4]))
            return ()
        route = self._routes.get(stream)
        if route is None:
            self.note_unknown(str(stream))
            return ()
        if not isinstance(data, dict):
            raise ParseError(f"{stream}: data is not an object")
        kind, symbol = route
        extra = data.keys() - self.known_fields[kind]
        if extra:
            self.note_unknown_fields(self.kind_names[kind], extra)
        if data["s"] != symbol:
            raise ParseError(f"{stream}: symbol {data['s']!r}")
        iid, inst = self.instrument_of(symbol)
        if kind == _DEPTH:
            first, last, prev = self.depth_ids(data)
            exch = self.depth_time_ns(data)
            rows = book_rows(
                iid, inst, data["b"], data["a"], ts_exch=exch, ts_local=ts_local, snapshot=False
            )
            return [BookUpdate(symbol, False, first, last, prev, rows, exch, ts_local)]
        if kind == _TRADE:
            tid = self.trade_id(data)
            if tid <= self._last_trade.get(symbol, -1):
                self.repeated_trades += 1
                return ()
            side = SIDE_SELL if data["m"] else SIDE_BUY
            rows = trade_rows(
                iid, inst, [(data["p"], data["q"], side, int(data["T"]) * MS)], ts_local=ts_local
            )
            self._last_trade[symbol] = tid
            return [rows]
        uid = int(data["u"])
        if uid <= self._last_ticker.get(symbol, -1):
            self.repeated_tickers += 1
            return ()
        exch = self.ticker_time_ns(data)
        rows = quote_rows(
            iid,
            inst,
            data["b"],
            data["B"],
            data["a"],
            data["A"],
            ts_exch=ts_local if exch is None else exch,
            ts_local=ts_local,
            exch_missing=exch is None,
        )
        self._last_ticker[symbol] = uid
        return [rows]
