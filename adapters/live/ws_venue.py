"""Base class of WebSocket venues: connection lifecycle, requests, limits and book sequencing.

A subclass says what is venue-specific: the URL, the subscription requests, how a frame
parses into event rows and book updates, how a book snapshot is obtained, the venue's limits
and keepalive. This class does the rest, the same way for every venue:

- Lifecycle, observable with `status()` (a frozen `VenueStatus`): DISCONNECTED ->
  CONNECTING -> CONNECTED -> SUBSCRIBED, RESYNCING while any book is being (re)built,
  CLOSED after `stop()`.
- Reconnection after a lost connection with exponential backoff and full jitter
  (`backoff.Backoff`), never more attempts than the venue's budget (`connect_budget`), then
  the subscriptions are sent again and every book is rebuilt. A lost connection emits a
  KIND_BOOK_CLEAR with FLAG_RESYNC for each book it held: consumers must not trade on a
  book that is no longer updated.
- Planned rotation before the venue's forced disconnect (Binance closes every connection at
  24 h) or when the venue announces a shutdown (`request_rotation`): a second connection is
  opened and subscribed while the first still delivers; its frames are held back; after an
  overlap the first is closed and the held frames are processed. Updates both connections
  delivered are repeats, which the book sequencer ignores, so a rotation costs no resync.
- Request/response correlation by id (`request`): a reply that does not come within the
  timeout gives Outcome.UNKNOWN, and nothing is resent (see `correlation`).
- Signing hook: `signer` is any object with `sign(payload: str) -> str`; `sign_request`
  builds the payload (override per venue). Secrets never pass through this module.
- Local rate limits on outgoing frames per connection (`ws_send_limits`); the subclass
  owns its REST limiter (`RestClient`), which pauses on 429/418 and Retry-After.
- Book sequencing (`book_sync.BookSequencer` with the venue's rule): buffering until a
  snapshot, stale and repeated updates dropped, a gap clears the book (FLAG_RESYNC) and
  schedules `resync_book`, retried with backoff until it succeeds.
- Robustness: malformed JSON, frames of an unexpected shape and unknown message types are
  logged (rate-limited) and counted, never raised; unknown fields are counted per name.

Threading: everything runs on one asyncio event loop; `on_events` is called on that loop
with each message's rows (never one call per row), and must not block.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.protocol import State as WsState

from adapters._sequence import DIFF_APPLY, DIFF_GAP
from adapters.live.backoff import AttemptBudget, Backoff
from adapters.live.book_sync import BookSequencer, BookUpdate, Rule, SyncState
from adapters.live.correlation import Outcome, PendingRequests, Reply
from adapters.live.http import HttpStatusError
from adapters.live.rate_limit import Limit, RateLimiter
from adapters.live.rows import clear_row
from adapters.live.ws_write import can_write_now, write_now
from engine.errors import DataError, UsageError
from engine.events import FLAG_EXCH_TS_MISSING, FLAG_RESYNC
from engine.instruments import Instrument, InstrumentRegistry

log = logging.getLogger(__name__)

_OPEN_ERRORS = (OSError, WebSocketException, TimeoutError, ConnectionError)
_RESYNC_ERRORS = (HttpStatusError, DataError, OSError, TimeoutError, ConnectionError, KeyError)
_SHAPE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, DataError)
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_ONE_MESSAGE = {"MESSAGES": 1}


class State(enum.StrEnum):
    """Connection lifecycle of a venue."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    """The socket is open; subscriptions are not confirmed yet."""
    SUBSCRIBED = "subscribed"
    """Subscribed, and every book is in sync (or waiting for its first update)."""
    RESYNCING = "resyncing"
    """Subscribed, but at least one book is being (re)built from a snapshot."""
    CLOSED = "closed"


@dataclass(frozen=True)
class VenueStatus:
    """A snapshot of a venue connection, cheap to take and safe to hand to another thread."""

    venue: str
    state: State
    last_message_age: float | None
    """Seconds since the last frame arrived (None before the first)."""
    connection_age: float | None
    """Seconds since the active connection opened (None without one)."""
    reconnects: int
    """Connections opened after losing one (rotations are not reconnects)."""
    connect_failures: int
    rotations: int
    messages: int
    """Frames received."""
    bad_frames: int
    """Malformed JSON or frames of an unexpected shape."""
    unknown_messages: int
    unknown_fields: int
    gaps: int
    """Sequence gaps detected (each dropped a book)."""
    resyncs: int
    """Book rebuilds started (after gaps and reconnections, and the first build)."""
    requests_unknown: int
    """Requests that ended with Outcome.UNKNOWN (timeout or connection lost)."""
    books: tuple[tuple[str, str], ...]
    """(key, sync state name) of each book."""


@dataclass(frozen=True)
class WsConfig:
    """Timing of a venue connection; defaults suit production, tests shorten them."""

    backoff_initial: float = 0.5
    """Ceiling of the first reconnection delay, seconds (full jitter below it)."""
    backoff_factor: float = 2.0
    backoff_cap: float = 30.0
    backoff_reset_after: float = 30.0
    """A connection that lived this long starts the next reconnection from the first delay."""
    rotate_after: float | None = None
    """Connection age (s) at which to rotate; None: the venue's `rotate_after`."""
    rotation: bool = True
    """Rotate at all (False: let the venue drop the connection and reconnect)."""
    rotation_overlap: float = 1.0
    """Seconds both connections deliver before the old one is closed."""
    open_timeout: float = 10.0
    close_timeout: float = 2.0
    request_timeout: float = 10.0
    """Seconds to wait for a reply before its outcome is UNKNOWN."""
    stale_after: float | None = None
    """Reconnect when no frame arrived for this long (None: rely on ping/pong)."""
    max_frame: int = 16 * 1024 * 1024
    compression: str | None = None
    """Offer permessage-deflate ("deflate") or not (None): Binance's frames are small and a
    deflate pass each way costs more latency than the bytes it saves on a fast link."""
    snapshot_attempts: int = 5
    """REST snapshots fetched before accepting one older than the buffered updates."""
    snapshot_retry_delay: float = 0.25
    resync_backoff_cap: float = 10.0
    seed: int | None = None
    """Seed of the jitter (reproducible delays in tests)."""


