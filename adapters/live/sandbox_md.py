"""A sandbox venue on loopback that speaks Binance spot market data (the server side).

It replays recorded data (a Binance WebSocket capture from ../shared/data/binance-ws, or any
event stream) as a live venue would: one market timeline, broadcast to whichever
connections are subscribed at the moment, while a REST endpoint serves snapshots of the
sandbox's own book at the same instant. A client that connects late, or reconnects, sees
what a real client sees: diffs from "now" on, and must fetch a snapshot to sync.

Endpoints, HTTP and WebSocket on one port (websockets' `process_request` hook answers the
plain HTTP GETs before any WebSocket handshake; one port keeps the sandbox one address):

- `GET /api/v3/depth?symbol=S&limit=N` -> `{"lastUpdateId", "bids", "asks"}`, best first,
  N in 1..5000 (default 100). The `X-MBX-USED-WEIGHT-1M` header reports the weight spent.
- `GET /api/v3/exchangeInfo[?symbol=S | ?symbols=["S",...]]` -> `rateLimits` and `symbols`
  with PRICE_FILTER (tickSize), LOT_SIZE (stepSize) and NOTIONAL (minNotional) filters.
- `GET /api/v3/time` -> `{"serverTime"}`; `GET /api/v3/ping` -> `{}`.
- WebSocket `/stream[?streams=a/b]`: combined streams `<sym>@depth@100ms` (or `@depth`),
  `<sym>@trade`, `<sym>@bookTicker` in `{"stream", "data"}` envelopes; control frames
  SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS answered `{"result", "id"}`.
  Raw streams (`/ws/<name>`) and `@depth` at 1000 ms batching are not emulated: `@depth`
  carries the same diffs as `@depth@100ms`.

Replay (built by `adapters.live.sandbox_replay`): the book starts at the capture's REST
snapshot (or the stream's first snapshot); messages follow in recorded order, paced by
their receive times divided by `speed` (0: as fast as the sockets take them). The replay
starts with the first SUBSCRIBE (or `start_replay()`); `replay_done` is set at its end,
after which the server keeps serving the final book.

Fault injection (`Faults.parse("drop_diff=5,dup_diff=9,kill_socket_after=40")`; a key may
repeat, counts are 1-based):
  drop_diff=N            the N-th depth diff is applied to the sandbox book but not sent
  dup_diff=N             the N-th depth diff is sent twice
  kill_socket_after=N    after the N-th replayed message, every client socket is aborted
                         (TCP reset, no close frame)
  server_shutdown_after=N  after the N-th message, a `{"e": "serverShutdown"}` event goes
                         to every client, whose sockets are closed `shutdown_grace` s later
  bad_frame=N            after the N-th message, a malformed JSON frame to every client
  bad_shape=N            after the N-th message, a trade frame missing its fields
  no_reply=N             the N-th control request is carried out but never answered
  http_429=N             the first N REST requests are answered 429 with Retry-After
  retry_after=S          the Retry-After of those answers, seconds (default 1)

Faults of the order side, used by the `/ws-api/v3` endpoint of `sandbox_exec.SandboxVenue`
(requests and user events are counted from 1 over the server's life):
  delay_ack=MS           replies to order requests, and the user events they cause, are
                         held MS ms (the orders execute at once)
  reorder_user=N         the N-th user event is sent after the (N+1)-th
  dup_fill=N             the N-th fill (TRADE executionReport) is sent twice
  kill_ws_api_after=N    the N-th WS-API request is carried out, then every WS-API socket
                         is aborted before its reply
  drop_reply=N           the N-th WS-API request is carried out but never answered
`bad_frame` and `bad_shape` also reach WS-API sessions (a malformed frame, an
executionReport missing its fields).

Subclasses add WebSocket endpoints (`ws_paths`, `serve_ws`) and follow the replay
(`on_message`, called after each message is broadcast).
"""

from __future__ import annotations

import asyncio
import http
import logging
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from adapters.live.event_loop import cancel_and_wait
from adapters.live.sandbox_replay import CHANNELS, MS, Replay, ReplayMessage, SandboxBook
from adapters.live.ws_direct import DirectServerConnection
from engine.errors import UsageError

