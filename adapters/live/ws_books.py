"""WsVenue's order books: registration, sequencing, snapshots, gaps and rebuilds.

`BookSequencing` is a mixin of `ws_venue.WsVenue` (it is not used alone; `_books`,
`_iids`, `_insts` and `_resync_tasks` are created by WsVenue). Each book has a
`book_sync.BookSequencer` with the venue's continuity rule (`book_rule`): updates are
buffered until a snapshot, stale and repeated ones dropped; a gap clears the book (a
KIND_BOOK_CLEAR with FLAG_RESYNC) and schedules `resync_book`, retried with backoff until
it succeeds. A lost connection drops every book the same way (`_drop_books`).

Hooks for a venue with books: `book_rule(key)`, and either `fetch_snapshot(key)` (REST
snapshot venues, `snapshot_from_rest = True`) or an override of `resync_book(key)` (venues
that push snapshots in-stream, e.g. Bybit resubscribes). `on_gap` may be overridden too.
"""

from __future__ import annotations

import asyncio
import logging

from adapters._sequence import DIFF_APPLY, DIFF_GAP
from adapters.live.backoff import Backoff
from adapters.live.book_sync import BookSequencer, BookUpdate, Rule, SyncState
from adapters.live.http import HttpStatusError
from adapters.live.rows import clear_row
from adapters.live.ws_types import LOGGER_NAME
from engine.errors import DataError, UsageError
from engine.events import FLAG_EXCH_TS_MISSING, FLAG_RESYNC
from engine.instruments import Instrument

log = logging.getLogger(LOGGER_NAME)

_RESYNC_ERRORS = (HttpStatusError, DataError, OSError, TimeoutError, ConnectionError, KeyError)


class BookSequencing:
    """Books kept in sequence and rebuilt after gaps and reconnections (a WsVenue part)."""

    def book_rule(self, key: str) -> Rule:
        """The continuity rule of a book (see book_sync); a venue that adds books defines it."""
        raise UsageError(f"{type(self).__name__} keeps book {key!r} but defines no book_rule")

    async def fetch_snapshot(self, key: str) -> BookUpdate:
        """A book snapshot (snapshot=True, rows starting with a clear) from the venue; a
        venue with `snapshot_from_rest` defines it (others override `resync_book`)."""
        raise UsageError(
            f"{type(self).__name__} fetches snapshots of {key!r} but defines no fetch_snapshot"
        )

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

    def on_gap(self, key: str, why: str) -> None:
        """A gap dropped a book (already in WAIT, clear emitted): start the rebuild."""
        self.schedule_resync(key)

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
            self._emit_resync_clear(key, self._now_ns())
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

    def _drop_books(self) -> None:
        """After an unplanned loss: stop the rebuilds, clear every book (FLAG_RESYNC)."""
        for task in list(self._resync_tasks.values()):
            task.cancel()
        self._resync_tasks.clear()
        ts = self._now_ns()
        for key, seq in self._books.items():
            if seq.state != SyncState.WAIT:
                self._emit_resync_clear(key, ts)
            seq.reset()

    def _emit_resync_clear(self, key: str, ts: int) -> None:
        """Emit a clear of book `key` at local time `ts` (no exchange time: ours)."""
        self._emit(
            clear_row(
                self._iids[key], ts_exch=ts, ts_local=ts, flags=FLAG_RESYNC | FLAG_EXCH_TS_MISSING
            )
        )

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