class Signer(Protocol):
    """Anything that signs a payload (HMAC, Ed25519...); it holds the secret, we never do."""

    def sign(self, payload: str) -> str: ...


class ParseError(ValueError):
    """A subclass's parse found a frame of a known type with an unusable shape."""


EventSink = Callable[[np.ndarray], object]


class _Connection:
    """One socket and what belongs to it."""

    def __init__(self, serial: int, ws: ClientConnection, opened_at: float, limiter: RateLimiter):
        self.serial = serial
        self.ws = ws
        self.opened_at = opened_at
        self.limiter = limiter
        self.last_frame = opened_at
        self.standby = False
        """Frames are held in `held` (the new connection of a rotation, before the switch)."""
        self.held: list[tuple[int, Any]] = []
        self.subscribed = False
        self.reader: asyncio.Task[None] | None = None
        self.heartbeat: asyncio.Task[None] | None = None


class _LogLimiter:
    """Logs the first few occurrences of a kind of problem, then every 1000th."""

    def __init__(self, first: int = 5, every: int = 1000) -> None:
        self.first = first
        self.every = every
        self.counts: dict[str, int] = {}

    def __call__(self, kind: str, msg: str, *args: Any) -> None:
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        if n <= self.first or n % self.every == 0:
            log.warning(f"{msg} (occurrence {n})", *args)


