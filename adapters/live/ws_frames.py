"""WsVenue's incoming frames: read, decode, route, emit; and counting what cannot be used.

`FrameHandling` is a mixin of `ws_venue.WsVenue` (it is not used alone). Each frame is
decoded once; a reply goes to the pending requests, a frame of a rotation's new connection
is held back until the switch, anything else goes through the venue's `parse` into rows
(emitted to `on_events` or `queue`) and book updates (to ws_books' `_on_book`).

Robustness: malformed JSON, frames of an unexpected shape and unknown message types are
logged (rate-limited by `LogLimiter`) and counted, never raised; unknown fields are counted
per name and logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson
from websockets.exceptions import ConnectionClosed

from adapters.live.book_sync import BookUpdate
from adapters.live.ws_types import LOGGER_NAME, Connection, ParseError
from engine.errors import DataError

log = logging.getLogger(LOGGER_NAME)

_SHAPE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, DataError)


class LogLimiter:
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


class FrameHandling:
    """Frames in, rows out; bad frames and unknown messages counted (a WsVenue part)."""

    async def _read(self, conn: Connection) -> None:
        try:
            async for frame in conn.ws:
                self._on_frame(conn, frame)
        except ConnectionClosed as exc:
            log.info("%s: connection %d closed: %s", self.venue, conn.serial, exc)

    def _on_frame(self, conn: Connection, frame: str | bytes) -> None:
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

    def _dispatch(self, msg: Any, ts: int, conn: Connection) -> None:
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