log = logging.getLogger(__name__)

RATE_LIMITS: Final = (
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
)
_LOOPBACK: Final = {"127.0.0.1", "::1", "localhost"}

# -- faults ---------------------------------------------------------------------------------

_COUNT_KEYS: Final = (
    "drop_diff",
    "dup_diff",
    "kill_socket_after",
    "server_shutdown_after",
    "bad_frame",
    "bad_shape",
    "no_reply",
    "reorder_user",
    "dup_fill",
    "kill_ws_api_after",
    "drop_reply",
)
_SCALAR_KEYS: Final = ("http_429", "retry_after", "delay_ack", "listenkey_silent")


@dataclass(frozen=True)
class Faults:
    """What the sandbox does wrong, and when (see the module docstring)."""

    drop_diff: frozenset[int] = frozenset()
    dup_diff: frozenset[int] = frozenset()
    kill_socket_after: frozenset[int] = frozenset()
    server_shutdown_after: frozenset[int] = frozenset()
    bad_frame: frozenset[int] = frozenset()
    bad_shape: frozenset[int] = frozenset()
    no_reply: frozenset[int] = frozenset()
    reorder_user: frozenset[int] = frozenset()
    dup_fill: frozenset[int] = frozenset()
    kill_ws_api_after: frozenset[int] = frozenset()
    drop_reply: frozenset[int] = frozenset()
    http_429: int = 0
    retry_after: int = 1
    delay_ack: int = 0
    """Milliseconds."""
    listenkey_silent: int = 0
    """USD-M user stream: after this many user events, the listenKey expires silently (no
    more events, no listenKeyExpired; a keepalive gets -1125). 0: never."""

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        """`"drop_diff=5,dup_diff=9"` -> Faults; UsageError names an unknown key or value."""
        if not spec:
            return cls()
        sets: dict[str, set[int]] = {k: set() for k in _COUNT_KEYS}
        scalars: dict[str, int] = {}
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep:
                raise UsageError(f"fault {part!r}: expected KEY=N")
            try:
                n = int(value)
            except ValueError:
                raise UsageError(f"fault {key}: {value!r} is not an integer") from None
            if n < 0 or (n == 0 and key in sets):
                raise UsageError(f"fault {key}: {n} is out of range (counts start at 1)")
            if key in sets:
                sets[key].add(n)
            elif key in _SCALAR_KEYS:
                scalars[key] = n
            else:
                known = ", ".join((*_COUNT_KEYS, *_SCALAR_KEYS))
                raise UsageError(f"unknown fault {key!r}; known: {known}")
        return cls(**{k: frozenset(v) for k, v in sets.items()}, **scalars)


# -- the server -----------------------------------------------------------------------------


class _Client:
    """One WebSocket connection and its subscriptions."""

    def __init__(
        self,
        ws: ServerConnection,
        streams: Iterable[str],
        channels: dict[str, str] | None = None,
    ) -> None:
        self.ws = ws
        self.channels = channels or {c: c for c in CHANNELS}
        """Stream type (the part after `@`) -> the replay channel it carries."""
        self.streams: list[str] = []
        for s in streams:
            if s not in self.streams:
                self.streams.append(s)

    def stream_for(self, symbol: str, channel: str) -> str | None:
        """The subscribed name that carries this symbol's channel, if any."""
        low = symbol.lower()
        for name in self.streams:
            parts = name.split("@")
            if parts[0] == low and len(parts) > 1 and self.channels.get(parts[1]) == channel:
                return name
        return None


