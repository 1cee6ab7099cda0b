"""The sandbox venue speaking Binance USD-M futures market data (the server side).

`SandboxFutures` extends `SandboxMarketData` through its hooks (`stream_paths`,
`serve_rest`): same port, same replay, same faults (`drop_diff`, `dup_diff`,
`kill_socket_after`, ...). What differs is the protocol:

- WebSocket `/public/stream` serves `<sym>@depth[@100ms]` and `<sym>@bookTicker`;
  `/market/stream` serves `<sym>@aggTrade`. Subscribing a stream on the wrong route is
  refused like an unknown stream (code 2).
- `GET /fapi/v1/depth?symbol=S&limit=N` (N in 5, 10, 20, 50, 100, 500, 1000, default 500)
  -> `{"lastUpdateId", "E", "T", "bids", "asks"}`; `GET /fapi/v1/exchangeInfo` (every
  symbol; MIN_NOTIONAL's amount is `notional`); `GET /fapi/v1/time`, `/fapi/v1/ping`.

The timeline is the spot replay converted by `futures_replay`: depth diffs get `pu` (the
previous diff's `u`) and `T`, trades become aggTrades (`a` = `f` = `l` = the trade id), and
tickers get `E`/`T`. Update ids are doubled, so consecutive diffs have `U = previous u + 2`:
a client applying spot's `U == previous u + 1` rule would never sync, only the futures `pu`
rule does. `drop_diff=N` thus breaks the `pu` chain at the diff after the N-th.
"""

from __future__ import annotations

from typing import Final

from websockets.http11 import Response

from adapters.live.sandbox_md import RestError, SandboxMarketData
from adapters.live.sandbox_replay import Replay, ReplayMessage

FUTURES_DEPTH_LIMITS: Final = (5, 10, 20, 50, 100, 500, 1000)
FUTURES_RATE_LIMITS: Final = (
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
)


def futures_replay(spot: Replay) -> Replay:
    """The spot timeline as USD-M futures frames (see the module docstring)."""
    books = {}
    for sym, book in spot.books.items():
        books[sym] = copy = book.copy()
        copy.update_id = 2 * book.update_id
    prev_u = {sym: 2 * book.update_id for sym, book in spot.books.items()}
    out: list[ReplayMessage] = []
    for m in spot.messages:
        d = m.data
        ms = m.ts // 1_000_000
        if m.channel == "depth":
            first, last = 2 * int(d["U"]), 2 * int(d["u"])
            data = {
                "e": "depthUpdate",
                "E": d.get("E", ms),
                "T": d.get("E", ms),
                "s": d["s"],
                "U": first,
                "u": last,
                "pu": prev_u[m.symbol],
                "b": d["b"],
                "a": d["a"],
            }
            prev_u[m.symbol] = last
        elif m.channel == "trade":
            data = {
                "e": "aggTrade",
                "E": d.get("E", d["T"]),
                "a": d["t"],
                "s": d["s"],
                "p": d["p"],
                "q": d["q"],
                "f": d["t"],
                "l": d["t"],
                "T": d["T"],
                "m": d["m"],
            }
        else:
            data = {"e": "bookTicker", "E": ms, "T": ms, **d}
        out.append(ReplayMessage(m.ts, m.symbol, m.channel, data))
    return Replay(dict(spot.specs), books, out)


def futures_symbol_info(info: dict) -> dict:
    """A spot exchangeInfo symbol entry in the USD-M shape (MIN_NOTIONAL `notional`)."""
    filters = []
    for f in info["filters"]:
        if f["filterType"] == "NOTIONAL":
            filters.append({"filterType": "MIN_NOTIONAL", "notional": f["minNotional"]})
        else:
            filters.append(f)
    return {
        **info,
        "pair": info["symbol"],
        "contractType": "PERPETUAL",
        "marginAsset": info["quoteAsset"],
        "filters": filters,
    }


class SandboxFutures(SandboxMarketData):
    """The USD-M futures sandbox. Give it a *futures* replay (`futures_replay(spot)`).

    Args: SandboxMarketData's.
    """

    ws_paths: tuple[str, ...] = ("/public/stream", "/market/stream")
    stream_paths: dict[str, dict[str, str] | None] = {
        "/public/stream": {"depth": "depth", "bookTicker": "bookTicker"},
        "/market/stream": {"aggTrade": "trade"},
    }

    def __init__(self, replay: Replay, **kwargs) -> None:
        super().__init__(replay, **kwargs)
        self.rate_limits = [dict(r) for r in FUTURES_RATE_LIMITS]

    def serve_rest(self, path: str, params: dict[str, str]) -> Response | None:
        if path == "/fapi/v1/depth":
            return self._futures_depth(params)
        if path == "/fapi/v1/exchangeInfo":
            body = {
                "timezone": "UTC",
                "serverTime": self.server_time_ms(),
                "rateLimits": list(self.rate_limits),
                "exchangeFilters": [],
                "symbols": [futures_symbol_info(s.info()) for s in self.replay.specs.values()],
            }
            return self.json_response(200, body, weight=1)
        if path == "/fapi/v1/time":
            return self.json_response(200, {"serverTime": self.server_time_ms()}, weight=1)
        if path == "/fapi/v1/ping":
            return self.json_response(200, {}, weight=1)
        return None

    def _futures_depth(self, params: dict[str, str]) -> Response:
        symbol = params.get("symbol", "")
        if symbol not in self.books:
            raise RestError(-1121, "Invalid symbol.")
        try:
            limit = int(params.get("limit", "500"))
        except ValueError:
            raise RestError(-1100, "Illegal characters found in parameter 'limit'.") from None
        if limit not in FUTURES_DEPTH_LIMITS:
            raise RestError(-1100, "Parameter 'limit' out of range.")
        weight = 2 if limit <= 50 else 5 if limit == 100 else 10 if limit == 500 else 20
        now = self.server_time_ms()
        body = {"E": now, "T": now, **self.books[symbol].depth(limit)}
        return self.json_response(200, body, weight=weight)
