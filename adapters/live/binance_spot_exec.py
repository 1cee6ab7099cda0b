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
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, ClassVar, Final

from adapters.binance_ws import VENUE_SPOT
from adapters.live.binance_exec_messages import (
    OrderStatus,
    canceled_event,
    is_unknown_error,
    order_params,
    report_events,
    retry_after_seconds,
    status_facts,
    str_or_none,
    trade_fills,
)
from adapters.live.clock_offset import ClockOffset
from adapters.live.correlation import Outcome, PendingRequests, Reply
from adapters.live.exec_events import ExecEvent, OrderRequest
from adapters.live.exec_tracker import OrderTracker, TrackedRequest
from adapters.live.rate_limit import Limit, RateLimiter, limits_from_binance
from adapters.live.secrets import Credentials, VenueRequestError, redact
from adapters.live.signing import Ed25519Signer, Signer, sign_ws_params, signer_for
from adapters.live.venue_filters import VenueFilters
from adapters.live.ws_venue import ParseError, WsVenue, _Connection
from engine.errors import DataError, UsageError

log = logging.getLogger(__name__)

WS_API_URL: Final = "wss://ws-api.binance.com:443/ws-api/v3"
DEFAULT_LIMITS: Final = (
    Limit("REQUEST_WEIGHT", 6000, 60.0),
    Limit("ORDERS", 100, 10.0),
    Limit("ORDERS", 200_000, 86_400.0),
)
"""Until exchangeInfo says otherwise."""
_LATE_KEPT: Final = 1024
"""Requests reported UNKNOWN remembered to settle them with a late reply."""
_QUIET_EVENTS: Final = frozenset(
    {"outboundAccountPosition", "balanceUpdate", "listStatus", "externalLockUpdate"}
)
"""User data events that carry nothing for order execution (not counted as unknown)."""
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


class _QueryFailed(Exception):
    """A status query got no usable answer (timeout, no connection, an error)."""


async def _answered(event: ExecEvent) -> ExecEvent:
    """A coroutine that answers at once (a request refused before it was sent)."""
    return event


