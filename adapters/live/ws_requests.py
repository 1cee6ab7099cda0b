"""WsVenue's requests: correlation by id, sending, signing, uncorrelated frames.

`RequestSending` is a mixin of `ws_venue.WsVenue` (it is not used alone; the pending
requests `_pending`, the connections and `config` are WsVenue's). A request gets a fresh
id and waits for its reply; no reply within the timeout, or the connection lost after
sending, is Outcome.UNKNOWN, and nothing is resent (see `correlation`). Outgoing frames
are limited per connection (`ws_send_limits`). The hooks a venue may override are
`reply_of` (what a reply looks like), `request_id` and `sign_request`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State as WsState

from adapters.live.correlation import Outcome, Reply
from adapters.live.ws_types import Connection
from adapters.live.ws_write import can_write_now, write_now
from engine.errors import UsageError

_ONE_MESSAGE = {"MESSAGES": 1}


class RequestSending:
    """Correlated requests and plain frames over the active connection (a WsVenue part)."""

    async def request(
        self,
        payload: dict,
        *,
        timeout: float | None = None,
        signed: bool = False,
        conn: Connection | None = None,
    ) -> Reply:
        """Send a request with a fresh id and wait for its reply.

        Returns:
            The Reply: OK or ERROR from the venue; UNKNOWN when no reply came within
            `timeout` (default `config.request_timeout`) or the connection was lost after
            sending; NOT_SENT without a connection. Never resent.
        """
        conn = conn or self._active
        rid = self.request_id(self._pending.next_id())
        if conn is None or conn.ws.state is not WsState.OPEN:
            return Reply(rid, Outcome.NOT_SENT, reason="not connected")
        body = {**payload, self.request_id_field: rid}
        if signed:
            body = self.sign_request(body)
        fut = self._pending.register(rid, conn.serial)
        await conn.limiter.acquire({"MESSAGES": 1})
        if conn.ws.state is not WsState.OPEN:
            return self._pending.discard(rid, Outcome.NOT_SENT, "connection closed")
        try:
            await conn.ws.send(orjson.dumps(body).decode())
        except ConnectionClosed as exc:
            return self._pending.discard(rid, Outcome.UNKNOWN, f"connection closed: {exc}")
        return await self._pending.wait(rid, fut, timeout or self.config.request_timeout)

    def request_now(
        self, payload: dict, *, signed: bool = False
    ) -> tuple[Any, asyncio.Future[Reply]] | None:
        """Send a request before returning, from synchronous code, if nothing has to wait
        (an open connection, room in its message budget, an empty socket buffer); None
        otherwise, and nothing was sent: use `request`. Await the reply with `await_reply`.
        """
        conn = self._active
        if conn is None or conn.limiter.wait_time(_ONE_MESSAGE) > 0:
            return None
        if not can_write_now(conn.ws):
            return None
        rid = self.request_id(self._pending.next_id())
        body = {**payload, self.request_id_field: rid}
        if signed:
            body = self.sign_request(body)
        fut = self._pending.register(rid, conn.serial)
        conn.limiter.spend(_ONE_MESSAGE)
        write_now(conn.ws, orjson.dumps(body))
        return rid, fut

    async def await_reply(self, rid: Any, fut: asyncio.Future[Reply]) -> Reply:
        """The reply to a `request_now` (UNKNOWN after `config.request_timeout`)."""
        return await self._pending.wait(rid, fut, self.config.request_timeout)

    async def _send(self, conn: Connection, text: str) -> None:
        await conn.limiter.acquire({"MESSAGES": 1})
        await conn.ws.send(text)

    async def send(self, payload: dict) -> bool:
        """Send an uncorrelated frame on the active connection; False without one."""
        conn = self._active
        if conn is None:
            return False
        try:
            await self._send(conn, orjson.dumps(payload).decode())
        except ConnectionClosed:
            return False
        return True

    def reply_of(self, msg: Any) -> Reply | None:
        """The Reply a frame carries, or None when it is not a reply (Binance's shape).

        `{"id": 1, "result": null}` is OK; `{"id": 1, "error": {...}}` or
        `{"id": 1, "code": 2, "msg": "..."}` is ERROR; WebSocket API replies add `status`.
        """
        if not isinstance(msg, dict) or "stream" in msg:
            return None
        rid = msg.get(self.request_id_field)
        if rid is None:
            return None
        if "error" in msg:
            return Reply(rid, Outcome.ERROR, error=msg["error"])
        if "result" in msg:
            status = msg.get("status", 200)
            if isinstance(status, int) and status >= 400:
                return Reply(rid, Outcome.ERROR, error=msg["result"])
            return Reply(rid, Outcome.OK, result=msg["result"])
        if "code" in msg:
            return Reply(rid, Outcome.ERROR, error={"code": msg["code"], "msg": msg.get("msg")})
        return None

    def request_id(self, serial: int) -> Any:
        """The id to put in the `serial`-th request (an int; Bybit wants a string)."""
        return serial

    def sign_request(self, request: dict) -> dict:
        """The request with its signature (Binance WebSocket API: params sorted, joined as a
        query string, signed, added as `signature`). Override for other venues.

        Raises:
            UsageError: no signer was given.
        """
        if self.signer is None:
            raise UsageError(f"{self.venue}: a signed request needs a signer")
        params = dict(request.get("params") or {})
        params.pop("signature", None)
        payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        params["signature"] = self.signer.sign(payload)
        return {**request, "params": params}