class SandboxMarketData:
    """The sandbox server. Use `async with SandboxMarketData(replay) as sb:`.

    Subclasses extend it (one port, one replay): `ws_paths` lists the WebSocket paths
    accepted, `serve_ws` serves those other than `/stream`, `on_message` follows the replay,
    `rate_limits` is what exchangeInfo publishes.

    Args:
        replay: the timeline (`replay_from_capture` or `replay_from_events`).
        speed: multiple of recorded time (0: as fast as possible).
        faults: a Faults or its spec string.
        host: a loopback address (the sandbox refuses anything else).
        port: 0 lets the OS choose (read `port` after `start()`).
        autostart: start the replay at the first SUBSCRIBE (else `start_replay()`).
        shutdown_grace: seconds between a serverShutdown event and closing the sockets.
    """

    ws_paths: tuple[str, ...] = ("/stream",)
    stream_paths: dict[str, dict[str, str] | None] = {"/stream": None}
    """Market-stream WebSocket paths -> their stream types (None: depth, trade, bookTicker),
    each mapped to the replay channel it carries (USD-M futures: `aggTrade` -> `trade`)."""

    def __init__(
        self,
        replay: Replay,
        *,
        speed: float = 0.0,
        faults: Faults | str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        autostart: bool = True,
        shutdown_grace: float = 0.5,
    ) -> None:
        if host not in _LOOPBACK:
            raise UsageError(f"the sandbox listens on loopback only, not {host!r}")
        if speed < 0:
            raise UsageError(f"speed must not be negative, got {speed}")
        self.replay = replay
        self.speed = speed
        self.faults = faults if isinstance(faults, Faults) else Faults.parse(faults)
        self.host = host
        self.port = port
        self.autostart = autostart
        self.shutdown_grace = shutdown_grace
        self.books = {sym: book.copy() for sym, book in replay.books.items()}
        self.rate_limits: list[dict] = [dict(r) for r in RATE_LIMITS]
        """exchangeInfo's `rateLimits`."""
        self.clock_skew_ms = 0
        """The venue's clock minus ours (serverTime, and what signed requests are held to)."""
        self.replay_done = asyncio.Event()
        self._server: Server | None = None
        self._clients: set[_Client] = set()
        self._replay_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._weight_minute = 0
        self._weight = 0
        # Counters.
        self.messages_sent = 0
        """Replayed messages so far (the count the faults refer to)."""
        self.diffs_sent = 0
        self.diffs_dropped = 0
        self.diffs_duplicated = 0
        self.sockets_killed = 0
        self.shutdowns_sent = 0
        self.bad_frames_sent = 0
        self.ws_connections = 0
        self.control_requests = 0
        self.rest_requests = 0
        self.throttled = 0

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> SandboxMarketData:
        """Listen (HTTP and WebSocket on one port)."""
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            process_request=self._process_request,
            ping_interval=None,
            # WS-API requests are handled as they are parsed (sandbox_exec), like a venue's
            # gateway would, not on the event loop's next turn.
            create_connection=DirectServerConnection,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Stop the replay and the server."""
        await cancel_and_wait((self._replay_task, *self._tasks))
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> SandboxMarketData:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def ws_url(self) -> str:
        """Base WebSocket URL (the client appends `/stream`)."""
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        """Base REST URL."""
        return f"http://{self.host}:{self.port}"

    def server_time_ms(self) -> int:
        """The venue's clock, ms since the epoch (our wall clock plus `clock_skew_ms`)."""
        return time.time_ns() // MS + self.clock_skew_ms

    def book(self, symbol: str) -> SandboxBook:
        """The sandbox's current book of a symbol."""
        return self.books[symbol]

    def start_replay(self) -> None:
        """Start the replay now (idempotent)."""
        if self._replay_task is None:
            self._replay_task = asyncio.create_task(self._replay(), name="sandbox:replay")

    # -- replay ----------------------------------------------------------------------------

    async def _replay(self) -> None:
        faults = self.faults
        prev: int | None = None
        diff_no = 0
        for i, m in enumerate(self.replay.messages, 1):
            if self.speed > 0 and prev is not None and m.ts > prev:
                await asyncio.sleep((m.ts - prev) / 1e9 / self.speed)
            else:
                await asyncio.sleep(0)
            prev = m.ts
            copies = 1
            if m.channel == "depth":
                diff_no += 1
                self.books[m.symbol].apply(m.data)
                if diff_no in faults.drop_diff:
                    copies = 0
                    self.diffs_dropped += 1
                elif diff_no in faults.dup_diff:
                    copies = 2
                    self.diffs_duplicated += 1
                self.diffs_sent += copies
            await self._broadcast(m, copies)
            self.messages_sent = i
            await self.on_message(i, m)
            await self._after(i)
        self.replay_done.set()

    async def on_message(self, i: int, m: ReplayMessage) -> None:
        """After the i-th replayed message (1-based) went out; for subclasses."""

    async def _broadcast(self, m: ReplayMessage, copies: int) -> None:
        if copies == 0:
            return
        texts: dict[str, str] = {}
        for client in list(self._clients):
            name = client.stream_for(m.symbol, m.channel)
            if name is None:
                continue
            text = texts.get(name)
            if text is None:
                text = texts[name] = orjson.dumps({"stream": name, "data": m.data}).decode()
            for _ in range(copies):
                await self._send(client, text)

    async def _send(self, client: _Client, text: str) -> None:
        try:
            await client.ws.send(text)
        except ConnectionClosed:
            pass

    async def _after(self, i: int) -> None:
        """Faults that follow the i-th replayed message."""
        f = self.faults
        if i in f.bad_frame:
            for client in list(self._clients):
                self.bad_frames_sent += 1
                await self._send(client, '{"stream": "x@trade", "data": {"e": "tra')
        if i in f.bad_shape:
            for client in list(self._clients):
                for sym in self.replay.specs:
                    name = client.stream_for(sym, "trade")
                    if name is not None:
                        self.bad_frames_sent += 1
                        text = orjson.dumps({"stream": name, "data": {"e": "trade", "s": sym}})
                        await self._send(client, text.decode())
        if i in f.kill_socket_after:
            for client in list(self._clients):
                self.sockets_killed += 1
                client.ws.transport.abort()
        if i in f.server_shutdown_after:
            doomed = list(self._clients)
            event = orjson.dumps({"e": "serverShutdown", "E": time.time_ns() // MS}).decode()
            for client in doomed:
                self.shutdowns_sent += 1
                await self._send(client, event)
            task = asyncio.create_task(self._close_later(doomed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _close_later(self, clients: list[_Client]) -> None:
        await asyncio.sleep(self.shutdown_grace)
        for client in clients:
            await client.ws.close(1001, "server shutdown")

    # -- WebSocket ---------------------------------------------------------------------------

    async def serve_ws(self, path: str, ws: ServerConnection) -> None:
        """Serve a WebSocket on one of `ws_paths` other than `/stream` (subclasses)."""
        await ws.close(1008, f"no WebSocket endpoint {path}")

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        path, _, query = ws.request.path.partition("?")
        if path not in self.stream_paths:
            await self.serve_ws(path, ws)
            return
        initial = urllib.parse.parse_qs(query).get("streams", [""])[-1]
        client = _Client(ws, [s for s in initial.split("/") if s], self.stream_paths[path])
        self._clients.add(client)
        self.ws_connections += 1
        if client.streams and self.autostart:
            self.start_replay()
        try:
            async for frame in ws:
                await self._control(client, frame)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)

    async def _control(self, client: _Client, frame: str | bytes) -> None:
        self.control_requests += 1
        n = self.control_requests
        try:
            msg = orjson.loads(frame)
            method = msg["method"]
            rid = msg.get("id")
            params = msg.get("params", [])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._send(client, orjson.dumps({"code": 3, "msg": "Invalid JSON"}).decode())
            return
        result: Any = None
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            bad = [s for s in params if not self._known_stream(s, client)]
            if bad or not isinstance(params, list):
                reply = {"error": {"code": 2, "msg": f"Invalid request: {bad}"}, "id": rid}
                await self._send(client, orjson.dumps(reply).decode())
                return
            if method == "SUBSCRIBE":
                client.streams += [s for s in params if s not in client.streams]
                if self.autostart:
                    self.start_replay()
            else:
                client.streams = [s for s in client.streams if s not in params]
        elif method == "LIST_SUBSCRIPTIONS":
            result = list(client.streams)
        else:
            reply = {"error": {"code": 2, "msg": f"Invalid request: method {method}"}, "id": rid}
            await self._send(client, orjson.dumps(reply).decode())
            return
        if n in self.faults.no_reply:
            return
        await self._send(client, orjson.dumps({"result": result, "id": rid}).decode())

    def _known_stream(self, name: object, client: _Client) -> bool:
        if not isinstance(name, str):
            return False
        parts = name.split("@")
        return (
            len(parts) >= 2
            and parts[0].upper() in self.replay.specs
            and parts[1] in client.channels
            and (parts[1] == "depth" or len(parts) == 2)
        )

    # -- REST ------------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if path in self.ws_paths:
                return None
            return self._json(404, {"code": -1, "msg": f"no WebSocket endpoint {path}"})
        self.rest_requests += 1
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
        if self.throttled < self.faults.http_429:
            self.throttled += 1
            headers = [("Retry-After", str(self.faults.retry_after))]
            return self._json(429, {"code": -1003, "msg": "Too many requests."}, headers)
        try:
            answer = self.serve_rest(path, params)
            if answer is not None:
                return answer
            if path == "/api/v3/depth":
                return self._depth(params)
            if path == "/api/v3/exchangeInfo":
                return self._exchange_info(params)
            if path == "/api/v3/time":
                return self._json(200, {"serverTime": self.server_time_ms()}, weight=1)
            if path == "/api/v3/ping":
                return self._json(200, {}, weight=1)
        except _BadRequest as exc:
            return self._json(400, {"code": exc.code, "msg": str(exc)})
        return self._json(404, {"code": -1, "msg": f"no endpoint {path}"})

    def serve_rest(self, path: str, params: dict[str, str]) -> Response | None:
        """Answer a GET of a subclass's REST path (None: not one of its paths). Raise
        `RestError(code, msg)` for a 400 with Binance's error body; answer with `json_response`."""
        return None

    def json_response(self, status: int, body: Any, *, weight: int = 0) -> Response:
        """A JSON answer with Binance's headers (the used-weight count includes `weight`)."""
        return self._json(status, body, weight=weight)

    def _depth(self, params: dict[str, str]) -> Response:
        symbol = params.get("symbol", "")
        if symbol not in self.books:
            raise _BadRequest(-1121, "Invalid symbol.")
        try:
            limit = int(params.get("limit", "100"))
        except ValueError:
            raise _BadRequest(-1100, "Illegal characters found in parameter 'limit'.") from None
        if not 1 <= limit <= 5000:
            raise _BadRequest(-1100, "Parameter 'limit' out of range.")
        weight = 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        return self._json(200, self.books[symbol].depth(limit), weight=weight)

    def _exchange_info(self, params: dict[str, str]) -> Response:
        if "symbol" in params:
            wanted = [params["symbol"]]
        elif "symbols" in params:
            try:
                wanted = list(orjson.loads(params["symbols"]))
            except orjson.JSONDecodeError:
                raise _BadRequest(-1100, "Illegal characters in parameter 'symbols'.") from None
        else:
            wanted = list(self.replay.specs)
        unknown = [s for s in wanted if s not in self.replay.specs]
        if unknown:
            raise _BadRequest(-1121, f"Invalid symbol: {unknown}")
        body = {
            "timezone": "UTC",
            "serverTime": self.server_time_ms(),
            "rateLimits": list(self.rate_limits),
            "exchangeFilters": [],
            "symbols": [self.replay.specs[s].info() for s in wanted],
        }
        return self._json(200, body, weight=20)

    def _json(
        self,
        status: int,
        body: Any,
        headers: Sequence[tuple[str, str]] = (),
        *,
        weight: int = 0,
    ) -> Response:
        minute = int(time.time() // 60)
        if minute != self._weight_minute:
            self._weight_minute, self._weight = minute, 0
        self._weight += weight
        data = orjson.dumps(body)
        h = Headers(
            [
                ("Content-Type", "application/json;charset=UTF-8"),
                ("Content-Length", str(len(data))),
                ("Connection", "close"),
                ("X-MBX-USED-WEIGHT-1M", str(self._weight)),
                *headers,
            ]
        )
        return Response(status, http.HTTPStatus(status).phrase, h, data)


class RestError(Exception):
    """A REST request the venue refuses: HTTP 400 with `{"code", "msg"}`."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code


_BadRequest = RestError
