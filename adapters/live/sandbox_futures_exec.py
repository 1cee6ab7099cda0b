"""The sandbox venue's USD-M futures order side: the futures WebSocket API and user stream.

`SandboxFuturesVenue` is `SandboxVenue` (the same engine-backed matcher,
`sandbox_matching.EngineMatcher`, the same gatekeeping and faults) speaking USD-M on top of
`SandboxFutures`' market data (`/public/stream`, `/market/stream`, `/fapi/v1/...`):

- WebSocket API at `/ws-fapi/v1`: spot's methods, plus `userDataStream.start` (API key;
  returns the account's one listenKey, a new one once it expired), `userDataStream.ping`
  (-1125 'This listenKey does not exist.' once expired) and `userDataStream.stop`.
  `order.place` takes `reduceOnly` (refused with -2022 'ReduceOnly Order is rejected.' when
  the order would increase the position: a buy when long or flat, a sell when short or
  flat) and post-only as LIMIT/GTX (a GTX that would take: -5022). `order.cancel`'s reply
  names the order by its own `clientOrderId`.
- User data stream at `/private/ws/<listenKey>`: each execution as an `ORDER_TRADE_UPDATE`
  (the executionReport's fields, `c` the order's own id, `o`/`f` LIMIT/GTX for post-only,
  `R` reduce-only, `ps` BOTH), and after each fill an `ACCOUNT_UPDATE` (reason ORDER: the
  USDT wallet net of commission, the symbol's one-way position). `push_funding(amount)`
  sends a FUNDING_FEE update.
- `order.modify` (LIMIT orders, by origClientOrderId or orderId; side, quantity and price
  all required): the order keeps its client id and order id, moves to the new terms in the
  engine (`EngineMatcher.amend`: it loses its queue place) and an ORDER_TRADE_UPDATE with
  execution type AMENDMENT follows; as Binance documents, a partly filled order modified
  to at most its executed quantity, or a GTX order whose new price would take, is canceled
  instead. Errors: -2013 'Order does not exist.' (unknown or no longer open), -5027 'No
  need to modify the order.' (same price and quantity; the code and text are the brief's,
  not verified on a Binance page), -1013 with the filter's message (PRICE_FILTER /
  LOT_SIZE...: the order is kept). Not emulated: a non-GTX modify to a price that would
  take (Binance re-queues and matches it); the sandbox refuses it with -1020.
- `GET /fapi/v3/positionRisk` (signed in the query; the API key header is not checked,
  `serve_rest` does not see headers): the open positions, seeded with `positions=`.
- Fault `listenkey_silent=N` (see `sandbox_md.Faults`): after N user events the key expires
  silently.

Not emulated: hedge mode (LONG/SHORT), margin, leverage, liquidations, mark price,
the key's 60-minute expiry without keepalives, the 10,000-modifications-per-order cap.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from adapters.live.exec_events import OrderRequest
from adapters.live.sandbox_auth import ApiError, check_timing
from adapters.live.sandbox_exec import SandboxVenue, _decimal, _Session
from adapters.live.sandbox_futures import SandboxFutures
from adapters.live.sandbox_json import execution_report, order_json
from adapters.live.sandbox_matching import fmt8
from adapters.live.sandbox_md import RestError
from adapters.live.sandbox_replay import Replay
from adapters.live.signing import ws_payload
from engine.codes import R_AMEND_WOULD_CROSS

WS_FAPI_PATH: Final = "/ws-fapi/v1"
USER_PATH: Final = "/private/ws"
MARGIN_ASSET: Final = "USDT"


class SandboxFuturesVenue(SandboxVenue, SandboxFutures):
    """The USD-M sandbox with an order side. Give it a futures replay (`futures_replay`).

    Args:
        replay: the futures timeline.
        positions: starting one-way positions, symbol -> (signed qty, entry price).
        wallet: the starting USDT wallet balance.
        **kwargs: SandboxVenue's (account, faults, fees, ...).
    """

    ws_paths = ("/public/stream", "/market/stream", WS_FAPI_PATH)
    ws_api_path = WS_FAPI_PATH

    def __init__(
        self,
        replay: Replay,
        *,
        positions: Mapping[str, tuple[Decimal, Decimal]] | None = None,
        wallet: Decimal = Decimal("10000"),
        **kwargs: Any,
    ) -> None:
        super().__init__(replay, **kwargs)
        self.positions: dict[str, tuple[Decimal, Decimal]] = dict(positions or {})
        self.wallet = wallet
        self.listen_key: str | None = None
        self.key_expired = False
        self.key_events = 0
        """User events sent on the current key."""
        self._keys = itertools.count(1)
        self._user_sessions: dict[int, tuple[str, _Session]] = {}
        self._reduce_only: set[str] = set()
        # Counters.
        self.key_starts = 0
        self.keepalives = 0
        self.user_connections = 0

    @property
    def user_ws_url(self) -> str:
        """The user stream base (what `BinanceFuturesExec(user_ws_url=...)` takes)."""
        return f"ws://{self.host}:{self.port}{USER_PATH}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- WebSocket routing ------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.partition("?")[0]
        if (
            path.startswith(USER_PATH + "/")
            and Headers(request.headers).get("Upgrade", "").lower() == "websocket"
        ):
            return None
        return super()._process_request(connection, request)

    async def serve_ws(self, path: str, ws: ServerConnection) -> None:
        if not path.startswith(USER_PATH + "/"):
            await super().serve_ws(path, ws)
            return
        key = path[len(USER_PATH) + 1 :]
        if key != self.listen_key or self.key_expired:
            await ws.close(1008, "Invalid listenKey")
            return
        session = _Session(next(self._serials), ws)
        session.writer = asyncio.create_task(session.write(), name="sandbox:user-stream")
        self._user_sessions[session.serial] = (key, session)
        self.user_connections += 1
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
        finally:
            self._user_sessions.pop(session.serial, None)
            session.queue.put_nowait(None)

    async def close(self) -> None:
        for _, session in list(self._user_sessions.values()):
            if session.writer is not None:
                session.writer.cancel()
        await super().close()

    # -- user data ------------------------------------------------------------------------

    def _deliver(self, event: dict, not_before: float) -> None:
        """An executionReport (from the spot machinery) goes out as ORDER_TRADE_UPDATE."""
        if event.get("e") == "executionReport":
            event = self._order_trade_update(event)
        self._send_user(event, not_before)

    def _push_user(self, event: dict, not_before: float) -> None:
        super()._push_user(event, not_before)
        if event.get("e") == "executionReport" and event.get("x") == "TRADE":
            self._apply_fill(event, not_before)

    def _send_user(self, event: dict, not_before: float) -> None:
        if self.listen_key is None or self.key_expired:
            return
        n = self.faults.listenkey_silent
        if n and self.key_events >= n:
            self.key_expired = True  # silently: no listenKeyExpired
            return
        self.key_events += 1
        text = orjson.dumps(event).decode()
        for key, session in list(self._user_sessions.values()):
            if key == self.listen_key:
                self._enqueue(session, text, not_before)

    def _order_trade_update(self, r: dict) -> dict:
        o = {k: v for k, v in r.items() if k not in ("e", "E", "C", "M", "w", "g", "P", "F")}
        o["c"] = r.get("C") or r["c"]  # futures: always the order's own id
        if r.get("o") == "LIMIT_MAKER":
            o["o"], o["f"] = "LIMIT", "GTX"
        o.update(ap="0", sp="0", R=o["c"] in self._reduce_only, ps="BOTH", ot=o["o"], rp="0")
        now = self.server_time_ms()
        return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": r.get("T", now), "o": o}

    def _apply_fill(self, r: dict, not_before: float) -> None:
        """A fill moves the one-way position and the wallet: an ACCOUNT_UPDATE."""
        sym = str(r["s"])
        qty, price = Decimal(str(r["l"])), Decimal(str(r["L"]))
        signed = qty if r["S"] == "BUY" else -qty
        pos, entry = self.positions.get(sym, (Decimal(0), Decimal(0)))
        new = pos + signed
        if new == 0:
            entry = Decimal(0)
        elif pos == 0 or (pos > 0) != (new > 0):
            entry = price  # opened or flipped
        elif (pos > 0) == (signed > 0):
            entry = (abs(pos) * entry + qty * price) / abs(new)
        self.positions[sym] = (new, entry)
        fee = Decimal(str(r.get("n") or "0"))
        self.wallet -= fee
        self._account_update("ORDER", -fee, [sym], not_before)

    def push_funding(self, amount: Decimal) -> None:
        """Settle a funding fee: the wallet moves by `amount` (negative: paid)."""
        self.wallet += amount
        self._account_update("FUNDING_FEE", amount, [], 0.0)

    def move_position(
        self, symbol: str, qty: Decimal, entry: Decimal | None = None, *, reason: str = "ADJUSTMENT"
    ) -> None:
        """Change a position behind the client's back (another program on the account, a
        liquidation): the one-way position becomes `qty` and an ACCOUNT_UPDATE says so."""
        old_entry = self.positions.get(symbol, (Decimal(0), Decimal(0)))[1]
        self.positions[symbol] = (qty, Decimal(0) if qty == 0 else (entry or old_entry))
        self._account_update(reason, Decimal(0), [symbol], 0.0)

    def _account_update(
        self, reason: str, change: Decimal, symbols: list[str], not_before: float
    ) -> None:
        now = self.server_time_ms()
        positions = []
        for sym in symbols:
            qty, entry = self.positions.get(sym, (Decimal(0), Decimal(0)))
            positions.append(
                {
                    "s": sym,
                    "pa": fmt8(qty),
                    "ep": fmt8(entry),
                    "cr": "0",
                    "up": "0",
                    "mt": "cross",
                    "iw": "0",
                    "ps": "BOTH",
                }
            )
        wb = fmt8(self.wallet)
        balances = [{"a": MARGIN_ASSET, "wb": wb, "cw": wb, "bc": fmt8(change)}]
        event = {
            "e": "ACCOUNT_UPDATE",
            "E": now,
            "T": now,
            "a": {"m": reason, "B": balances, "P": positions},
        }
        self._send_user(event, not_before)

    # -- methods ----------------------------------------------------------------------------

    def _check_key(self, p: Mapping[str, Any]) -> None:
        if p.get("apiKey") != self.account.api_key:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")

    def _stream_start(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        self._check_key(p)
        if self.listen_key is None or self.key_expired:
            self.listen_key = f"sandboxListenKey{next(self._keys):04d}"
            self.key_expired = False
            self.key_events = 0
        self.key_starts += 1
        return {"listenKey": self.listen_key}

    def _stream_ping(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        self._check_key(p)
        self.keepalives += 1
        if self.listen_key is None or self.key_expired:
            raise ApiError(400, -1125, "This listenKey does not exist.")
        return {"listenKey": self.listen_key}

    def _stream_stop(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        self._check_key(p)
        self.listen_key = None
        return {}

    def _futures_place(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        reduce_only = p.get("reduceOnly") in ("true", True)
        q = {k: v for k, v in p.items() if k != "reduceOnly"}
        if q.get("type") == "LIMIT" and q.get("timeInForce") == "GTX":
            q["type"] = "LIMIT_MAKER"
            q.pop("timeInForce")
        if reduce_only:
            symbol = self._symbol(q)
            pos = self.positions.get(symbol, (Decimal(0), Decimal(0)))[0]
            buy = q.get("side") == "BUY"
            if (buy and pos >= 0) or (not buy and pos <= 0):
                raise ApiError(400, -2022, "ReduceOnly Order is rejected.")
            cid = q.get("newClientOrderId")
            if isinstance(cid, str):
                self._reduce_only.add(cid)
        try:
            return SandboxVenue._place(self, session, q, frames)
        except ApiError as exc:
            if exc.code == -2010 and "immediately match" in exc.msg:
                raise ApiError(
                    400,
                    -5022,
                    "Due to the order could not be executed as maker, the Post Only order "
                    "will be rejected. The order will not be recorded in the order history",
                ) from None
            raise

    def _futures_cancel(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        r = SandboxVenue._cancel(self, session, p, frames)
        r["clientOrderId"] = r.pop("origClientOrderId")
        return r

    def _futures_modify(self, session: _Session, p: dict, frames: list[dict]) -> Any:
        order = self._target(p, "origClientOrderId", "orderId")
        for name in ("side", "quantity", "price"):
            if p.get(name) is None:
                raise ApiError(
                    400,
                    -1102,
                    f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
                )
        if order is None or not order.open:
            raise ApiError(400, -2013, "Order does not exist.")
        if p["side"] != order.side:
            raise ApiError(400, -1102, "Parameter 'side' does not match the order's side.")
        price, qty = _decimal(p, "price"), _decimal(p, "quantity")
        if price == order.price and qty == order.qty:
            raise ApiError(400, -5027, "No need to modify the order.")
        req = OrderRequest(
            "new", order.client_id, order.symbol, side=order.side.lower(), price=price, qty=qty
        )
        why = self.filters[order.symbol].check(req)
        if why is not None:
            raise ApiError(400, -1013, why)
        gtx_takes = order.type == "LIMIT_MAKER" and self.matcher.would_take(
            order.symbol, order.side, price
        )
        if qty <= order.executed or gtx_takes:
            executions = self.matcher.cancel(order, order.client_id) or []
        else:
            result = self.matcher.amend(order, price, qty)
            if result == R_AMEND_WOULD_CROSS:
                raise ApiError(400, -1020, "This operation is not supported.")
            if isinstance(result, int):
                raise ApiError(400, -2013, "Order does not exist.")
            executions = result
        frames.extend(execution_report(ex, self.server_time_ms()) for ex in executions)
        out = order_json(order)
        if order.type == "LIMIT_MAKER":
            out["type"], out["timeInForce"] = "LIMIT", "GTX"
        return out

    _METHODS: Final = {
        **SandboxVenue._METHODS,
        "userDataStream.start": _stream_start,
        "userDataStream.ping": _stream_ping,
        "userDataStream.stop": _stream_stop,
        "order.place": _futures_place,
        "order.cancel": _futures_cancel,
        "order.modify": _futures_modify,
    }

    # -- REST -------------------------------------------------------------------------------

    def serve_rest(self, path: str, params: dict[str, str]) -> Response | None:
        if path == "/fapi/v3/positionRisk":
            return self._position_risk(params)
        return super().serve_rest(path, params)

    def _position_risk(self, params: dict[str, str]) -> Response:
        signature = params.get("signature", "")
        if not self.account.verify(ws_payload(params), signature):
            raise RestError(-1022, "Signature for this request is not valid.")
        timing = {
            k: int(params[k]) for k in ("timestamp", "recvWindow") if params.get(k, "").isdigit()
        }
        try:
            check_timing(timing, self.server_time_ms())
        except ApiError as exc:
            raise RestError(exc.code, exc.msg) from None
        body = [
            {
                "symbol": sym,
                "positionSide": "BOTH",
                "positionAmt": fmt8(qty),
                "entryPrice": fmt8(entry),
                "unRealizedProfit": "0",
                "marginAsset": MARGIN_ASSET,
            }
            for sym, (qty, entry) in sorted(self.positions.items())
            if qty != 0
        ]
        return self.json_response(200, body, weight=5)