class BinanceSpotExec(WsVenue):
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
        except _QueryFailed as exc:
            raise VenueRequestError(f"order.status {client_id}: {exc}") from None

    # -- venue flavour hooks (USD-M futures overrides these) ------------------------------

    def new_order_params(self, req: OrderRequest) -> dict[str, Any]:
        """The `order.place` parameters of a new order (spot: `order_params`)."""
        return order_params(req)

    # -- WsVenue hooks --------------------------------------------------------------------

    def url(self) -> str:
        return self.ws_url

    async def prepare_connection(self, conn: _Connection) -> None:
        """Measure the clock, and on the first connection load filters and limits."""
        if self.sync_clock:
            await self._sync_clock(conn)
        missing = [s for s in self.symbols if s not in self.filters]
        if missing and (self.check_filters or not self._explicit_limits):
            await self._load_exchange_info(conn, missing)

    def subscribe_requests(self) -> list[dict]:
        if not self.user_stream:
            return []
        if isinstance(self.signer, Ed25519Signer):
            logon = self.sign_request({"method": "session.logon", "params": {}})
            return [logon, {"method": "userDataStream.subscribe"}]
        return [self.sign_request({"method": "userDataStream.subscribe.signature", "params": {}})]

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

    def parse(self, msg: Any, ts_local: int) -> Sequence[Any]:
        if not isinstance(msg, dict):
            raise ParseError(f"expected a JSON object, got {type(msg).__name__}")
        if "event" not in msg:
            if "error" in msg:
                self.venue_errors += 1
                log.warning("%s: venue error: %s", self.venue, redact(str(msg.get("error"))))
                return ()
            self.note_unknown("(no event) " + ",".join(sorted(msg)[:4]))
            return ()
        event = msg["event"]
        if not isinstance(event, dict):
            raise ParseError("event is not an object")
        kind = event.get("e")
        self.stream_events += 1
        if kind == "executionReport":
            events, unknown = report_events(event, ts_local)
            if unknown is not None:
                self.note_unknown(f"executionReport x={unknown}")
            for ev in events:
                self.tracker.offer(ev)
        elif kind == "eventStreamTerminated":
            log.warning("%s: the user data stream was terminated by the venue", self.venue)
        elif kind not in _QUIET_EVENTS:
            self.note_unknown(str(kind))
        return ()

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

    # -- requests -----------------------------------------------------------------------

    async def _call(
        self, method: str, params: dict, *, conn: _Connection | None = None, signed: bool = True
    ) -> Reply:
        if signed and self.clock.best is None:
            # Connected, but the venue's clock is not measured yet: nothing is sent.
            return Reply(None, Outcome.NOT_SENT, reason="the venue's clock is not measured yet")
        await self.limiter.acquire(_COSTS.get(method, {"REQUEST_WEIGHT": 1}))
        return await self.request({"method": method, "params": params}, signed=signed, conn=conn)

    def _refused_locally(self, req: OrderRequest) -> ExecEvent | None:
        """A reject made here when the symbol's filters refuse the order (nothing sent)."""
        if not self.check_filters:
            return None
        filt = self.filters.get(req.symbol)
        if filt is None:
            return None
        why = filt.check(req)
        if why is None:
            return None
        self.filter_rejects += 1
        kind = "reject" if req.kind == "new" else "amend_rejected"
        ev = replace(
            self._template(req, kind),
            code=-1013,
            message=why,
            reason="refused locally (symbol filters)",
        )
        return self._offer_first(ev)

    def _settle(self, req: OrderRequest, reply: Reply) -> ExecEvent:
        """The event that answers a request, from its reply (also a late one)."""
        if self._outcome_unknown(reply):
            return self._unknown(req, reply)
        if reply.ok:
            result = reply.result
            try:
                if req.kind == "new":
                    r = result if isinstance(result, dict) else {}
                    return self._offer_first(self._ack_from(req, r, "order.place"))
                if req.kind == "cancel":
                    return self._offer_first(canceled_event(result, self._now_ns()))
                if req.kind == "amend":
                    return self._settle_amend(req, result if isinstance(result, dict) else {})
                if isinstance(result, list):
                    events = self._settle_cancel_all(req, result)
                    return events[0] if events else self._template(req, "canceled")
            except ParseError as exc:
                self._bad_frame(f"{req.kind} reply ({exc})", result)
                return self._unknown(req, reply, "unreadable reply")
        err = reply.error if isinstance(reply.error, dict) else {}
        self._on_rate_limit(err)
        data = err.get("data")
        if req.kind == "amend" and isinstance(data, dict) and "cancelResult" in data:
            return self._settle_cancel_replace(req, data, err.get("code"), err.get("msg"))
        code, msg = self._code_msg(reply)
        kind = {"new": "reject", "amend": "amend_rejected"}.get(req.kind, "cancel_rejected")
        return self._offer_first(replace(self._template(req, kind), code=code, message=msg))

    def _ack_from(self, req: OrderRequest, r: Mapping[str, Any], how: str) -> ExecEvent:
        return replace(
            self._template(req, "ack"),
            orig_client_id=None,
            venue_order_id=str_or_none(r.get("orderId")),
            venue_ts_ms=r.get("transactTime"),
            reason=how,
        )

    def _settle_amend(self, req: OrderRequest, r: Mapping[str, Any]) -> ExecEvent:
        """The outcome of a successful amend reply (spot: order.cancelReplace's)."""
        return self._settle_cancel_replace(req, r, None, None)

    def _settle_cancel_replace(
        self, req: OrderRequest, data: Mapping[str, Any], code: Any, msg: Any
    ) -> ExecEvent:
        """The outcome of order.cancelReplace: the old order's cancel, the new order."""
        cancel = data.get("cancelResponse")
        new = data.get("newOrderResponse")
        if data.get("cancelResult") == "SUCCESS" and isinstance(cancel, dict):
            try:
                self.tracker.offer(canceled_event(cancel, self._now_ns()))
            except ParseError as exc:
                self._bad_frame(f"cancelReplace cancelResponse ({exc})", cancel)
        if data.get("newOrderResult") == "SUCCESS" and isinstance(new, dict):
            self.tracker.offer(self._ack_from(req, new, "order.cancelReplace"))
            return self._known_outcome(req) or self._template(req, "amended")
        sub = new if isinstance(new, dict) and "code" in new else cancel
        if isinstance(sub, dict) and "code" in sub:
            code, msg = sub.get("code"), sub.get("msg")
        return self._offer_first(
            replace(
                self._template(req, "amend_rejected"),
                code=code if isinstance(code, int) else None,
                message=redact(str(msg or "")),
            )
        )

    def _settle_cancel_all(self, req: OrderRequest, items: list) -> list[ExecEvent]:
        """A `canceled` per order the venue canceled (returned also when a report already
        delivered it)."""
        out: list[ExecEvent] = []
        for item in items:
            try:
                out.append(self._offer_first(canceled_event(item, self._now_ns())))
            except ParseError as exc:
                self._bad_frame(f"openOrders.cancelAll item ({exc})", item)
        self.tracker.settle(req.client_id, "canceled")
        return out

    def _template(self, req: OrderRequest, kind: str) -> ExecEvent:
        return ExecEvent(
            kind,  # type: ignore[arg-type]
            req.client_id,
            symbol=req.symbol,
            orig_client_id=req.orig_client_id,
            side=req.side,
            price=req.price,
            qty=req.qty,
            recv_ts_ns=self._now_ns(),
        )

    def _offer_first(self, ev: ExecEvent) -> ExecEvent:
        """Offer `ev`; return it (also when an earlier report already told the fact)."""
        out = self.tracker.offer(ev)
        for e in out:
            if e.kind == ev.kind and e.client_id == ev.client_id:
                return e
        return ev

    def _unknown(self, req: OrderRequest, reply: Reply, why: str | None = None) -> ExecEvent:
        """Report that nobody knows what a request did; settle it later (never resend)."""
        why = why or self._why_unknown(reply)
        err = reply.error if isinstance(reply.error, dict) else {}
        code = err.get("code")
        template = replace(
            self._template(req, "unknown"),
            reason=why,
            code=code if isinstance(code, int) else None,
        )
        if reply.outcome is Outcome.UNKNOWN:
            self._late[reply.id] = req
            while len(self._late) > _LATE_KEPT:
                self._late.pop(next(iter(self._late)))
        ev = self.tracker.unknown(template)
        if ev is None:
            return self._known_outcome(req) or template
        log.warning("%s: request %s: outcome unknown (%s)", self.venue, req.client_id, why)
        self._schedule_resolve(req.client_id, self.resolve_after)
        return ev

    def _known_outcome(self, req: OrderRequest) -> ExecEvent | None:
        """What the tracker already knows about a request settled by a report."""
        record = self.tracker.request(req.client_id)
        if record is not None and record.in_place and record.result:
            kind = "amended" if record.result == "amended" else "amend_rejected"
            return replace(self._template(req, kind), reason="already reported")
        order = self.tracker.order(req.client_id)
        if order is None or req.kind not in ("new", "amend"):
            return None
        kind = (
            "reject" if order.ended == "reject" else ("amended" if req.kind == "amend" else "ack")
        )
        return replace(
            self._template(req, kind),
            venue_order_id=order.venue_order_id,
            reason="already reported",
        )

    def _outcome_unknown(self, reply: Reply) -> bool:
        if reply.outcome is Outcome.UNKNOWN:
            return True
        if reply.outcome is Outcome.ERROR:
            err = reply.error if isinstance(reply.error, dict) else {}
            return is_unknown_error(err)
        return False

    @staticmethod
    def _why_unknown(reply: Reply) -> str:
        if reply.outcome is Outcome.UNKNOWN:
            return reply.reason or "no reply"
        err = reply.error if isinstance(reply.error, dict) else {}
        return f"status {err.get('status')} code {err.get('code')}: {redact(str(err.get('msg')))}"

    @staticmethod
    def _code_msg(reply: Reply) -> tuple[int | None, str]:
        if reply.outcome is Outcome.NOT_SENT:
            return None, f"not sent: {reply.reason}"
        err = reply.error if isinstance(reply.error, dict) else {}
        code = err.get("code")
        return (code if isinstance(code, int) else None), redact(str(err.get("msg") or ""))

    def _on_rate_limit(self, err: Mapping[str, Any]) -> None:
        """429/418: pause every request until the venue's retryAfter; -1021: re-measure."""
        status = err.get("status")
        if status in (429, 418):
            now_ms = self.clock.timestamp_ms() if self.clock.best else self._clock_ns() // 10**6
            seconds = retry_after_seconds(err, now_ms)
            self.limiter.on_http_status(int(status), seconds)
        if err.get("code") == -1021 and self.sync_clock:
            self._spawn(self._resync_clock(), "clock")

    def _observe_limits(self, items: Any) -> None:
        """The venue's request-weight count (another process may share our IP's budget)."""
        if not isinstance(items, list):
            return
        for item in items:
            if (
                isinstance(item, dict)
                and item.get("rateLimitType") == "REQUEST_WEIGHT"
                and isinstance(item.get("count"), int)
            ):
                self.limiter.observe_used("REQUEST_WEIGHT", item["count"])

    def _on_late_reply(self, reply: Reply) -> None:
        """A reply after its request was reported UNKNOWN: it settles the request."""
        req = self._late.pop(reply.id, None)
        if req is None:
            return
        record = self.tracker.request(req.client_id)
        if record is not None and record.settled:
            return
        if not self._outcome_unknown(reply):
            self._settle(req, reply)

    # -- connection set-up --------------------------------------------------------------------

    async def _sync_clock(self, conn: _Connection, samples: int = 3) -> None:
        """Measure the venue's clock with the `time` method (NTP-style, best of a few)."""
        got = 0
        for _ in range(samples):
            t0 = self._clock_ns()
            reply = await self._call("time", {}, conn=conn, signed=False)
            t1 = self._clock_ns()
            if reply.ok and isinstance(reply.result, dict):
                server = reply.result.get("serverTime")
                if isinstance(server, int):
                    self.clock.observe(t0, server, t1)
                    got += 1
            elif reply.outcome is Outcome.NOT_SENT:
                break
        self.clock_syncs += 1
        if got == 0 and self.clock.best is None:
            raise ConnectionError("could not measure the venue's clock")

    async def _resync_clock(self) -> None:
        conn = self._active
        if conn is not None:
            try:
                await self._sync_clock(conn)
            except ConnectionError as exc:
                log.warning("%s: clock re-measurement failed: %s", self.venue, exc)

    async def _load_exchange_info(self, conn: _Connection, symbols: list[str]) -> None:
        reply = await self._call("exchangeInfo", {"symbols": symbols}, conn=conn, signed=False)
        if not reply.ok or not isinstance(reply.result, dict):
            if reply.outcome is Outcome.NOT_SENT:
                raise ConnectionError("connection lost while loading exchangeInfo")
            log.error(
                "%s: exchangeInfo failed (%s); orders go unchecked locally",
                self.venue,
                redact(str(reply.error or reply.reason)),
            )
            return
        info = reply.result
        for sym in symbols:
            try:
                self.filters[sym] = VenueFilters.from_exchange_info(info, sym)
            except DataError as exc:
                log.error("%s: %s", self.venue, exc)
        if not self._explicit_limits:
            limits = limits_from_binance(info.get("rateLimits", ()))
            limits = [lim for lim in limits if lim.kind in ("REQUEST_WEIGHT", "ORDERS")]
            if limits:
                self.limiter = RateLimiter(limits, clock=self._mono, sleep=self._sleep)

    # -- user data --------------------------------------------------------------------------

    def _deliver(self, ev: ExecEvent) -> None:
        if self.on_exec is None:
            self.exec_queue.put_nowait(ev)
            return
        try:
            self.on_exec(ev)
        except Exception:
            self.exec_sink_errors += 1
            log.exception("%s: the exec event sink raised", self.venue)

    # -- settling what is unknown ---------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> None:
        if self._closing:
            coro.close()
            return
        task = asyncio.create_task(coro, name=f"{self.venue}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_resolve(self, client_id: str, delay: float) -> None:
        if client_id in self._resolving:
            return
        self._resolving.add(client_id)
        self._spawn(self._resolve_later(client_id, delay), f"resolve:{client_id}")

    def resolve_now(self, client_id: str) -> bool:
        """Query the venue now about an unknown request (a user's "reconcile now") rather
        than after `resolve_after`; False when it is not unknown or no connection is up."""
        req = self.tracker.request(client_id)
        if req is None or req.settled or not req.unknown or self._active is None:
            return False
        self._spawn(self._resolve_at_once(req), f"resolve-now:{client_id}")
        return True

    async def _resolve_at_once(self, req: TrackedRequest) -> None:
        try:
            await self._resolve_once(req)  # the tracker settles a request once: a race with
            self.resolutions += 1  # the timed resolution yields one `resolved`
        except _QueryFailed as exc:
            log.warning("%s: resolving %s now failed (%s)", self.venue, req.client_id, exc)

    async def _resolve_later(self, client_id: str, delay: float) -> None:
        """Query the venue until the request `client_id` is settled."""
        try:
            wait = delay
            while not self._closing:
                if wait > 0:
                    await self._sleep(wait)
                req = self.tracker.request(client_id)
                if req is None or req.settled:
                    return
                if self._active is None:
                    return  # on_subscribed schedules it again after the reconnection
                try:
                    await self._resolve_once(req)
                    self.resolutions += 1
                    return
                except _QueryFailed as exc:
                    wait = min(max(wait * 2, self.resolve_after, 0.05), 30.0)
                    log.warning(
                        "%s: resolving %s failed (%s); again in %.2f s",
                        self.venue,
                        client_id,
                        exc,
                        wait,
                    )
        finally:
            self._resolving.discard(client_id)

    async def _resolve_once(self, req: TrackedRequest) -> None:
        sym = req.symbol
        if req.kind == "new":
            st = await self._query_status(sym, req.client_id)
            facts = await self._facts(req.client_id, st)
            self.tracker.resolve(req.client_id, st.status if st else "not found", facts)
            return
        if req.kind == "cancel":
            assert req.target is not None
            st = await self._query_status(sym, req.target)
            facts = await self._facts(req.target, st) if st is not None else []
            if st is not None and st.status == "CANCELED":
                self.tracker.resolve(req.client_id, "CANCELED", facts)
                return
            why = f"order is {st.status}" if st is not None else "Order does not exist."
            facts.append(
                ExecEvent(
                    "cancel_rejected",
                    req.client_id,
                    symbol=sym,
                    orig_client_id=req.target,
                    code=None if st is not None else -2013,
                    message=why,
                    recv_ts_ns=self._now_ns(),
                )
            )
            self.tracker.resolve(req.client_id, st.status if st else "not found", facts)
            return
        if req.kind == "amend":
            assert req.target is not None
            old = await self._query_status(sym, req.target)
            new = await self._query_status(sym, req.client_id)
            facts = await self._facts(req.target, old) if old is not None else []
            if new is not None:
                facts += await self._facts(req.client_id, new)
                self.tracker.resolve(req.client_id, new.status, facts)
                return
            facts.append(
                ExecEvent(
                    "amend_rejected",
                    req.client_id,
                    symbol=sym,
                    orig_client_id=req.target,
                    code=-2013,
                    message="the new order does not exist",
                    recv_ts_ns=self._now_ns(),
                )
            )
            self.tracker.resolve(req.client_id, "not placed", facts)
            return
        facts = []
        for order in self.tracker.open_orders(sym):
            facts += await self._facts(
                order.client_id, await self._query_status(sym, order.client_id)
            )
        self.tracker.resolve(req.client_id, "queried open orders", facts)

    async def _reconcile_open(self) -> None:
        """After a reconnection: what happened to our open orders while we were away."""
        for order in self.tracker.open_orders():
            if order.orphan or not order.acked:
                continue  # unknown placements are resolved on their own
            try:
                st = await self._query_status(order.symbol, order.client_id)
                for ev in await self._facts(order.client_id, st):
                    self.tracker.offer(ev)
            except _QueryFailed as exc:
                log.warning("%s: reconcile %s: %s", self.venue, order.client_id, exc)
                return

    async def _facts(self, client_id: str, st: OrderStatus | None) -> list[ExecEvent]:
        """The events that bring an order to the venue's status `st` (fills from myTrades
        when the venue has more executed than we heard of)."""
        fills: list[ExecEvent] = []
        tracked = self.tracker.order(client_id)
        known = tracked.cum_qty if tracked is not None else Decimal(0)
        if st is not None and st.executed_qty > known:
            fills = await self._trades(client_id, st)
        return status_facts(client_id, st, fills, self._now_ns())

    async def _trades(self, client_id: str, st: OrderStatus) -> list[ExecEvent]:
        """Fill events of an order from myTrades (none if the query fails: logged)."""
        params = {"symbol": st.symbol, "orderId": int(st.venue_order_id)}
        reply = await self._call("myTrades", params)
        if reply.ok and isinstance(reply.result, list):
            try:
                return trade_fills(reply.result, client_id, st, self._now_ns())
            except ParseError as exc:
                self._bad_frame(f"myTrades result ({exc})", reply.result)
        log.warning(
            "%s: myTrades for %s failed; %s executed, fills not itemised",
            self.venue,
            client_id,
            st.executed_qty,
        )
        return []

    async def _query_status(self, symbol: str, client_id: str) -> OrderStatus | None:
        reply = await self._call("order.status", {"symbol": symbol, "origClientOrderId": client_id})
        if reply.ok and isinstance(reply.result, dict):
            try:
                return OrderStatus.from_result(reply.result)
            except ParseError as exc:
                raise _QueryFailed(str(exc)) from None
        err = reply.error if isinstance(reply.error, dict) else {}
        if reply.outcome is Outcome.ERROR and err.get("code") == -2013:
            return None
        if reply.outcome is Outcome.ERROR:
            self._on_rate_limit(err)
        raise _QueryFailed(
            self._why_unknown(reply) if reply.outcome is not Outcome.NOT_SENT else "not connected"
        )
