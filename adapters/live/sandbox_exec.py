"""The sandbox venue's order side: Binance's spot WebSocket API on the sandbox's port.

`SandboxVenue` is `SandboxMarketData` (same port, same replay, same market data endpoints)
plus the endpoint `/ws-api/v3`, where a client trades against the replayed market:

- Methods: `ping`, `time`, `exchangeInfo`, `session.logon` (Ed25519 accounts),
  `userDataStream.subscribe` (after logon), `userDataStream.subscribe.signature`,
  `userDataStream.unsubscribe`, `order.place` (LIMIT, LIMIT_MAKER, MARKET; GTC/IOC/FOK;
  newOrderRespType ACK, RESULT, FULL), `order.cancel`, `order.cancelReplace`
  (STOP_ON_FAILURE and ALLOW_FAILURE), `openOrders.cancelAll`, `openOrders.status`,
  `order.status`, `myTrades` (by orderId). Replies are `{"id", "status", "result"|"error",
  "rateLimits"}`; user data events `{"subscriptionId", "event"}` with `executionReport`s.
- Gatekeeping (`sandbox_auth`): signatures of the one configured account (HMAC or Ed25519),
  Binance's timestamp/recvWindow rule against the venue clock (`clock_skew_ms` shifts it,
  to exercise a client's clock offset), rate limits with 429/retryAfter and 418 bans.
- Order rules: symbol filters (`venue_filters`, from the same exchangeInfo the server
  publishes) refuse with -1013; a newClientOrderId must match `^[a-zA-Z0-9-_]{1,36}$`
  (-1100) and may not be that of an open order (-2010 'Duplicate order sent.'); a
  LIMIT_MAKER that would cross is refused (-2010 'Order would immediately match and take.').
- Matching is the engine's venue model (`sandbox_matching.EngineMatcher`), advanced with
  the replay: fills happen when the replayed trades say so, and their executionReports go
  out right after the trade message that caused them.
- Faults (`Faults`, see `sandbox_md`): delay_ack, reorder_user, dup_fill,
  kill_ws_api_after, drop_reply; bad_frame and bad_shape reach these sessions too.

Per session, outgoing frames (replies and events) leave in order through one writer task,
so a delayed frame holds back those behind it, as a slow venue would.

Not emulated: order lists (OCO...), quoteOrderQty, stop and iceberg orders, STP modes other
than the engine's (expire the taker), cancelRestrictions, amend-keep-priority, SBE, several
accounts, balances (every order is funded).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, Final

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from adapters.live.exec_events import OrderRequest
from adapters.live.sandbox_auth import ApiError, SandboxAccount, ServerLimits, check_signed
from adapters.live.sandbox_json import (
    cancel_response,
    execution_report,
    order_json,
    order_response,
    rejected_report,
    trade_json,
)
from adapters.live.sandbox_matching import EngineMatcher, Execution, MatchError, SandboxOrder
from adapters.live.sandbox_md import SandboxMarketData
from adapters.live.sandbox_replay import Replay, ReplayMessage
from adapters.live.venue_filters import VenueFilters
from adapters.live.ws_direct import DirectServerConnection

log = logging.getLogger(__name__)

WS_API_PATH: Final = "/ws-api/v3"
CLIENT_ID_RE: Final = re.compile(r"[a-zA-Z0-9_-]{1,36}")
_DECIMAL_RE: Final = re.compile(r"[0-9]{1,20}(\.[0-9]{1,20})?")

_WEIGHTS: Final = {
    "ping": 1,
    "time": 1,
    "exchangeInfo": 20,
    "session.logon": 2,
    "userDataStream.subscribe": 2,
    "userDataStream.subscribe.signature": 2,
    "userDataStream.unsubscribe": 2,
    "order.place": 1,
    "order.cancel": 1,
    "order.cancelReplace": 1,
    "order.modify": 1,
    "openOrders.cancelAll": 1,
    "openOrders.status": 6,
    "order.status": 4,
    "myTrades": 20,
}
_ORDER_METHODS: Final = frozenset({"order.place", "order.cancelReplace", "order.modify"})
"""Methods that count against the ORDERS limits."""
_TRADING: Final = frozenset(
    {"order.place", "order.cancel", "order.cancelReplace", "order.modify", "openOrders.cancelAll"}
)
"""Methods whose replies and events `delay_ack` holds back."""
_SIGNED: Final = frozenset(
    {
        "order.place",
        "order.cancel",
        "order.cancelReplace",
        "order.modify",
        "openOrders.cancelAll",
        "openOrders.status",
        "order.status",
        "myTrades",
        "userDataStream.subscribe.signature",
    }
)


class _Session:
    """One WebSocket-API connection: its auth, its subscription and its writer."""

    def __init__(self, serial: int, ws: ServerConnection) -> None:
        self.serial = serial
        self.ws = ws
        self.logged_on = False
        self.subscription: int | None = None
        self.queue: asyncio.Queue[tuple[float, str] | None] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None

    async def write(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self.queue.get()
            if item is None:
                return
            not_before, text = item
            wait = not_before - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await self.ws.send(text)
            except ConnectionClosed:
                return


class SandboxVenue(SandboxMarketData):
    """The sandbox with an order side. Use `async with SandboxVenue(replay, account=...)`.

    Args:
        replay: the market timeline.
        account: the API key the venue accepts (HMAC secret or Ed25519 public key).
        clock_skew_ms: the venue clock minus ours.
        maker_fee, taker_fee: commission rates.
        rate_limits: exchangeInfo's rateLimits (default: `sandbox_md.RATE_LIMITS`).
        ban_after, ban_seconds: 418 after this many requests that ignored a 429.
        **kwargs: SandboxMarketData's (speed, faults, host, port, autostart...).
    """

    ws_paths = ("/stream", WS_API_PATH)
    ws_api_path: str = WS_API_PATH
    """Where the WebSocket API is served (USD-M futures: `/ws-fapi/v1`)."""

    def __init__(
        self,
        replay: Replay,
        *,
        account: SandboxAccount,
        clock_skew_ms: int = 0,
        maker_fee: Decimal = Decimal("0.001"),
        taker_fee: Decimal = Decimal("0.001"),
        rate_limits: Sequence[Mapping] | None = None,
        ban_after: int = 3,
        ban_seconds: float = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(replay, **kwargs)
        self.account = account
        self.clock_skew_ms = clock_skew_ms
        if rate_limits is not None:
            self.rate_limits = [dict(r) for r in rate_limits]
        self.limits = ServerLimits(self.rate_limits, ban_after=ban_after, ban_seconds=ban_seconds)
        self.matcher = EngineMatcher(
            replay, clock_ms=self.server_time_ms, maker_fee=maker_fee, taker_fee=taker_fee
        )
        doc = {"symbols": [spec.info() for spec in replay.specs.values()]}
        self.filters = {sym: VenueFilters.from_exchange_info(doc, sym) for sym in replay.specs}
        self._sessions: dict[int, _Session] = {}
        self._serials = itertools.count(1)
        self._subscriptions = itertools.count(0)
        self._generated_ids = itertools.count(1)
        self._held_event: tuple[float, dict] | None = None
        # Counters.
        self.ws_api_connections = 0
        self.ws_api_requests = 0
        """Frames received on /ws-api/v3 (the count the faults refer to)."""
        self.method_counts: dict[str, int] = {}
        """Requests carried out (or refused after parsing) by method."""
        self.user_events = 0
        self.fill_events = 0
        self.replies_dropped = 0
        self.ws_api_killed = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the sessions' writers, then the replay and the server."""
        for session in list(self._sessions.values()):
            if session.writer is not None:
                session.writer.cancel()
        await super().close()

    @property
    def ws_api_url(self) -> str:
        """The WebSocket API URL (what `BinanceSpotExec(ws_url=...)` takes)."""
        return f"ws://{self.host}:{self.port}{self.ws_api_path}"

    async def on_message(self, i: int, m: ReplayMessage) -> None:
        """After a replayed message: the engine takes it, our orders' events go out."""
        self._push_executions(self.matcher.advance(i), 0.0)
        f = self.faults
        if i in f.bad_frame:
            for s in list(self._sessions.values()):
                self._enqueue(s, '{"subscriptionId": 0, "event": {"e": "executionRep', 0.0)
        if i in f.bad_shape:
            for s in list(self._sessions.values()):
                if s.subscription is not None:
                    bad = {"subscriptionId": s.subscription, "event": {"e": "executionReport"}}
                    self._enqueue(s, orjson.dumps(bad).decode(), 0.0)

    async def serve_ws(self, path: str, ws: ServerConnection) -> None:
        if path != self.ws_api_path:
            await super().serve_ws(path, ws)
            return
        session = _Session(next(self._serials), ws)
        session.writer = asyncio.create_task(
            session.write(), name=f"sandbox:ws-api:{session.serial}"
        )
        self._sessions[session.serial] = session
        self.ws_api_connections += 1
        if isinstance(ws, DirectServerConnection):
            ws.deliver_to(partial(self._on_request, session))
        try:
            async for frame in ws:  # what the direct delivery left (or all, without it)
                self._on_request(session, frame)
        except ConnectionClosed:
            pass
        finally:
            self._sessions.pop(session.serial, None)
            session.queue.put_nowait(None)

    # -- requests -----------------------------------------------------------------------------

    def _on_request(self, session: _Session, frame: str | bytes) -> None:
        self.ws_api_requests += 1
        n = self.ws_api_requests
        now = self.server_time_ms()
        rid: Any = None
        method = ""
        try:
            try:
                msg = orjson.loads(frame)
                rid = msg.get("id")
                method = msg["method"]
                params = msg.get("params") or {}
                if not isinstance(method, str) or not isinstance(params, dict):
                    raise TypeError("method/params")
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise ApiError(400, -1135, "Invalid JSON Request") from None
            self.method_counts[method] = self.method_counts.get(method, 0) + 1
            handler = self._METHODS.get(method)
            if handler is None:
                raise ApiError(400, -1020, f"Unknown method {method[:40]!r}.")
            weight = _WEIGHTS.get(method, 1)
            if method == "myTrades" and "orderId" in params:
                weight = 5
            costs = {"REQUEST_WEIGHT": weight}
            if method in _ORDER_METHODS:
                costs["ORDERS"] = 1
            self.limits.admit(costs, now)
            if method in _SIGNED or (method == "session.logon"):
                check_signed(params, self.account, now, session_auth=session.logged_on)
            frames: list[dict] = []
            result = handler(self, session, params, frames)
            reply = {"id": rid, "status": 200, "result": result}
            kinds = (
                ("REQUEST_WEIGHT", "ORDERS") if method in _ORDER_METHODS else ("REQUEST_WEIGHT",)
            )
            reply["rateLimits"] = self.limits.status(kinds, now)
        except ApiError as exc:
            frames = exc.frames if isinstance(exc, _PartialFailure) else []
            reply = {"id": rid, "status": exc.status, "error": exc.body()}
        except Exception:  # a sandbox bug: answer like a venue whose backend failed
            log.exception("sandbox: request %d (%s) failed", n, method)
            frames = []
            error = {
                "code": -1000,
                "msg": "An unknown error occurred while processing the request.",
            }
            reply = {"id": rid, "status": 500, "error": error}
        self._respond(session, n, method, reply, frames)

    def _respond(
        self, session: _Session, n: int, method: str, reply: dict, frames: list[dict]
    ) -> None:
        """Send the user events a request caused, then its reply (with the faults)."""
        f = self.faults
        if n in f.kill_ws_api_after:
            self.ws_api_killed += 1
            for s in list(self._sessions.values()):
                s.ws.transport.abort()
            return
        loop = asyncio.get_running_loop()
        not_before = 0.0
        if f.delay_ack and method in _TRADING:
            not_before = loop.time() + f.delay_ack / 1000.0
        for event in frames:
            self._push_user(event, not_before)
        if n in f.drop_reply:
            self.replies_dropped += 1
            return
        self._enqueue(session, orjson.dumps(reply).decode(), not_before)

    def _enqueue(self, session: _Session, text: str, not_before: float) -> None:
        session.queue.put_nowait((not_before, text))

    def fill_order(self, client_id: str) -> bool:
        """Fill an open order now at its own price (a test hook: `EngineMatcher.fill_now`);
        its execution report goes out as usual. Returns False when no open order has it."""
        order = self.matcher.open_by_client(client_id)
        if order is None:
            return False
        self._push_executions(self.matcher.fill_now(order), 0.0)
        return True

    def _push_executions(self, executions: list[Execution], not_before: float) -> None:
        for ex in executions:
            self._push_user(execution_report(ex, self.server_time_ms()), not_before)

    def _push_user(self, event: dict, not_before: float) -> None:
        """Send a user data event to every subscribed session (reorder/dup faults here)."""
        self.user_events += 1
        k = self.user_events
        f = self.faults
        if k in f.reorder_user:
            self._held_event = (not_before, event)
            return
        copies = 1
        if event.get("x") == "TRADE":
            self.fill_events += 1
            if self.fill_events in f.dup_fill:
                copies = 2
        for _ in range(copies):
            self._deliver(event, not_before)
        if self._held_event is not None and k - 1 in f.reorder_user:
            held_at, held = self._held_event
            self._held_event = None
            self._deliver(held, max(held_at, not_before))

    def _deliver(self, event: dict, not_before: float) -> None:
        for s in list(self._sessions.values()):
            if s.subscription is not None:
                text = orjson.dumps({"subscriptionId": s.subscription, "event": event}).decode()
                self._enqueue(s, text, not_before)

    # -- methods ------------------------------------------------------------------------------

    def _ping(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        return {}

    def _time(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        return {"serverTime": self.server_time_ms()}

    def _ws_exchange_info(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        # Not `_exchange_info`: that is the REST endpoint of SandboxMarketData, which this
        # class serves too (a same-named method here broke GET /api/v3/exchangeInfo).
        wanted = p.get("symbols") or ([p["symbol"]] if "symbol" in p else list(self.replay.specs))
        unknown = [s for s in wanted if s not in self.replay.specs]
        if unknown:
            raise ApiError(400, -1121, "Invalid symbol.")
        return {
            "timezone": "UTC",
            "serverTime": self.server_time_ms(),
            "rateLimits": list(self.rate_limits),
            "exchangeFilters": [],
            "symbols": [
                {
                    **self.replay.specs[s].info(),
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                    "cancelReplaceAllowed": True,
                    "allowAmend": False,
                }
                for s in wanted
            ],
        }

    def _logon(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        if self.account.kind != "ed25519":
            raise ApiError(400, -1002, "Session logon needs an Ed25519 API key.")
        session.logged_on = True
        now = self.server_time_ms()
        return {
            "apiKey": self.account.api_key,
            "authorizedSince": now,
            "connectedSince": now,
            "returnRateLimits": True,
            "serverTime": now,
            "userDataStream": session.subscription is not None,
        }

    def _subscribe(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        if not session.logged_on:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        return self._start_stream(session)

    def _subscribe_signature(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        return self._start_stream(session)

    def _start_stream(self, session: _Session) -> Any:
        if session.subscription is None:
            session.subscription = next(self._subscriptions)
        return {"subscriptionId": session.subscription}

    def _unsubscribe(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        session.subscription = None
        return {}

    def _place(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        new = self._new_order(p, "newClientOrderId")
        order = self._execute(new, frames)
        return order_response(order, p.get("newOrderRespType"), new["type"])

    def _cancel(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        order = self._target(p, "origClientOrderId", "orderId")
        prev = order.client_id if order is not None else None
        new_id = self._client_id(p.get("newClientOrderId"), "newClientOrderId")
        executions = None if order is None else self.matcher.cancel(order, new_id)
        if executions is None:
            raise ApiError(400, -2011, "Unknown order sent.")
        frames.extend(execution_report(ex, self.server_time_ms()) for ex in executions)
        assert order is not None and prev is not None
        return cancel_response(order, prev)

    def _cancel_replace(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        mode = p.get("cancelReplaceMode")
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise ApiError(
                400,
                -1102,
                "Mandatory parameter 'cancelReplaceMode' was not sent, was empty/null, or "
                "malformed.",
            )
        new = self._new_order(p, "newClientOrderId", check_duplicate=False)
        target = self._target(p, "cancelOrigClientOrderId", "cancelOrderId")
        cancel_id = self._client_id(p.get("cancelNewClientOrderId"), "cancelNewClientOrderId")
        prev = target.client_id if target is not None else ""
        executions = None if target is None else self.matcher.cancel(target, cancel_id)
        cancel_ok = executions is not None
        if executions is not None:
            frames.extend(execution_report(ex, self.server_time_ms()) for ex in executions)
        cancel_resp: dict
        if cancel_ok:
            assert target is not None
            cancel_resp = cancel_response(target, prev)
        else:
            cancel_resp = {"code": -2011, "msg": "Unknown order sent."}
        if not cancel_ok and mode == "STOP_ON_FAILURE":
            raise _PartialFailure(
                400,
                -2022,
                "Order cancel-replace failed.",
                {
                    "cancelResult": "FAILURE",
                    "newOrderResult": "NOT_ATTEMPTED",
                    "cancelResponse": cancel_resp,
                    "newOrderResponse": None,
                },
                frames,
            )
        try:
            self._check_new(new)
            order = self._execute(new, frames)
            new_resp: dict = order_response(order, p.get("newOrderRespType"), new["type"])
            new_ok = True
        except ApiError as exc:
            new_ok = False
            new_resp = exc.body()
            if cancel_ok:
                frames.append(rejected_report(new, exc.msg, self.server_time_ms()))
        data = {
            "cancelResult": "SUCCESS" if cancel_ok else "FAILURE",
            "newOrderResult": "SUCCESS" if new_ok else "FAILURE",
            "cancelResponse": cancel_resp,
            "newOrderResponse": new_resp,
        }
        if cancel_ok and new_ok:
            return data
        if cancel_ok or new_ok:
            raise _PartialFailure(
                409, -2021, "Order cancel-replace partially failed.", data, frames
            )
        raise _PartialFailure(400, -2022, "Order cancel-replace failed.", data, frames)

    def _cancel_all(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        symbol = self._symbol(p)
        out = []
        for order in self.matcher.open_orders(symbol):
            prev = order.client_id
            executions = self.matcher.cancel(order, self._generated_id())
            if executions is not None:
                frames.extend(execution_report(ex, self.server_time_ms()) for ex in executions)
                out.append(cancel_response(order, prev))
        if not out:
            raise ApiError(400, -2011, "Unknown order sent.")
        return out

    def _open_orders(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        symbol = self._symbol(p)
        return [order_json(o) for o in self.matcher.open_orders(symbol)]

    def _status(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        order = self._target(p, "origClientOrderId", "orderId")
        if order is None:
            raise ApiError(400, -2013, "Order does not exist.")
        return order_json(order)

    def _my_trades(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        symbol = self._symbol(p)
        order_id = p.get("orderId")
        orders = [o for o in self.matcher.orders.values() if o.symbol == symbol]
        if order_id is not None:
            orders = [o for o in orders if o.order_id == order_id]
        trades = sorted((t for o in orders for t in o.trades), key=lambda t: t.trade_id)
        return [trade_json(t) for t in trades]

    _METHODS: Final = {
        "ping": _ping,
        "time": _time,
        "exchangeInfo": _ws_exchange_info,
        "session.logon": _logon,
        "userDataStream.subscribe": _subscribe,
        "userDataStream.subscribe.signature": _subscribe_signature,
        "userDataStream.unsubscribe": _unsubscribe,
        "order.place": _place,
        "order.cancel": _cancel,
        "order.cancelReplace": _cancel_replace,
        "openOrders.cancelAll": _cancel_all,
        "openOrders.status": _open_orders,
        "order.status": _status,
        "myTrades": _my_trades,
    }

    # -- order parameters -----------------------------------------------------------------

    def _symbol(self, p: Mapping[str, Any]) -> str:
        symbol = p.get("symbol")
        if symbol not in self.replay.specs:
            raise ApiError(400, -1121, "Invalid symbol.")
        return str(symbol)

    def _generated_id(self) -> str:
        return f"sandbox-{next(self._generated_ids)}"

    def _client_id(self, value: Any, name: str) -> str:
        if value is None:
            return self._generated_id()
        if not isinstance(value, str) or not CLIENT_ID_RE.fullmatch(value):
            raise ApiError(
                400,
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is "
                "'^[a-zA-Z0-9-_]{1,36}$'.",
            )
        return value

    def _target(self, p: Mapping[str, Any], by_client: str, by_id: str) -> SandboxOrder | None:
        self._symbol(p)
        cid, oid = p.get(by_client), p.get(by_id)
        if cid is None and oid is None:
            raise ApiError(
                400,
                -1102,
                f"Param '{by_client}' or '{by_id}' must be sent, but both were empty/null!",
            )
        order = self.matcher.find(cid, oid)
        if order is not None and order.symbol != p.get("symbol"):
            return None
        return order

    def _new_order(
        self, p: Mapping[str, Any], id_param: str, *, check_duplicate: bool = True
    ) -> dict[str, Any]:
        """The validated fields of a new order (filters and post-only checked)."""
        symbol = self._symbol(p)
        side = p.get("side")
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        otype = p.get("type")
        if otype not in ("LIMIT", "LIMIT_MAKER", "MARKET"):
            raise ApiError(400, -1116, "Invalid orderType.")
        if "quoteOrderQty" in p:
            raise ApiError(400, -1020, "This operation is not supported.")
        qty = _decimal(p, "quantity")
        tif = p.get("timeInForce")
        price: Decimal | None = None
        if otype == "LIMIT":
            price = _decimal(p, "price")
            if tif not in ("GTC", "IOC", "FOK"):
                raise ApiError(400, -1115, "Invalid timeInForce.")
        else:
            if tif is not None:
                raise ApiError(400, -1106, "Parameter 'timeInForce' sent when not required.")
            if otype == "LIMIT_MAKER":
                price = _decimal(p, "price")
                tif = "GTC"
            elif "price" in p:
                raise ApiError(400, -1106, "Parameter 'price' sent when not required.")
        client_id = self._client_id(p.get(id_param), id_param)
        new = {
            "symbol": symbol,
            "side": side,
            "type": otype,
            "tif": tif,
            "price": price,
            "qty": qty,
            "client_id": client_id,
        }
        req = OrderRequest(
            "new",
            client_id,
            symbol,
            side=side.lower(),
            type="market" if otype == "MARKET" else "limit",
            tif=tif or "GTC",
            post_only=otype == "LIMIT_MAKER",
            price=price,
            qty=qty,
        )
        bid, ask = self.matcher.best(symbol)
        ref = (bid + ask) / 2 if bid is not None and ask is not None else None
        why = self.filters[symbol].check(req, ref_price=ref)
        if why is not None:
            raise ApiError(400, -1013, why)
        if check_duplicate:
            self._check_new(new)
        return new

    def _check_new(self, new: Mapping[str, Any]) -> None:
        """The checks that depend on the book and on open orders (after a cancel-replace's
        cancel, which may free the client id)."""
        if self.matcher.open_by_client(new["client_id"]) is not None:
            raise ApiError(400, -2010, "Duplicate order sent.")
        if new["type"] == "LIMIT_MAKER" and self.matcher.would_take(
            new["symbol"], new["side"], new["price"]
        ):
            raise ApiError(400, -2010, "Order would immediately match and take.")

    def _execute(self, new: Mapping[str, Any], frames: list[dict]) -> SandboxOrder:
        try:
            order, executions = self.matcher.place(
                symbol=new["symbol"],
                side=new["side"],
                type=new["type"],
                tif=new["tif"],
                price=new["price"],
                qty=new["qty"],
                client_id=new["client_id"],
            )
        except MatchError as exc:
            raise ApiError(400, -2010, exc.message) from None
        frames.extend(execution_report(ex, self.server_time_ms()) for ex in executions)
        return order


class _PartialFailure(ApiError):
    """A cancel-replace error reply that still comes with the events of what succeeded."""

    def __init__(self, status: int, code: int, msg: str, data: Any, frames: list[dict]) -> None:
        super().__init__(status, code, msg, data)
        self.frames = list(frames)


def _decimal(p: Mapping[str, Any], name: str) -> Decimal:
    value = p.get(name)
    if value is None:
        raise ApiError(
            400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        )
    if not isinstance(value, str) or not _DECIMAL_RE.fullmatch(value):
        raise ApiError(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is "
            "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        )
    try:
        out = Decimal(value)
    except InvalidOperation:
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None
    if out <= 0:
        raise ApiError(400, -1013, f"Invalid {name}.")
    return out
