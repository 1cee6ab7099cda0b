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

The class is assembled from one part per concern, each a mixin in its own module sharing
the state this class's `__init__` creates (none is used alone):

- `ws_lifecycle.ConnectionLifecycle`: start/stop, connect, subscribe, serve, rotate,
  reconnect, heartbeat.
- `ws_requests.RequestSending`: `request`, `request_now`, `send`, `reply_of`,
  `sign_request`.
- `ws_frames.FrameHandling`: reading and routing frames, emitting rows, counting bad
  frames and unknown messages.
- `ws_books.BookSequencing`: `add_book`, sequencing, snapshots, gaps and rebuilds.
- `ws_types`: State, VenueStatus, WsConfig, Signer, ParseError, Connection (all importable
  from here too).

Threading: everything runs on one asyncio event loop; `on_events` is called on that loop
with each message's rows (never one call per row), and must not block.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from adapters.live.backoff import AttemptBudget, Backoff
from adapters.live.book_sync import BookSequencer, BookUpdate, SyncState
from adapters.live.correlation import PendingRequests
from adapters.live.rate_limit import Limit
from adapters.live.ws_books import BookSequencing
from adapters.live.ws_frames import FrameHandling, LogLimiter
from adapters.live.ws_lifecycle import ConnectionLifecycle
from adapters.live.ws_requests import RequestSending
from adapters.live.ws_types import (
    LOGGER_NAME,
    Connection,
    EventSink,
    ParseError,
    Signer,
    State,
    VenueStatus,
    WsConfig,
)
from engine.instruments import Instrument, InstrumentRegistry

log = logging.getLogger(LOGGER_NAME)

__all__ = [
    "LOGGER_NAME",
    "Connection",
    "EventSink",
    "ParseError",
    "Signer",
    "State",
    "VenueStatus",
    "WsConfig",
    "WsVenue",
    "_Connection",
]

_Connection = Connection
"""The name venues imported before the split."""


class WsVenue(ConnectionLifecycle, RequestSending, FrameHandling, BookSequencing, abc.ABC):
    """A venue reached over WebSocket. Subclass it; see the module docstring.

    Subclassing: set the class attributes below that differ from the defaults (at least
    `venue`), implement the two abstract methods `url()` and `parse(msg, ts_local)`, and
    override the hooks the venue needs:

    - connection: `prepare_connection(conn)` (e.g. measure a clock), `subscribe_requests()`,
      `on_subscribed(first)`, `app_ping()`;
    - requests (ws_requests): `reply_of(msg)`, `request_id(serial)`, `sign_request(req)`;
    - books (ws_books), for a venue that calls `add_book`: `book_rule(key)`, and either
      `fetch_snapshot(key)` with `snapshot_from_rest = True` or `resync_book(key)`;
      `on_gap(key, why)`.

    Call `note_unknown` / `note_unknown_fields` from `parse` for what the venue sends and
    we do not use, and `request_resync(key, why)` for a venue check that fails (checksum).

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
        self._conns: set[Connection] = set()
        self._active: Connection | None = None
        self._serial = 0
        self._state = State.DISCONNECTED
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._resync_tasks: dict[str, asyncio.Task[None]] = {}
        self._rotate_event = asyncio.Event()
        self._rotate_reason = ""
        self._last_frame: float | None = None
        self._last_ts = 0
        self._warn = LogLimiter()
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

    @abc.abstractmethod
    def url(self) -> str:
        """The WebSocket URL to connect to."""

    @abc.abstractmethod
    def parse(self, msg: Any, ts_local: int) -> Sequence[np.ndarray | BookUpdate]:
        """Rows to emit and book updates to sequence, from one decoded frame.

        Raise ParseError (or let KeyError/TypeError/ValueError/DataError escape) for a frame
        of an unusable shape: it is counted as a bad frame. Call `note_unknown` for a
        message type the venue sends but we do not use.
        """

    async def prepare_connection(self, conn: Connection) -> None:
        """Run on every new connection before `subscribe_requests` is asked for its list
        (e.g. measure the clock, whose offset the signed subscriptions need). Send with
        `self.request(..., conn=conn)`; raise ConnectionError to give the connection up."""

    def subscribe_requests(self) -> list[dict]:
        """Requests to send (correlated, in order) on every new connection."""
        return []

    def app_ping(self) -> str | None:
        """The application-level ping frame, sent every `app_ping_interval` seconds."""
        return None

    def on_subscribed(self, first: bool) -> None:
        """After (re)subscribing the active connection; default: rebuild books from REST."""
        if self.snapshot_from_rest:
            for key, seq in self._books.items():
                if seq.state == SyncState.WAIT:
                    self.schedule_resync(key)

    # -- state -----------------------------------------------------------------------------

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
