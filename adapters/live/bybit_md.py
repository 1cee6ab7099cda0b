"""Bybit v5 public market data over WebSocket: order books and trades, spot or linear.

A second venue on `WsVenue`, to show what a subclass supplies. Bybit differs from Binance
in every place the base class leaves open:

- Endpoints `wss://stream.bybit.com/v5/public/{spot,linear}`; topics `orderbook.{depth}.
  {symbol}` (spot depths 1/50/200/1000, linear 1/50/200/500/1000) and `publicTrade.{symbol}`.
  Subscription `{"op": "subscribe", "args": [...], "req_id": "N"}` (at most 10 args a
  request), acknowledged `{"success": true, "op": "subscribe", "req_id": "N", ...}`: the
  correlation id field is `req_id`, a string.
- Keepalive is application-level: `{"op": "ping"}` every 20 s (Bybit drops a connection
  silent for longer); the pong is `{"op": "ping", "ret_msg": "pong"}` on spot and
  `{"op": "pong"}` on linear. No protocol-level pings are sent.
- Books need no REST snapshot: the stream sends a `snapshot` first (and again when Bybit's
  service restarts, with `u` back at 1), then `delta`s whose `u` is the previous `u + 1`
  (`adapters.bybit_history.orderbook_verdict`, shared with the history-file converter). A
  snapshot always replaces the book. After a gap the book is cleared (FLAG_RESYNC) and its
  topic is unsubscribed and subscribed again, which makes Bybit send a fresh snapshot.
- `ts_exch` is the message's `ts` (ms), like the history converter. Trades: `S` is the
  taker's side; each trade of a message is a row of its own.
- Connection attempts: 500 per 5 minutes per IP. No forced disconnect is documented, so no
  rotation by default (set `WsConfig.rotate_after` to have one).
- Instruments must be given (tick and lot from Bybit's instruments-info endpoint, which this
  module does not call).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

import numpy as np
import orjson

from adapters.bybit_history import VENUES, orderbook_verdict, parse_topic
from adapters.live.book_sync import BookUpdate, Rule, SyncState
from adapters.live.correlation import Outcome, Reply
from adapters.live.rows import MS, book_rows, trade_rows
from adapters.live.ws_venue import ParseError, WsVenue
from engine.errors import UsageError
from engine.events import SIDE_BUY, SIDE_SELL
from engine.instruments import Instrument

URLS: Final = {
    "spot": "wss://stream.bybit.com/v5/public/spot",
    "linear": "wss://stream.bybit.com/v5/public/linear",
}
DEPTHS: Final = {"spot": (1, 50, 200, 1000), "linear": (1, 50, 200, 500, 1000)}
ARGS_PER_REQUEST: Final = 10

_BOOK_FIELDS: Final = frozenset({"s", "b", "a", "u", "seq"})
_TRADE_FIELDS: Final = frozenset({"T", "s", "S", "v", "p", "L", "i", "BT", "RPI", "seq"})
_SIDES: Final = {"Buy": SIDE_BUY, "Sell": SIDE_SELL}


class BybitMarketData(WsVenue):
    """Live Bybit books and trades as event rows.

    Args:
        symbols: e.g. ["BTCUSDT"].
        instruments: tick and lot sizes by symbol (required: see the module docstring).
        category: `linear` or `spot`.
        depth: order-book depth of the topic.
        trades: also subscribe `publicTrade`.
        ws_url: override the endpoint (tests, testnet).
        ping_interval: seconds between application pings (Bybit: 20).
        **kwargs: WsVenue's (on_events, config, signer, clocks).
    """

    ws_ping_interval: ClassVar[float | None] = None
    app_ping_interval: ClassVar[float | None] = 20.0
    request_id_field: ClassVar[str] = "req_id"
    connect_budget: ClassVar[tuple[int, float]] = (500, 300.0)

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        instruments: Mapping[str, Instrument],
        category: str = "linear",
        depth: int = 50,
        trades: bool = True,
        ws_url: str | None = None,
        ping_interval: float = 20.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if category not in URLS:
            raise UsageError(f"category must be 'linear' or 'spot', got {category!r}")
        if depth not in DEPTHS[category]:
            raise UsageError(f"{category} order-book depth must be one of {DEPTHS[category]}")
        if not symbols:
            raise UsageError("no symbols to subscribe")
        self.venue = VENUES[category]  # type: ignore[misc]  # per instance: spot or linear
        self.category = category
        self.depth = depth
        self.ws_url = ws_url or URLS[category]
        self.app_ping_interval = ping_interval  # type: ignore[misc]
        self.symbols = [s.upper() for s in symbols]
        self.topics: list[str] = []
        for sym in self.symbols:
            inst = instruments.get(sym)
            if inst is None:
                raise UsageError(f"no instrument given for {sym}")
            self.add_book(sym, inst)
            self.topics.append(self.book_topic(sym))
            if trades:
                self.topics.append(f"publicTrade.{sym}")
        self._subscribed_topics = frozenset(self.topics)
        self.service_restarts = 0
        self.pongs = 0

    def book_topic(self, symbol: str) -> str:
        """The order-book topic of a symbol."""
        return f"orderbook.{self.depth}.{symbol}"

    # -- WsVenue hooks ---------------------------------------------------------------------

    def url(self) -> str:
        return self.ws_url

    def subscribe_requests(self) -> list[dict]:
        return [
            {"op": "subscribe", "args": self.topics[i : i + ARGS_PER_REQUEST]}
            for i in range(0, len(self.topics), ARGS_PER_REQUEST)
        ]

    def request_id(self, serial: int) -> Any:
        return str(serial)

    def app_ping(self) -> str | None:
        return orjson.dumps({"op": "ping"}).decode()

    def reply_of(self, msg: Any) -> Reply | None:
        if not isinstance(msg, dict) or "topic" in msg:
            return None
        op = msg.get("op")
        rid = msg.get("req_id")
        if op in ("ping", "pong") or rid in (None, ""):
            return None
        if msg.get("success", False):
            return Reply(rid, Outcome.OK, result=msg)
        return Reply(rid, Outcome.ERROR, error=msg.get("ret_msg", msg))

    def book_rule(self, key: str) -> Rule:
        return orderbook_verdict

    async def resync_book(self, key: str) -> None:
        """Resubscribe the book's topic: Bybit answers with a fresh snapshot."""
        topic = self.book_topic(key)
        await self.request({"op": "unsubscribe", "args": [topic]})
        reply = await self.request({"op": "subscribe", "args": [topic]})
        if reply.outcome is Outcome.NOT_SENT:
            raise ConnectionError("not connected")

    def parse(self, msg: Any, ts_local: int) -> Sequence[np.ndarray | BookUpdate]:
        if not isinstance(msg, dict):
            raise ParseError(f"expected a JSON object, got {type(msg).__name__}")
        op = msg.get("op")
        if op == "pong" or (op == "ping" and msg.get("ret_msg") == "pong"):
            self.pongs += 1
            return ()
        topic = msg.get("topic")
        if not isinstance(topic, str):
            self.note_unknown(f"op {op}" if op else "(no topic)")
            return ()
        if topic not in self._subscribed_topics:
            self.note_unknown(topic)
            return ()
        if topic.startswith("orderbook."):
            return self._book(msg, topic, ts_local)
        if topic.startswith("publicTrade."):
            return self._trades(msg, topic, ts_local)
        self.note_unknown(topic)
        return ()

    def _book(self, msg: dict, topic: str, ts_local: int) -> Sequence[BookUpdate]:
        _, symbol = parse_topic(topic)
        data = msg["data"]
        extra = data.keys() - _BOOK_FIELDS
        if extra:
            self.note_unknown_fields("orderbook", extra)
        kind = msg["type"]
        if kind not in ("snapshot", "delta"):
            raise ParseError(f"{topic}: unknown type {kind!r}")
        snapshot = kind == "snapshot"
        u = int(data["u"])
        if snapshot and u == 1 and self.sequencer(symbol).state != SyncState.WAIT:
            self.service_restarts += 1
        exch = int(msg["ts"]) * MS
        iid, inst = self.instrument_of(symbol)
        rows = book_rows(
            iid, inst, data["b"], data["a"], ts_exch=exch, ts_local=ts_local, snapshot=snapshot
        )
        return [BookUpdate(symbol, snapshot, u, u, None, rows, exch, ts_local)]

    def _trades(self, msg: dict, topic: str, ts_local: int) -> Sequence[np.ndarray]:
        symbol = topic.split(".", 1)[1]
        trades = []
        for t in msg["data"]:
            extra = t.keys() - _TRADE_FIELDS
            if extra:
                self.note_unknown_fields("publicTrade", extra)
            side = _SIDES.get(t["S"])
            if side is None:
                raise ParseError(f"{topic}: unknown taker side {t['S']!r}")
            trades.append((t["p"], t["v"], side, int(t["T"]) * MS))
        iid, inst = self.instrument_of(symbol)
        return [trade_rows(iid, inst, trades, ts_local=ts_local)]