class WsVenue:
    """A venue reached over WebSocket. Subclass it; see the module docstring.

    Args:
        on_events: called with the rows (EVENT_DTYPE) of each message; when None the
            arrays are put on `self.queue` (an unbounded asyncio.Queue).
        config: timing (WsConfig()).
        signer: signs requests made with `signed=True`.
        clock_ns: wall clock for `ts_local` (made monotone here).
        monotonic: clock for ages, timeouts and limits.
        sleep: waits of backoff and budgets (injected in tests).
    """

    venue: ClassVar[str] = "ws"
    ws_ping_interval: ClassVar[float | None] = 20.0
    """Protocol-level pings sent by the client (None: only answer the venue's)."""
    ws_ping_timeout: ClassVar[float | None] = 20.0
    app_ping_interval: ClassVar[float | None] = None
    """Application-level ping period (e.g. Bybit's {"op": "ping"}); see `app_ping`."""
    request_id_field: ClassVar[str] = "id"
    rotate_after: ClassVar[float | None] = None
    """Default rotation age: shortly before the venue's forced disconnect."""
    connect_budget: ClassVar[tuple[int, float]] = (300, 300.0)
    """(attempts, seconds): the venue's limit on connection attempts."""
    ws_send_limits: ClassVar[tuple[Limit, ...]] = ()
    """Limits on frames we send, per connection (kind MESSAGES)."""
    snapshot_from_rest: ClassVar[bool] = False
    """Books start from a fetched snapshot (`fetch_snapshot`), not one pushed in-stream."""

    def __init__(
        self,
        *,
        on_events: EventSink | None = None,
        config: WsConfig | None = None,
        signer: Signer | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config or WsConfig()
        self.signer = signer
        self.on_events = on_events
        self.queue: asyncio.Queue[np.ndarray] = asyncio.Queue()
        self._clock_ns = clock_ns
        self._mono = monotonic
        self._sleep = sleep
        cfg = self.config
        rng = random.Random(cfg.seed)
        self.backoff = Backoff(cfg.backoff_initial, cfg.backoff_factor, cfg.backoff_cap, rng)
        self._rng = rng
        self._budget = AttemptBudget(*self.connect_budget, clock=monotonic)
        self._pending = PendingRequests()
        self.instruments = InstrumentRegistry()
        self._books: dict[str, BookSequencer] = {}
        self._iids: dict[str, int] = {}
        self._insts: dict[str, Instrument] = {}
        self._conns: set[_Connection] = set()
        self._active: _Connection | None = None
        self._serial = 0
        self._state = State.DISCONNECTED
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._resync_tasks: dict[str, asyncio.Task[None]] = {}
        self._rotate_event = asyncio.Event()
        self._rotate_reason = ""
        self._last_frame: float | None = None
        self._last_ts = 0
        self._warn = _LogLimiter()
        self._unknown_field_names: set[tuple[str, str]] = set()
        # Counters (see VenueStatus).
        self.messages = 0
        self.bad_frames = 0
        self.unknown_messages: dict[str, int] = {}
        self.unknown_fields = 0
        self.reconnects = 0
        self.connect_failures = 0
        self.rotations = 0
        self.gaps = 0
        self.resyncs = 0
        self.sink_errors = 0
        self.connections_opened = 0

    # -- what a subclass provides ---------------------------------------------------------

    def url(self) -> str:
        """The WebSocket URL to connect to."""
        raise NotImplementedError

    async def prepare_connection(self, conn: _Connection) -> None:
        """Run on every new connection before `subscribe_requests` is asked for its list
        (e.g. measure the clock, whose offset the signed subscriptions need). Send with
        `self.request(..., conn=conn)`; raise ConnectionError to give the connection up."""

    def subscribe_requests(self) -> list[dict]:
        """Requests to send (correlated, in order) on every new connection."""
        return []

    def parse(self, msg: Any, ts_local: int) -> Sequence[np.ndarray | BookUpdate]:
        """Rows to emit and book updates to sequence, from one decoded frame.

        Raise ParseError (or let KeyError/TypeError/ValueError/DataError escape) for a frame
        of an unusable shape: it is counted as a bad frame. Call `note_unknown` for a
        message type the venue sends but we do not use.
        """
        raise NotImplementedError

    def book_rule(self, key: str) -> Rule:
        """The continuity rule of a book (see book_sync)."""
        raise NotImplementedError

    async def fetch_snapshot(self, key: str) -> BookUpdate:
        """A book snapshot (snapshot=True, rows starting with a clear) from the venue."""
        raise NotImplementedError

    async def resync_book(self, key: str) -> None:
        """Rebuild one book after a gap or a reconnection (the book is in WAIT).

        Default, for `snapshot_from_rest` venues: fetch snapshots until one continues into
        the buffered updates (at most `snapshot_attempts`), then apply it. Venues that push
        snapshots in-stream override this (e.g. resubscribe the book's topic).
        """
        cfg = self.config
        for attempt in range(cfg.snapshot_attempts):
            snap = await self.fetch_snapshot(key)
            seq = self._books[key]
            if seq.state != SyncState.WAIT:
                return  # rebuilt meanwhile (e.g. an in-stream snapshot)
            if seq.bridges(snap.last) is False and attempt + 1 < cfg.snapshot_attempts:
                log.info(
                    "%s %s: snapshot %d is older than the buffered updates; fetching again",
                    self.venue,
                    key,
                    snap.last,
                )
                await self._sleep(cfg.snapshot_retry_delay)
                continue
            self.apply_snapshot(snap)
            return

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

    def app_ping(self) -> str | None:
        """The application-level ping frame, sent every `app_ping_interval` seconds."""
        return None

    def on_subscribed(self, first: bool) -> None:
        """After (re)subscribing the active connection; default: rebuild books from REST."""
        if self.snapshot_from_rest:
            for key, seq in self._books.items():
                if seq.state == SyncState.WAIT:
                    self.schedule_resync(key)

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

    # -- books -----------------------------------------------------------------------------

    def add_book(self, key: str, instrument: Instrument) -> int:
        """Register a book under `key` with its instrument; returns the instrument id."""
        iid = self.instruments.add(instrument)
        self._iids[key] = iid
        self._insts[key] = instrument
        self._books[key] = BookSequencer(self.book_rule(key))
        return iid

    def instrument_of(self, key: str) -> tuple[int, Instrument]:
        """(instrument id, Instrument) of a registered book or symbol."""
        return self._iids[key], self._insts[key]

    def sequencer(self, key: str) -> BookSequencer:
        """The sequence state of one book (read it; do not drive it from outside)."""
        return self._books[key]

    def apply_snapshot(self, snap: BookUpdate) -> None:
        """Set a book to a snapshot: emit its rows, then the buffered updates it continues."""
        seq = self._books[snap.key]
        pending = seq.on_snapshot(snap.last)
        self._emit(snap.rows)
        for upd in pending:
            # Received before the snapshot, applicable only after it: keep ts_local monotone.
            upd.ts_local = snap.ts_local
            upd.rows["ts_local"] = snap.ts_local
            self._on_book(upd)
        self._update_state()

    def request_resync(self, key: str, reason: str) -> None:
        """Drop a book (emit a clear with FLAG_RESYNC) and rebuild it; for venue checks
        such as a checksum mismatch. Gaps found by the sequencer come here too."""
        seq = self._books[key]
        if seq.state != SyncState.WAIT:
            seq.reset()
            ts = self._now_ns()
            self._emit(
                clear_row(
                    self._iids[key],
                    ts_exch=ts,
                    ts_local=ts,
                    flags=FLAG_RESYNC | FLAG_EXCH_TS_MISSING,
                )
            )
        log.warning("%s %s: resynchronising the book: %s", self.venue, key, reason)
        self.schedule_resync(key)

    def schedule_resync(self, key: str) -> None:
        """Start rebuilding a book in WAIT unless a rebuild is already running."""
        if key in self._resync_tasks or self._closing:
            return
        self.resyncs += 1
        self._resync_tasks[key] = asyncio.create_task(
            self._resync(key), name=f"{self.venue}:{key}:resync"
        )
        self._update_state()

    async def _resync(self, key: str) -> None:
        cfg = self.config
        backoff = Backoff(cfg.snapshot_retry_delay, 2.0, cfg.resync_backoff_cap, self._rng)
        try:
            while not self._closing:
                try:
                    await self.resync_book(key)
                    return
                except _RESYNC_ERRORS as exc:
                    delay = backoff.next_delay()
                    self._warn(
                        "resync",
                        "%s %s: resync failed (%s); retrying in %.2f s",
                        self.venue,
                        key,
                        exc,
                        delay,
                    )
                    await self._sleep(delay)
        finally:
            if self._resync_tasks.get(key) is asyncio.current_task():
                del self._resync_tasks[key]
            self._update_state()

    def _on_book(self, upd: BookUpdate) -> None:
        seq = self._books.get(upd.key)
        if seq is None:
            self.note_unknown(f"book {upd.key}")
            return
        if upd.snapshot:
            self.apply_snapshot(upd)
            return
        verdict, why = seq.on_update(upd)
        if verdict == DIFF_APPLY:
            self._emit(upd.rows)
        elif verdict == DIFF_GAP:
            self.gaps += 1
            log.warning("%s %s: sequence gap: %s", self.venue, upd.key, why)
            self._emit(
                clear_row(
                    self._iids[upd.key],
                    ts_exch=upd.ts_exch,
                    ts_local=upd.ts_local,
                    flags=FLAG_RESYNC,
                )
            )
            self.on_gap(upd.key, why)

    def on_gap(self, key: str, why: str) -> None:
        """A gap dropped a book (already in WAIT, clear emitted): start the rebuild."""
        self.schedule_resync(key)

    # -- counting what we cannot use ------------------------------------------------------

    def note_unknown(self, kind: str) -> None:
        """Count a message type we do not handle (logged the first times)."""
        self.unknown_messages[kind] = self.unknown_messages.get(kind, 0) + 1
        self._warn(f"unknown:{kind}", "%s: unknown message %s ignored", self.venue, kind)

    def note_unknown_fields(self, kind: str, fields: Iterable[str]) -> None:
        """Count fields a known message carries that we do not know (logged once per name)."""
        for name in fields:
            self.unknown_fields += 1
            if (kind, name) not in self._unknown_field_names:
                self._unknown_field_names.add((kind, name))
                log.info("%s: %s messages carry an unknown field %r", self.venue, kind, name)

    def _bad_frame(self, why: str, sample: Any) -> None:
        self.bad_frames += 1
        text = sample if isinstance(sample, str) else repr(sample)
        self._warn("bad", "%s: bad frame ignored: %s: %.200s", self.venue, why, text)

    # -- lifecycle -------------------------------------------------------------------------

    def status(self) -> VenueStatus:
        """The current state and counters."""
        now = self._mono()
        active = self._active
        return VenueStatus(
            venue=self.venue,
            state=self._state,
            last_message_age=None if self._last_frame is None else now - self._last_frame,
            connection_age=None if active is None else now - active.opened_at,
            reconnects=self.reconnects,
            connect_failures=self.connect_failures,
            rotations=self.rotations,
            messages=self.messages,
            bad_frames=self.bad_frames,
            unknown_messages=sum(self.unknown_messages.values()),
            unknown_fields=self.unknown_fields,
            gaps=self.gaps,
            resyncs=self.resyncs,
            requests_unknown=self._pending.timed_out + self._pending.abandoned,
            books=tuple((k, s.state.name.lower()) for k, s in self._books.items()),
        )

    @property
    def state(self) -> State:
        """The lifecycle state."""
        return self._state

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

    async def _open(self, *, standby: bool, first: bool = False) -> _Connection:
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
        )
        self._serial += 1
        self.connections_opened += 1
        limiter = RateLimiter(self.ws_send_limits, clock=self._mono, sleep=self._sleep)
        conn = _Connection(self._serial, ws, self._mono(), limiter)
        conn.standby = standby
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

    async def _subscribe(self, conn: _Connection) -> None:
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

    async def _serve(self, conn: _Connection) -> _Connection:
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

    async def _rotate(self, old: _Connection, reason: str) -> _Connection | None:
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

    async def _close(self, conn: _Connection) -> None:
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

    def _lost(self, conn: _Connection) -> None:
        """After an unplanned loss: pending requests are UNKNOWN, books are dropped."""
        self._pending.abandon(conn.serial, "connection lost")
        if self._active is conn:
            self._active = None
        for task in list(self._resync_tasks.values()):
            task.cancel()
        self._resync_tasks.clear()
        ts = self._now_ns()
        for key, seq in self._books.items():
            if seq.state != SyncState.WAIT:
                self._emit(
                    clear_row(
                        self._iids[key],
                        ts_exch=ts,
                        ts_local=ts,
                        flags=FLAG_RESYNC | FLAG_EXCH_TS_MISSING,
                    )
                )
            seq.reset()

    async def _cancel_resyncs(self) -> None:
        tasks = list(self._resync_tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._resync_tasks.clear()

    async def _heartbeat(self, conn: _Connection) -> None:
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

    # -- frames ----------------------------------------------------------------------------

    async def _read(self, conn: _Connection) -> None:
        try:
            async for frame in conn.ws:
                self._on_frame(conn, frame)
        except ConnectionClosed as exc:
            log.info("%s: connection %d closed: %s", self.venue, conn.serial, exc)

    def _on_frame(self, conn: _Connection, frame: str | bytes) -> None:
        ts = self._now_ns()
        now = self._mono()
        conn.last_frame = now
        self._last_frame = now
        self.messages += 1
        try:
            msg = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            self._bad_frame(f"malformed JSON ({exc})", frame[:200])
            return
        try:
            reply = self.reply_of(msg)
        except _SHAPE_ERRORS as exc:
            self._bad_frame(f"unexpected reply shape ({exc!r})", msg)
            return
        if reply is not None:
            self._pending.resolve(reply)
            return
        if conn.standby:
            conn.held.append((ts, msg))
            return
        self._dispatch(msg, ts, conn)

    def _dispatch(self, msg: Any, ts: int, conn: _Connection) -> None:
        try:
            items = self.parse(msg, ts)
        except (ParseError, *_SHAPE_ERRORS) as exc:
            self._bad_frame(f"unexpected message shape ({exc!r})", msg)
            return
        if items and not conn.subscribed:
            conn.subscribed = True
            self._update_state()
        for item in items:
            if isinstance(item, BookUpdate):
                self._on_book(item)
            else:
                self._emit(item)

    def _emit(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        if self.on_events is None:
            self.queue.put_nowait(rows)
            return
        try:
            self.on_events(rows)
        except Exception:
            self.sink_errors += 1
            log.exception("%s: the event sink raised", self.venue)

    # -- requests --------------------------------------------------------------------------

    async def request(
        self,
        payload: dict,
        *,
        timeout: float | None = None,
        signed: bool = False,
        conn: _Connection | None = None,
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

    async def _send(self, conn: _Connection, text: str) -> None:
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

    # -- state -----------------------------------------------------------------------------

    def _now_ns(self) -> int:
        """The wall clock in ns, never going backwards (ts_local must be monotone)."""
        t = self._clock_ns()
        if t < self._last_ts:
            t = self._last_ts
        self._last_ts = t
        return t

    def _set_state(self, state: State) -> None:
        if state != self._state:
            log.info("%s: %s -> %s", self.venue, self._state, state)
            self._state = state

    def _update_state(self) -> None:
        """SUBSCRIBED / RESYNCING / CONNECTED from the active connection and the books."""
        conn = self._active
        if conn is None or self._closing:
            return
        if not conn.subscribed:
            self._set_state(State.CONNECTED)
        elif any(s.state == SyncState.WAIT for s in self._books.values()):
            self._set_state(State.RESYNCING)
        else:
            self._set_state(State.SUBSCRIBED)
