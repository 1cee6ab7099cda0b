"""WsVenue's connection lifecycle: connect, serve, rotate, reconnect, stop.

`ConnectionLifecycle` is a mixin of `ws_venue.WsVenue` (it is not used alone): the state it
works on is created by `WsVenue.__init__`, and it calls the venue's hooks (`url`,
`prepare_connection`, `subscribe_requests`, `on_subscribed`, `app_ping`) and the other
parts (`request` and `_send` of ws_requests, `_on_frame` of ws_frames, `_drop_books` and
`_cancel_resyncs` of ws_books).

- Reconnection after a lost connection with exponential backoff and full jitter, never more
  attempts than the venue's budget (`connect_budget`); a connection that lived
  `backoff_reset_after` seconds starts again from the first delay.
- Planned rotation at `rotate_after` or on `request_rotation`: a second connection is
  opened and subscribed while the first still delivers (its frames held back); after
  `rotation_overlap` the first is closed and the held frames are processed.
- A heartbeat task per connection sends application pings and closes a silent connection
  (`stale_after`).
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import TYPE_CHECKING

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from adapters.live.correlation import Outcome
from adapters.live.rate_limit import RateLimiter
from adapters.live.ws_direct import DirectClientConnection
from adapters.live.ws_types import LOGGER_NAME, Connection, State
from engine.errors import UsageError

if TYPE_CHECKING:
    from adapters.live.ws_venue import WsVenue

log = logging.getLogger(LOGGER_NAME)

_OPEN_ERRORS = (OSError, WebSocketException, TimeoutError, ConnectionError)
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class ConnectionLifecycle:
    """Connect, subscribe, serve, rotate and reconnect until `stop()` (a WsVenue part)."""

    async def start(self) -> None:
        """Start connecting in a background task (returns at once)."""
        if self._task is not None:
            raise UsageError(f"{self.venue}: already started")
        self._task = asyncio.create_task(self.run(), name=f"{self.venue}:run")

    async def stop(self) -> None:
        """Close every connection and stop; the state ends CLOSED."""
        self._closing = True
        for conn in list(self._conns):
            await self._close(conn)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._cancel_resyncs()
        self._set_state(State.CLOSED)

    async def __aenter__(self) -> WsVenue:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def request_rotation(self, reason: str) -> None:
        """Open a new connection and switch to it (e.g. the venue announced a shutdown)."""
        self._rotate_reason = reason
        self._rotate_event.set()

    async def run(self) -> None:
        """Connect, serve, reconnect until `stop()`."""
        try:
            first = True
            while not self._closing:
                self._set_state(State.CONNECTING)
                try:
                    conn = await self._open(standby=False, first=first)
                except _OPEN_ERRORS as exc:
                    self.connect_failures += 1
                    self._set_state(State.DISCONNECTED)
                    delay = self.backoff.next_delay()
                    self._warn(
                        "connect",
                        "%s: cannot connect (%s); next attempt in %.2f s",
                        self.venue,
                        exc,
                        delay,
                    )
                    await self._sleep(delay)
                    continue
                if not first:
                    self.reconnects += 1
                first = False
                # A shutdown notice that came with the lost connection concerns it, not this one.
                self._rotate_event.clear()
                conn = await self._serve(conn)
                lived = self._mono() - conn.opened_at
                await self._close(conn)
                self._lost(conn)
                if self._closing:
                    break
                if lived >= self.config.backoff_reset_after:
                    self.backoff.reset()
                self._set_state(State.DISCONNECTED)
                delay = self.backoff.next_delay()
                log.warning(
                    "%s: connection lost after %.1f s; reconnecting in %.2f s",
                    self.venue,
                    lived,
                    delay,
                )
                await self._sleep(delay)
        finally:
            for conn in list(self._conns):
                for task in (conn.reader, conn.heartbeat):
                    if task is not None:
                        task.cancel()
                conn.ws.transport.abort()
            self._set_state(State.CLOSED)

    async def _open(self, *, standby: bool, first: bool = False) -> Connection:
        """Connect (within the attempt budget) and subscribe."""
        wait = self._budget.wait_time()
        if wait > 0:
            log.warning("%s: connection attempt budget spent; waiting %.1f s", self.venue, wait)
            await self._sleep(wait)
        self._budget.record()
        url = self.url()
        host = urllib.parse.urlsplit(url).hostname or ""
        ws = await connect(
            url,
            open_timeout=self.config.open_timeout,
            close_timeout=self.config.close_timeout,
            ping_interval=self.ws_ping_interval,
            ping_timeout=self.ws_ping_timeout,
            max_size=self.config.max_frame,
            compression=self.config.compression,
            proxy=None if host in _LOOPBACK else True,
            create_connection=DirectClientConnection,
        )
        self._serial += 1
        self.connections_opened += 1
        limiter = RateLimiter(self.ws_send_limits, clock=self._mono, sleep=self._sleep)
        conn = Connection(self._serial, ws, self._mono(), limiter)
        conn.standby = standby
        if isinstance(ws, DirectClientConnection):
            # Frames are handled as they are parsed (adapters/live/ws_direct.py); the
            # reader then only sees the connection close (or fragmented messages).
            ws.deliver_to(lambda frame: self._on_frame(conn, frame))
        conn.reader = asyncio.create_task(self._read(conn), name=f"{self.venue}:read:{conn.serial}")
        if self.app_ping_interval is not None or self.config.stale_after is not None:
            conn.heartbeat = asyncio.create_task(self._heartbeat(conn))
        self._conns.add(conn)
        if not standby:
            self._active = conn
            self._set_state(State.CONNECTED)
        try:
            await self._subscribe(conn)
        except BaseException:
            await self._close(conn)
            if self._active is conn:
                self._active = None
            raise
        if not standby:
            self.on_subscribed(first)
            self._update_state()
        return conn

    async def _subscribe(self, conn: Connection) -> None:
        await self.prepare_connection(conn)
        all_ok = True
        for req in self.subscribe_requests():
            reply = await self.request(req, conn=conn)
            if reply.outcome is Outcome.NOT_SENT or conn.reader is None or conn.reader.done():
                raise ConnectionError(f"connection lost while subscribing ({reply.reason})")
            all_ok = all_ok and reply.ok
            if reply.outcome is Outcome.ERROR:
                log.error("%s: subscription refused: %s", self.venue, reply.error)
            elif reply.outcome is Outcome.UNKNOWN:
                # Maybe subscribed: the first data frame will tell (see _dispatch).
                log.warning("%s: subscription unconfirmed (%s)", self.venue, reply.reason)
        if all_ok:
            conn.subscribed = True

    async def _serve(self, conn: Connection) -> Connection:
        """Until the active connection is lost; rotates it when due. Returns the last one."""
        cfg = self.config
        rotate_after = (cfg.rotate_after or self.rotate_after) if cfg.rotation else None
        while not self._closing:
            assert conn.reader is not None
            timeout = None
            if rotate_after is not None:
                timeout = max(conn.opened_at + rotate_after - self._mono(), 0.0)
            waiter = asyncio.ensure_future(self._rotate_event.wait())
            try:
                await asyncio.wait(
                    {conn.reader, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waiter.cancel()
            if conn.reader.done() or self._closing:
                return conn
            reason = self._rotate_reason or f"connection age {rotate_after} s"
            self._rotate_event.clear()
            self._rotate_reason = ""
            new = await self._rotate(conn, reason)
            if new is None:
                delay = self.backoff.next_delay()
                await asyncio.wait({conn.reader}, timeout=delay)
                continue
            conn = new
        return conn

    async def _rotate(self, old: Connection, reason: str) -> Connection | None:
        """Open and subscribe a new connection, then retire the old one."""
        log.info("%s: rotating connection %d (%s)", self.venue, old.serial, reason)
        try:
            new = await self._open(standby=True)
        except _OPEN_ERRORS as exc:
            self.connect_failures += 1
            log.warning("%s: rotation failed (%s); keeping the old connection", self.venue, exc)
            return None
        assert old.reader is not None
        if not old.reader.done():
            await asyncio.wait({old.reader}, timeout=self.config.rotation_overlap)
        await self._close(old)
        self._pending.abandon(old.serial, "connection rotated")
        self._active = new
        new.standby = False
        held, new.held = new.held, []
        for ts, msg in held:
            self._dispatch(msg, ts, new)
        self.rotations += 1
        self._update_state()
        return new

    async def _close(self, conn: Connection) -> None:
        if conn.heartbeat is not None:
            conn.heartbeat.cancel()
        try:
            await conn.ws.close()
        except Exception as exc:  # closing must never fail the caller
            log.debug("%s: close of connection %d: %s", self.venue, conn.serial, exc)
        if conn.reader is not None and not conn.reader.done():
            try:
                await asyncio.wait_for(asyncio.shield(conn.reader), self.config.close_timeout)
            except (TimeoutError, asyncio.CancelledError):
                conn.reader.cancel()
        self._conns.discard(conn)

    def _lost(self, conn: Connection) -> None:
        """After an unplanned loss: pending requests are UNKNOWN, books are dropped."""
        self._pending.abandon(conn.serial, "connection lost")
        if self._active is conn:
            self._active = None
        self._drop_books()

    async def _heartbeat(self, conn: Connection) -> None:
        """Application pings and the silence watchdog of one connection."""
        periods = [p for p in (self.app_ping_interval, self.config.stale_after) if p]
        period = min(periods)
        if self.config.stale_after is not None:
            period = min(period, self.config.stale_after / 2)
        next_ping = self._mono() + (self.app_ping_interval or 0.0)
        try:
            while True:
                await asyncio.sleep(period)
                now = self._mono()
                stale = self.config.stale_after
                if stale is not None and now - conn.last_frame > stale:
                    log.warning(
                        "%s: no frame for %.1f s on connection %d; closing it",
                        self.venue,
                        now - conn.last_frame,
                        conn.serial,
                    )
                    conn.ws.transport.abort()
                    return
                if self.app_ping_interval is not None and now >= next_ping:
                    next_ping = now + self.app_ping_interval
                    ping = self.app_ping()
                    if ping is not None:
                        await self._send(conn, ping)
        except ConnectionClosed:
            return
