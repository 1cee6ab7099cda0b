"""Binance USD-M futures order execution over the futures WebSocket API, as `ExecEvent`s.

`BinanceFuturesExec` is `BinanceSpotExec` (a `WsVenue`: signing, clock offset, rate limits,
UNKNOWN outcomes settled by `order.status`, fills deduplicated by trade id through
`exec_tracker.OrderTracker`) with the USD-M differences:

- Requests on `wss://ws-fapi.binance.com/ws-fapi/v1`: `order.place` with
  `futures_order_params` (reduceOnly, post-only = LIMIT/GTX), `order.cancel` (futures has
  no cancel-request id: the reply names the order by its own `clientOrderId`), and
  `order.modify` for amends (Binance "Modify Order (TRADE)": LIMIT only, price and quantity
  both sent, the order keeps its client id and loses its queue priority). The amend
  request's own client id is ours only (the journal's and the tracker's key): the order is
  amended *in place* (`OrderTracker.expect(req, in_place=True)`); the reply, or the
  ORDER_TRADE_UPDATE with execution type AMENDMENT, reports `amended` with the new terms; an
  error reply (e.g. -5027 "No need to modify the order.", -2013 order does not exist)
  reports `amend_rejected` and the order keeps its terms; a modify the venue answers with a
  CANCELED/EXPIRED order (a partly filled order modified to at most its executed quantity,
  a GTX that would take) reports the order's end and `amend_rejected`.
- User data does not come on the API connection: `userDataStream.start` (API key, unsigned)
  returns a listenKey, whose stream `<user_ws_url>/<listenKey>` is read by a second
  `WsVenue` (`_UserStream`, so reconnection with backoff is shared). The key is kept alive
  with `userDataStream.ping` every `keepalive_interval` seconds (default 30 min; Binance
  expires a key 60 min after the last keepalive).
- Events: `ORDER_TRADE_UPDATE` -> `order_update_events` -> the tracker (a duplicated fill is
  reported once); `ACCOUNT_UPDATE` -> `account_update` -> `on_account` (funding fees
  included: `AccountUpdate.funding_fee`), and `positions` is updated from it.
- Faults: `listenKeyExpired`, a keepalive answered with an error (-1125 'This listenKey does
  not exist.'), or no user frame for `silence_after` seconds (off by default: a quiet
  account's stream is legitimately silent) set `user_stream_fault` (text),
  `user_stream_ok = False`, call `on_fault(text)`, then a new key is started, its stream
  read, and open orders are checked with `order.status` (what happened while deaf).
- Positions at start: `GET /fapi/v3/positionRisk` (signed, REST) -> `positions_from_risk`.
  The WebSocket API's `account.position` was not in our search corpus, so REST it is; the
  sandbox's HTTP is GET-only, which serves it.
- Filters: USD-M's exchangeInfo is REST (`GET /fapi/v1/exchangeInfo`), not a WS-API method.

Not verified against official pages (absent from the search corpus): the futures WS-API
`userDataStream.start/ping/stop` parameter lists (we send `apiKey` only), the availability
of `time` on ws-fapi (used to measure the clock; the sandbox serves it), and the user
stream URL shape `<base>/<listenKey>`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, ClassVar, Final

import orjson

from adapters.binance_ws import VENUE_USDM
from adapters.live.binance_exec_messages import dec, str_or_none
from adapters.live.binance_futures_messages import (
    AccountUpdate,
    Position,
    account_update,
    futures_order_params,
    order_update_events,
    positions_from_risk,
)
from adapters.live.binance_spot_exec import BinanceSpotExec
from adapters.live.correlation import Outcome
from adapters.live.exec_events import ExecEvent, OrderRequest
from adapters.live.exec_tracker import TrackedRequest
from adapters.live.http import RestClient
from adapters.live.secrets import VenueRequestError, redact
from adapters.live.signing import format_value, signed_query
from adapters.live.venue_filters import VenueFilters
from adapters.live.ws_venue import Connection, ParseError, WsVenue
from engine.errors import DataError, UsageError

log = logging.getLogger(__name__)

WS_API_URL: Final = "wss://ws-fapi.binance.com/ws-fapi/v1"
USER_WS_URL: Final = "wss://fstream.binance.com/private/ws"
REST_URL: Final = "https://fapi.binance.com"
KEEPALIVE_INTERVAL: Final = 30 * 60.0
"""Seconds between `userDataStream.ping`s (Binance: a key lives 60 min after the last)."""
LISTEN_KEY_GONE: Final = -1125
"""'This listenKey does not exist.'"""


class _UserStream(WsVenue):
    """The user data stream of one listenKey; every frame goes to the exec client."""

    venue: ClassVar[str] = f"{VENUE_USDM}:user"
    rotate_after: ClassVar[float | None] = 23.5 * 3600

    def __init__(self, owner: BinanceFuturesExec, url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owner = owner
        self._url = url

    def url(self) -> str:
        return self._url

    def parse(self, msg: Any, ts_local: int) -> Sequence[Any]:
        self._owner._on_user_frame(msg, ts_local)
        return ()


class BinanceFuturesExec(BinanceSpotExec):
    """Orders on Binance USD-M futures (or the sandbox) through the WebSocket API.

    Args:
        user_ws_url: base of the user data stream (`<user_ws_url>/<listenKey>`).
        rest_url: REST base for positionRisk and exchangeInfo.
        keepalive_interval: seconds between `userDataStream.ping`s.
        silence_after: seconds without a user frame that count as a fault (None: off).
        on_account: called with each AccountUpdate (on the event loop).
        on_fault: called with the text of each user-stream fault (on the event loop).
        read_positions: read positionRisk when the first connection is set up.
        **kwargs: BinanceSpotExec's (api_key, signer, ws_url, symbols, on_exec, ...).
    """

    venue: ClassVar[str] = VENUE_USDM
    amends_in_place: ClassVar[bool] = True

    def __init__(
        self,
        *,
        ws_url: str = WS_API_URL,
        user_ws_url: str = USER_WS_URL,
        rest_url: str = REST_URL,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        silence_after: float | None = None,
        on_account: Callable[[AccountUpdate], object] | None = None,
        on_fault: Callable[[str], object] | None = None,
        read_positions: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(ws_url=ws_url, **kwargs)
        if keepalive_interval <= 0:
            raise UsageError(f"keepalive_interval {keepalive_interval}: must be > 0 seconds")
        if silence_after is not None and silence_after <= 0:
            raise UsageError(f"silence_after {silence_after}: must be > 0 seconds or None")
        self.user_ws_url = user_ws_url.rstrip("/")
        self.rest = RestClient(rest_url, used_weight=("x-mbx-used-weight-1m", "REQUEST_WEIGHT"))
        self.keepalive_interval = keepalive_interval
        self.silence_after = silence_after
        self.on_account = on_account
        self.on_fault = on_fault
        self.read_positions = read_positions
        self.positions: dict[tuple[str, str], Position] = {}
        """(symbol, positionSide) -> position: read at start, then from ACCOUNT_UPDATEs."""
        self.positions_read = asyncio.Event()
        self.listen_key: str | None = None
        self.user_stream_ok = False
        """True while a listenKey's stream is read and no fault was seen since."""
        self.user_stream_fault: str | None = None
        """The last fault's text (kept after recovery, for the session to show)."""
        self._user: _UserStream | None = None
        self._last_user_frame: float | None = None
        self._renewing = False
        self._user_started = False
        # Counters.
        self.keepalives = 0
        self.keepalive_failures = 0
        self.key_starts = 0
        self.user_faults = 0
        self.account_updates = 0

    def __repr__(self) -> str:
        return f"BinanceFuturesExec({self.ws_url!r}, state={self.state})"

    # -- the public API -------------------------------------------------------------------

    def new_order_params(self, req: OrderRequest) -> dict[str, Any]:
        """USD-M flavour: reduceOnly, post-only as LIMIT/GTX."""
        return futures_order_params(req)

    async def cancel(self, req: OrderRequest) -> ExecEvent:
        """Cancel the order `req.orig_client_id`. Returns canceled, cancel_rejected or
        unknown (futures cancels carry no id of their own: `req.client_id` is ours only)."""
        if req.kind != "cancel":
            raise UsageError(f"cancel() takes a cancel request, got a {req.kind} request")
        self.tracker.expect(req)
        params = {"symbol": req.symbol, "origClientOrderId": req.orig_client_id}
        reply = await self._call("order.cancel", params)
        if reply.ok and isinstance(reply.result, dict):
            r = reply.result
            # The futures reply names the order by its own clientOrderId.
            r = {**r, "origClientOrderId": r.get("origClientOrderId", r.get("clientOrderId"))}
            reply = replace(reply, result=r)
        return self._settle(req, reply)

    async def amend(self, req: OrderRequest) -> ExecEvent:
        """Modify the order `req.orig_client_id` in place to `req.price` / `req.qty` (the
        new total) with `order.modify`. Returns amended, amend_rejected or unknown."""
        if req.kind != "amend":
            raise UsageError(f"amend() takes an amend request, got a {req.kind} request")
        if req.type != "limit":
            raise UsageError("amend(): order.modify changes LIMIT orders only")
        self.tracker.expect(req, in_place=True)
        refused = self._refused_locally(req)
        if refused is not None:
            return refused
        params = {
            "symbol": req.symbol,
            "origClientOrderId": req.orig_client_id,
            "side": "BUY" if req.side == "buy" else "SELL",
            "quantity": format_value("quantity", req.qty),
            "price": format_value("price", req.price),
        }
        reply = await self._call("order.modify", params)
        return self._settle(req, reply)

    def _settle_amend(self, req: OrderRequest, r: Mapping[str, Any]) -> ExecEvent:
        """order.modify answered with the order: amended, or ended by the modify."""
        status = str(r.get("status", ""))
        vid = str_or_none(r.get("orderId"))
        if status in ("CANCELED", "EXPIRED"):
            assert req.orig_client_id is not None
            end = ExecEvent(
                "canceled" if status == "CANCELED" else "expired",
                req.orig_client_id,
                symbol=req.symbol,
                venue_order_id=vid,
                reason=f"order.modify: {status}",
                recv_ts_ns=self._now_ns(),
            )
            self.tracker.offer(end)
            return self._offer_first(
                replace(
                    self._template(req, "amend_rejected"),
                    message=f"the venue ended the order ({status})",
                )
            )
        try:
            price, qty = dec(r["price"]), dec(r["origQty"])
        except (KeyError, TypeError, ParseError):
            price, qty = req.price, req.qty  # an ack without the terms: ours were applied
        return self._offer_first(
            replace(
                self._template(req, "amended"),
                venue_order_id=vid,
                price=price,
                qty=qty,
                venue_ts_ms=r.get("updateTime"),
                reason="order.modify",
            )
        )

    async def _resolve_once(self, req: TrackedRequest) -> None:
        """An in-place amend with no answer: the order's terms at the venue tell."""
        if not (req.kind == "amend" and req.in_place):
            await super()._resolve_once(req)
            return
        assert req.target is not None
        st = await self._query_status(req.symbol, req.target)
        facts = await self._facts(req.target, st) if st is not None else []
        now = self._now_ns()
        base = ExecEvent(
            "amended",
            req.client_id,
            symbol=req.symbol,
            orig_client_id=req.target,
            venue_order_id=st.venue_order_id if st is not None else None,
            recv_ts_ns=now,
        )
        if st is not None and st.price == req.price and st.qty == req.qty:
            facts.append(replace(base, price=st.price, qty=st.qty, reason="order.status"))
        else:
            why = "the order does not exist" if st is None else f"order is {st.status}"
            facts.append(replace(base, kind="amend_rejected", code=None, message=why))
        self.tracker.resolve(req.client_id, st.status if st else "not found", facts)

    async def fetch_positions(self) -> list[Position]:
        """Open positions from `GET /fapi/v3/positionRisk` (signed); also stored.

        Raises:
            VenueRequestError: the venue refused or the body is unusable.
        """
        # In name order: the sandbox checks the signature over the sorted parameters.
        params = {"recvWindow": self.recv_window_ms, "timestamp": self.clock.timestamp_ms()}
        query = signed_query(params, self.signer)
        url = f"{self.rest.base_url}/fapi/v3/positionRisk?{query}"
        resp = await self.rest._get(
            url, None, headers={"X-MBX-APIKEY": self._api_key}, timeout=self.rest.timeout
        )
        if resp.status >= 400:
            raise VenueRequestError(
                f"positionRisk: status {resp.status}: {redact(resp.body.decode(errors='replace'))}"
            )
        try:
            out = positions_from_risk(orjson.loads(resp.body))
        except (ValueError, ParseError) as exc:
            raise VenueRequestError(f"positionRisk: {exc}") from None
        self.positions = {(p.symbol, p.side): p for p in out}
        self.positions_read.set()
        return out

    async def stop(self) -> None:
        """Stop the user stream, the keepalive and the API connection."""
        self._closing = True
        user, self._user = self._user, None
        if user is not None:
            await user.stop()
        await super().stop()

    # -- connection set-up ----------------------------------------------------------------

    async def _load_exchange_info(self, conn: Connection, symbols: list[str]) -> None:
        """USD-M: exchangeInfo is a REST GET (no WS-API method)."""
        try:
            info = await self.rest.get_json("/fapi/v1/exchangeInfo", costs={"REQUEST_WEIGHT": 1})
        except (OSError, DataError, Exception) as exc:  # noqa: BLE001 - any failure: unchecked
            log.error("%s: exchangeInfo failed (%s); orders go unchecked", self.venue, exc)
            return
        for sym in symbols:
            try:
                self.filters[sym] = VenueFilters.from_exchange_info(info, sym)
            except DataError as exc:
                log.error("%s: %s", self.venue, exc)

    def subscribe_requests(self) -> list[dict]:
        return []  # user data comes on its own stream (a listenKey), not on this connection

    def on_subscribed(self, first: bool) -> None:
        super().on_subscribed(first)
        if self.user_stream and not self._user_started:
            self._user_started = True
            self._spawn(self._open_user_stream("start"), "user-stream")
            self._spawn(self._keepalive(), "keepalive")
            if self.silence_after is not None:
                self._spawn(self._watch_silence(), "silence")
        if first and self.read_positions:
            self._spawn(self._read_positions(), "positions")

    def parse(self, msg: Any, ts_local: int) -> Sequence[Any]:
        if isinstance(msg, dict) and "error" in msg:
            self.venue_errors += 1
            log.warning("%s: venue error: %s", self.venue, redact(str(msg.get("error"))))
        elif isinstance(msg, dict):
            self.note_unknown("(api) " + ",".join(sorted(msg)[:4]))
        return ()

    async def _read_positions(self) -> None:
        try:
            await self.fetch_positions()
        except (VenueRequestError, OSError) as exc:
            log.error("%s: positions at start: %s", self.venue, exc)

    # -- the listenKey ----------------------------------------------------------------------

    async def _start_key(self) -> str | None:
        # Signed although Binance's spot WS API does not ask it: a short unsigned frame would
        # show the whole API key in websockets' DEBUG frame log (the leak scan caught it).
        reply = await self._call("userDataStream.start", {})
        if reply.ok and isinstance(reply.result, dict):
            key = reply.result.get("listenKey")
            if isinstance(key, str) and key:
                self.key_starts += 1
                return key
        log.error(
            "%s: userDataStream.start failed: %s",
            self.venue,
            redact(str(reply.error or reply.reason)),
        )
        return None

    async def _open_user_stream(self, why: str) -> None:
        """Start a key (again) and read its stream; retried until it works or we stop."""
        wait = 0.05
        while not self._closing:
            key = await self._start_key() if self._active is not None else None
            if key is not None:
                break
            await self._sleep(wait)
            wait = min(wait * 2, 5.0)
        else:
            return
        old, self._user = self._user, None
        if old is not None:
            await old.stop()
        self.listen_key = key
        self._last_user_frame = self._mono()
        user = _UserStream(self, f"{self.user_ws_url}/{key}", config=self.config, sleep=self._sleep)
        self._user = user
        await user.start()
        self.user_stream_ok = True
        log.info("%s: user data stream on a new listenKey (%s)", self.venue, why)

    async def _keepalive(self) -> None:
        while not self._closing:
            await self._sleep(self.keepalive_interval)
            if self.listen_key is None or self._renewing or self._active is None:
                continue
            reply = await self._call("userDataStream.ping", {"apiKey": self._api_key}, signed=False)
            self.keepalives += 1
            if reply.ok:
                continue
            self.keepalive_failures += 1
            err = reply.error if isinstance(reply.error, dict) else {}
            if reply.outcome is Outcome.ERROR and err.get("code") == LISTEN_KEY_GONE:
                await self._fault(f"listenKey gone (keepalive: {err.get('msg')})")
            else:
                log.warning("%s: keepalive failed: %s", self.venue, self._why_unknown(reply))

    async def _watch_silence(self) -> None:
        assert self.silence_after is not None
        tick = max(self.silence_after / 4, 0.01)
        while not self._closing:
            await self._sleep(tick)
            last = self._last_user_frame
            if last is None or self._renewing:
                continue
            quiet = self._mono() - last
            if quiet > self.silence_after:
                await self._fault(f"user data stream silent for {quiet:.1f} s")

    async def _fault(self, why: str) -> None:
        """Report a user-stream fault, then start a new key and check open orders."""
        if self._renewing or self._closing:
            return
        self._renewing = True
        try:
            self.user_faults += 1
            self.user_stream_ok = False
            self.user_stream_fault = why
            log.warning("%s: user stream fault: %s; starting a new listenKey", self.venue, why)
            if self.on_fault is not None:
                try:
                    self.on_fault(why)
                except Exception:
                    log.exception("%s: the fault sink raised", self.venue)
            await self._open_user_stream(why)
            await self._reconcile_open()
        finally:
            self._renewing = False

    # -- user data ----------------------------------------------------------------------------

    def _on_user_frame(self, msg: Any, ts_local: int) -> None:
        self._last_user_frame = self._mono()
        if isinstance(msg, dict) and "stream" in msg and isinstance(msg.get("data"), dict):
            msg = msg["data"]  # a combined-stream wrapper
        if not isinstance(msg, dict):
            raise ParseError(f"expected a JSON object, got {type(msg).__name__}")
        kind = msg.get("e")
        self.stream_events += 1
        if kind == "ORDER_TRADE_UPDATE":
            o = msg.get("o")
            if not isinstance(o, dict):
                raise ParseError("ORDER_TRADE_UPDATE without `o`")
            events, unknown = order_update_events(o, ts_local)
            if unknown is not None:
                self.note_unknown(f"ORDER_TRADE_UPDATE x={unknown}")
            for ev in events:
                self.tracker.offer(ev)
        elif kind == "ACCOUNT_UPDATE":
            update = account_update(msg, ts_local)
            self.account_updates += 1
            for p in update.positions:
                self.positions[(p.symbol, p.side)] = p
            if self.on_account is not None:
                try:
                    self.on_account(update)
                except Exception:
                    log.exception("%s: the account sink raised", self.venue)
        elif kind == "listenKeyExpired":
            self._spawn(self._fault("listenKeyExpired"), "fault")
        else:
            self.note_unknown(str(kind))

    def position(self, symbol: str, side: str = "BOTH") -> Decimal:
        """The signed position of `symbol` as last read or updated (0 when flat)."""
        p = self.positions.get((symbol.upper(), side))
        return p.qty if p is not None else Decimal(0)
