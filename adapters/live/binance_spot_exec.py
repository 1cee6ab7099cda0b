"""Binance spot order execution over the WebSocket API (`/ws-api/v3`), as `ExecEvent`s.

One connection carries the requests and the user data stream:

- Requests: `place` -> `order.place` (LIMIT with timeInForce, LIMIT_MAKER for post-only,
  MARKET; our client id as newClientOrderId; newOrderRespType ACK), `cancel` ->
  `order.cancel` (origClientOrderId; the cancel's own id as newClientOrderId), `amend` ->
  `order.cancelReplace` with cancelReplaceMode STOP_ON_FAILURE, `cancel_all` ->
  `openOrders.cancelAll`, `order_status` -> `order.status` (and `myTrades` to recover fills).
  Every signed request carries apiKey, a `timestamp` from `ClockOffset` (measured with the
  `time` method on each connection), `recvWindow` and the signature of the `Signer`.
- Amend: decision: cancel-replace, not `order.amend.keepPriority`. Keep-priority only
  lowers the quantity (no price change), only on symbols with `allowAmend`, and gives the
  order a new client id in place; cancel-replace covers every amend the engine can ask for
  and is a plain cancel plus a new order with our new client id, which the journal and the
  sandbox (whose engine has no amend command) already model. It loses queue priority.
- User data: HMAC keys subscribe with `userDataStream.subscribe.signature`; Ed25519 keys
  log the session on (`session.logon`) and `userDataStream.subscribe`, as Binance documents
  (logon is Ed25519-only). Re-done on every (re)connection. `executionReport`s become events:
  x=NEW -> ack, TRADE -> fill (t trade id, l/L qty/price, z cumulative, n/N fee, m maker),
  CANCELED -> canceled (the order is `C` when a cancel renamed it), EXPIRED and
  TRADE_PREVENTION/EXPIRED_IN_MATCH -> expired, REJECTED -> reject (a cancel-replace's new
  order), REPLACED -> amended.
- Outcomes: error codes -1006 and -1007, any 5xx status, a timeout or a connection lost
  after sending mean the outcome is UNKNOWN: an `unknown` event, never a resend. It is
  resolved by the next report about the order or, after `resolve_after` seconds (at once
  after a reconnection), by `order.status` (+ `myTrades`): `resolved`, then the true state.
  Other errors are rejects with Binance's code and message (-2010 'Duplicate order sent.',
  -1013 filter failures, -1021 timestamp, which also re-measures the clock...).
- After a reconnection every open order is checked with `order.status`: fills and ends
  missed while disconnected are reported (once: `OrderTracker` deduplicates by trade id).
- Local checks before a byte is sent: the symbol's filters (`VenueFilters`, from
  `exchangeInfo`, fetched on the first connection) and the rate limits (`rateLimits` of
  exchangeInfo: request weight, orders per 10 s and per day). A 429 or 418 pauses sending
  until its `retryAfter`.
- Secrets: the signer holds the secret; the API key is only ever put in a request. Nothing
  here logs a request's parameters; venue messages are logged through `redact`.

The client is assembled from one part per concern, mixins sharing the state created by
`BinanceSpotExec.__init__` (none is used alone):

- `binance_user_stream.UserDataStream`: the user data stream's subscription, reports and
  event delivery.
- `binance_replies.ReplySettling`: the event that answers each request, from its reply;
  UNKNOWN outcomes; local filter rejects.
- `binance_resolution.UnknownResolution`: UNKNOWN outcomes settled by status queries;
  open orders re-checked after a reconnection.
- `binance_clock_limits.ClockAndLimits`: the venue clock, exchangeInfo (filters, rate
  limits), 429/418 and -1021 handling.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, ClassVar, Final

from adapters.binance_ws import VENUE_SPOT
from adapters.live.binance_clock_limits import ClockAndLimits
from adapters.live.binance_exec_messages import OrderStatus, order_params
from adapters.live.binance_replies import ReplySettling
from adapters.live.binance_resolution import QueryFailed, UnknownResolution
from adapters.live.binance_user_stream import UserDataStream
from adapters.live.clock_offset import ClockOffset
from adapters.live.correlation import Outcome, PendingRequests, Reply
from adapters.live.exec_events import ExecEvent, OrderRequest
from adapters.live.exec_tracker import OrderTracker
from adapters.live.rate_limit import Limit, RateLimiter
from adapters.live.secrets import Credentials, VenueRequestError
from adapters.live.signing import Signer, sign_ws_params, signer_for
from adapters.live.venue_filters import VenueFilters
from adapters.live.ws_venue import Connection, WsVenue
from engine.errors import UsageError

log = logging.getLogger(__name__)

WS_API_URL: Final = "wss://ws-api.binance.com:443/ws-api/v3"
DEFAULT_LIMITS: Final = (
    Limit("REQUEST_WEIGHT", 6000, 60.0),
    Limit("ORDERS", 100, 10.0),
    Limit("ORDERS", 200_000, 86_400.0),
)
"""Until exchangeInfo says otherwise."""
_COSTS: Final = {
    "time": {"REQUEST_WEIGHT": 1},
    "exchangeInfo": {"REQUEST_WEIGHT": 20},
    "order.place": {"REQUEST_WEIGHT": 1, "ORDERS": 1},
    "order.cancel": {"REQUEST_WEIGHT": 1},
    "order.cancelReplace": {"REQUEST_WEIGHT": 1, "ORDERS": 1},
    "openOrders.cancelAll": {"REQUEST_WEIGHT": 1},
    "order.status": {"REQUEST_WEIGHT": 4},
    "myTrades": {"REQUEST_WEIGHT": 5},  # with orderId (20 without)
}


async def _answered(event: ExecEvent) -> ExecEvent:
    """A coroutine that answers at once (a request refused before it was sent)."""
    return event


class BinanceSpotExec(UserDataStream, ReplySettling, UnknownResolution, ClockAndLimits, WsVenue):
    """Orders on Binance spot (or the sandbox) through the WebSocket API.

    Args:
        api_key: the API key (sent in signed requests, never logged).
        signer: signs requests (`signing.HmacSha256Signer` or `Ed25519Signer`).
        ws_url: the WebSocket API (the sandbox's `ws_api_url` in tests).
        symbols: symbols to trade; their filters come from exchangeInfo on the first
            connection unless `filters` has them.
        filters: VenueFilters by symbol (skip exchangeInfo for those).
        check_filters: refuse locally what the filters refuse (False: let the venue say).
        clock_offset: the venue clock estimate (default: a new one, measured on connect).
        sync_clock: measure the offset with `time` on every connection.
        recv_window_ms: recvWindow of signed requests (Binance: at most 60,000).
        resolve_after: seconds before an UNKNOWN request is settled by a status query.
        user_stream: subscribe to the user data stream.
        reconcile_on_reconnect: query every open order after a reconnection.
        rate_limits: local limits (default: DEFAULT_LIMITS, then exchangeInfo's).
        on_exec: called with each ExecEvent on the event loop; without it events go to
            `exec_queue`.
        **kwargs: WsVenue's (config, clocks, sleep).
    """

    venue: ClassVar[str] = VENUE_SPOT
    amends_in_place: ClassVar[bool] = False
    """False: an amend is a new order under the amend's client id (cancel-replace); True:
    the order is modified and keeps its id (USD-M order.modify)."""
    rotate_after: ClassVar[float | None] = 23.5 * 3600
    connect_budget: ClassVar[tuple[int, float]] = (300, 300.0)

    def __init__(
        self,
        *,
        api_key: str,
        signer: Signer,
        ws_url: str = WS_API_URL,
        symbols: Sequence[str] = (),
        filters: Mapping[str, VenueFilters] | None = None,
        check_filters: bool = True,
        clock_offset: ClockOffset | None = None,
        sync_clock: bool = True,
        recv_window_ms: int = 5000,
        resolve_after: float = 2.0,
        user_stream: bool = True,
        reconcile_on_reconnect: bool = True,
        rate_limits: Sequence[Limit] | None = None,
        on_exec: Callable[[ExecEvent], object] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not api_key:
            raise UsageError("Binance execution: the API key is empty")
        if not 0 < recv_window_ms <= 60_000:
            raise UsageError(f"recvWindow {recv_window_ms} ms: must be within 1..60000")
        self._api_key = api_key
        self.signer = signer
        self.ws_url = ws_url
        self.symbols = [s.upper() for s in symbols]
        self.filters: dict[str, VenueFilters] = dict(filters or {})
        self.check_filters = check_filters
        self.clock = clock_offset or ClockOffset(self._clock_ns)
        self.sync_clock = sync_clock
        self.recv_window_ms = recv_window_ms
        self.resolve_after = resolve_after
        self.user_stream = user_stream
        self.reconcile_on_reconnect = reconcile_on_reconnect
        self._explicit_limits = rate_limits is not None
        self.limiter = RateLimiter(
            rate_limits if rate_limits is not None else DEFAULT_LIMITS,
            clock=self._mono,
            sleep=self._sleep,
        )
        self.on_exec = on_exec
        self.exec_queue: asyncio.Queue[ExecEvent] = asyncio.Queue()
        self.tracker = OrderTracker(self._deliver)
        self._pending = PendingRequests(on_late_reply=self._on_late_reply)
        self._late: dict[Any, OrderRequest] = {}
        """Requests reported UNKNOWN by reply id, to settle them with a late reply."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._resolving: set[str] = set()
        self._cancel_all_ids = itertools.count(1)
        self._set_up = asyncio.Event()
        # Counters.
        self.exec_sink_errors = 0
        self.filter_rejects = 0
        self.venue_errors = 0
        """Error frames not tied to a request (id null), e.g. a revoked session."""
        self.stream_events = 0
        self.resolutions = 0
        self.clock_syncs = 0

    @classmethod
    def from_credentials(cls, creds: Credentials, **kwargs: Any) -> BinanceSpotExec:
        """A client with the key and signer of loaded credentials."""
        return cls(api_key=creds.api_key, signer=signer_for(creds), **kwargs)

    def __repr__(self) -> str:
        return f"BinanceSpotExec({self.ws_url!r}, state={self.state})"

    # -- the public API -------------------------------------------------------------------

    async def place(self, req: OrderRequest) -> ExecEvent:
        """Send a new order. Returns the event that answers it (ack, reject or unknown).

        The returned event was also delivered to `on_exec`, unless an execution report
        had already delivered the same fact. Fills and the order's end come later.
        """
        if req.kind != "new":
            raise UsageError(f"place() takes a new order, got a {req.kind} request")
        self.tracker.expect(req)
        refused = self._refused_locally(req)
        if refused is not None:
            return refused
        reply = await self._call("order.place", self.new_order_params(req))
        return self._settle(req, reply)

    def place_now(self, req: OrderRequest) -> Coroutine[Any, Any, ExecEvent]:
        """`place(req)`, its frame written before this returns when nothing has to wait.

        Connected, the clock measured, room in the rate budgets and an empty socket buffer:
        the request is signed and written now (the live loop sends its orders without
        waiting for the event loop's next turn), and the coroutine returned only waits for
        the answer. Otherwise it is `place(req)` itself, and nothing was done yet.
        """
        costs = _COSTS["order.place"]
        if req.kind != "new" or self.clock.best is None or self.limiter.wait_time(costs) > 0:
            return self.place(req)
        self.tracker.expect(req)
        refused = self._refused_locally(req)
        if refused is not None:
            return _answered(refused)
        payload = {"method": "order.place", "params": self.new_order_params(req)}
        sent = self.request_now(payload, signed=True)
        if sent is None:
            return self._place_later(req, payload)
        self.limiter.spend(costs)
        return self._settle_reply(req, *sent)

    async def _place_later(self, req: OrderRequest, payload: dict) -> ExecEvent:
        """place() after `expect` and the filter check were done (the connection was busy)."""
        reply = await self._call("order.place", payload["params"])
        return self._settle(req, reply)

    async def _settle_reply(self, req: OrderRequest, rid: Any, fut: Any) -> ExecEvent:
        return self._settle(req, await self.await_reply(rid, fut))

    async def cancel(self, req: OrderRequest) -> ExecEvent:
        """Cancel the order `req.orig_client_id` (request id `req.client_id`).

        Returns canceled, cancel_rejected or unknown.
        """
        if req.kind != "cancel":
            raise UsageError(f"cancel() takes a cancel request, got a {req.kind} request")
        self.tracker.expect(req)
        params = {
            "symbol": req.symbol,
            "origClientOrderId": req.orig_client_id,
            "newClientOrderId": req.client_id,
        }
        reply = await self._call("order.cancel", params)
        return self._settle(req, reply)

    async def amend(self, req: OrderRequest) -> ExecEvent:
        """Replace `req.orig_client_id` by the order `req.client_id` (cancel-replace).

        Returns amended, amend_rejected or unknown; the old order's `canceled` and the
        new one's `ack` are reported too.
        """
        if req.kind != "amend":
            raise UsageError(f"amend() takes an amend request, got a {req.kind} request")
        self.tracker.expect(req)
        refused = self._refused_locally(req)
        if refused is not None:
            return refused
        params = order_params(req)
        params["cancelReplaceMode"] = "STOP_ON_FAILURE"
        params["cancelOrigClientOrderId"] = req.orig_client_id
        reply = await self._call("order.cancelReplace", params)
        return self._settle(req, reply)

    async def cancel_all(self, symbol: str, *, client_id: str | None = None) -> list[ExecEvent]:
        """Cancel every open order of `symbol`.

        Returns `canceled` for each order the venue canceled, or one cancel_rejected
        (Binance -2011 when nothing was open) or unknown for the request, which
        `client_id` names (default `cancel_all-<n>`).
        """
        rid = client_id or f"cancel_all-{next(self._cancel_all_ids)}"
        req = OrderRequest("cancel_all", rid, symbol.upper())
        self.tracker.expect(req)
        reply = await self._call("openOrders.cancelAll", {"symbol": req.symbol})
        if reply.ok and isinstance(reply.result, list):
            return self._settle_cancel_all(req, reply.result)
        return [self._settle(req, reply)]

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Until the first connection is set up (clock measured, filters loaded, user
        stream subscribed or refused); `start()` returns before that.

        Raises:
            TimeoutError: not within `timeout` seconds.
        """
        await asyncio.wait_for(self._set_up.wait(), timeout)

    async def order_status(self, client_id: str, symbol: str | None = None) -> OrderStatus | None:
        """The venue's view of an order (None: Binance -2013, it does not exist).

        Named so because `status()` is the connection's (WsVenue). `symbol` may be left
        out for an order placed through this client.

        Raises:
            UsageError: no symbol given or known.
            VenueRequestError: no answer or another error.
        """
        if symbol is None:
            order = self.tracker.order(client_id)
            if order is None or not order.symbol:
                raise UsageError(f"order_status({client_id!r}): which symbol?")
            symbol = order.symbol
        try:
            return await self._query_status(symbol.upper(), client_id)
        except QueryFailed as exc:
            raise VenueRequestError(f"order.status {client_id}: {exc}") from None

    # -- venue flavour hooks (USD-M futures overrides these) ------------------------------

    def new_order_params(self, req: OrderRequest) -> dict[str, Any]:
        """The `order.place` parameters of a new order (spot: `order_params`)."""
        return order_params(req)

    # -- WsVenue hooks (the user stream's are in binance_user_stream) ---------------------

    def url(self) -> str:
        return self.ws_url

    async def prepare_connection(self, conn: Connection) -> None:
        """Measure the clock, and on the first connection load filters and limits."""
        if self.sync_clock:
            await self._sync_clock(conn)
        missing = [s for s in self.symbols if s not in self.filters]
        if missing and (self.check_filters or not self._explicit_limits):
            await self._load_exchange_info(conn, missing)

    def on_subscribed(self, first: bool) -> None:
        self._set_up.set()
        for req in self.tracker.unknown_requests():
            self._schedule_resolve(req.client_id, 0.0)
        if not first and self.reconcile_on_reconnect:
            self._spawn(self._reconcile_open(), "reconcile")

    def sign_request(self, request: dict) -> dict:
        """Add apiKey, timestamp (venue clock), recvWindow and the signature."""
        params = {k: v for k, v in (request.get("params") or {}).items() if k != "signature"}
        params["apiKey"] = self._api_key
        params["timestamp"] = self.clock.timestamp_ms()
        params["recvWindow"] = self.recv_window_ms
        return {**request, "params": sign_ws_params(params, self.signer)}

    def reply_of(self, msg: Any) -> Reply | None:
        """Binance's WS-API reply, keeping the status of errors (5xx means UNKNOWN)."""
        if not isinstance(msg, dict) or "event" in msg:
            return None
        rid = msg.get("id")
        if rid is None:
            return None
        self._observe_limits(msg.get("rateLimits"))
        status = msg.get("status", 200)
        if "error" in msg or (isinstance(status, int) and status >= 400):
            err = msg.get("error") if isinstance(msg.get("error"), dict) else {}
            return Reply(rid, Outcome.ERROR, error={**err, "status": status})
        if "result" in msg or "response" in msg:
            return Reply(rid, Outcome.OK, result=msg.get("result", msg.get("response")))
        return None

    async def stop(self) -> None:
        """Stop the resolution tasks, then the connection."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await super().stop()

    # -- requests and background tasks ----------------------------------------------------

    async def _call(
        self, method: str, params: dict, *, conn: Connection | None = None, signed: bool = True
    ) -> Reply:
        if signed and self.clock.best is None:
            # Connected, but the venue's clock is not measured yet: nothing is sent.
            return Reply(None, Outcome.NOT_SENT, reason="the venue's clock is not measured yet")
        await self.limiter.acquire(_COSTS.get(method, {"REQUEST_WEIGHT": 1}))
        return await self.request({"method": method, "params": params}, signed=signed, conn=conn)

    def _spawn(self, coro: Any, name: str) -> None:
        if self._closing:
            coro.close()
            return
        task = asyncio.create_task(coro, name=f"{self.venue}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
