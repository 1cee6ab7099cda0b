"""The vocabulary of `WsVenue` and its parts: lifecycle states, status, timing, one socket.

Kept apart so that the parts of the base class (`ws_lifecycle`, `ws_requests`, `ws_frames`,
`ws_books`) and the venues share these names without importing the class itself. Every
name here is also importable from `adapters.live.ws_venue`.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from websockets.asyncio.client import ClientConnection

from adapters.live.rate_limit import RateLimiter

LOGGER_NAME = "adapters.live.ws_venue"
"""One logger for every part of WsVenue (its name from before the split, so a logging
configuration that names it keeps working)."""


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


class Connection:
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
