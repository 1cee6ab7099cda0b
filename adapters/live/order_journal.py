"""The durable order journal: an append-only file, synced before any order is sent.

The live loop's rule: journal the intents of one step with `append_batch` (it returns only
after `os.fsync`), then send them. After a crash, every request that may have reached the
venue is in the journal; `replay` reads it back and `order_state.rebuild` turns it into the
orders to reconcile with the venue.

File format (little-endian)::

    b"cockpit-order-journal 1\\n"                      magic, 24 bytes
    frame*:  u32 length | u32 crc32(length bytes + payload) | payload (length bytes)

A frame's payload is one `append_batch` call: a compact JSON array of records (see
`order_records`). One frame per batch makes a batch atomic: after a crash it is in the
journal whole or not at all, so a new order and the cancel it replaces are never split.
The CRC covers the length too, so a damaged length is caught like damaged data.

Recovery. A crash can leave the last frame torn: cut anywhere, or (with delayed
allocation) the file extended with zeros. The last frame was never acknowledged to the
caller, so nothing in it was sent, and discarding it is safe. A bad frame is taken for the
torn tail only when no valid frame follows it anywhere in the file; otherwise the damage is
in the middle of acknowledged data and replay raises a `DataError` naming the byte offset
(and opening for append refuses, so nothing is overwritten). A bad last frame that was
complete (a flipped bit on disk) cannot be told from a torn one and is discarded the same
way. `OrderJournal.open` truncates the torn tail before appending, so new frames follow the
last good one.

Preallocation. The file is grown ahead of the frames in steps of `PREALLOCATE` bytes
(`posix_fallocate`), so an append neither allocates blocks nor changes the file's size, and
its sync is an `fdatasync` that flushes the data alone, not a filesystem journal commit
shared with every other writer on the disk (measured on this project's machine: 110 us ->
75 us a sync when idle, and no multi-millisecond stalls when other processes write). The
room after the last frame reads as zeros, which `replay` recognises as free space, not a
torn frame: `valid_bytes` is where the next frame goes, the file itself is larger.

One writer: the file is locked (`flock`) while open for append. Writes go straight to the
descriptor (no user-space buffer). If a write fails (disk full), the partial frame is cut
off again and the error raised; if that or `fsync` fails, the journal refuses further
appends (after a failed fsync the kernel may have dropped the dirty pages: the file's
content is unknown, and trading on must stop).
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from adapters.live.order_records import Record, from_json_obj, to_json_obj
from engine.errors import CockpitError, DataError, FormatError, UsageError

MAGIC: Final = b"cockpit-order-journal 1\n"
HEADER: Final = struct.Struct("<II")
MAX_FRAME_BYTES: Final = 16 * 1024 * 1024
"""Largest payload accepted; a bigger length field is damage (a batch is kilobytes)."""
PREALLOCATE: Final = 4 * 1024 * 1024
"""Bytes the file is grown by ahead of the frames (some ten thousand intents)."""
_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def encode_frame(records: Iterable[Record]) -> bytes:
    """One frame holding `records`: header (length, CRC32) and the JSON payload."""
    payload = orjson.dumps([to_json_obj(r) for r in records])
    if len(payload) > MAX_FRAME_BYTES:
        raise UsageError(f"journal batch of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    length = struct.pack("<I", len(payload))
    return length + struct.pack("<I", zlib.crc32(payload, zlib.crc32(length))) + payload


@dataclass(frozen=True)
class Replay:
    """What `replay` found in a journal file."""

    records: list[Record]
    """All records of all complete frames, in file order."""
    frames: int
    """Complete frames read (one per `append_batch`)."""
    valid_bytes: int
    """Length of the good prefix: magic and complete frames."""
    discarded_bytes: int
    """Bytes after it: a torn last frame (0 when the file ended cleanly)."""
    discard_reason: str | None = None
    """Why the tail was discarded, None when nothing was."""


def _frame_at(data: bytes | memoryview, offset: int) -> tuple[int, str | None]:
    """(end of the frame at `offset`, None) if it is intact, else (-1, what is wrong)."""
    end = len(data)
    if end - offset < HEADER.size:
        return -1, f"{end - offset} bytes, less than a frame header"
    length, crc = HEADER.unpack_from(data, offset)
    if length == 0 or length > MAX_FRAME_BYTES:
        return -1, f"frame length {length} is impossible"
    stop = offset + HEADER.size + length
    if stop > end:
        return -1, f"frame of {length} bytes cut short at {end - offset - HEADER.size}"
    body = data[offset + HEADER.size : stop]
    if zlib.crc32(body, zlib.crc32(data[offset : offset + 4])) != crc:
        return -1, "CRC mismatch"
    return stop, None


def _next_valid_frame(data: bytes | memoryview, start: int) -> int:
    """Offset of the first intact frame at or after `start`, or -1."""
    for offset in range(start, len(data) - HEADER.size + 1):
        if _frame_at(data, offset)[1] is None:
            return offset
    return -1


def replay(path: Path | str) -> Replay:
    """Read every complete record of a journal; a torn last frame is reported, not raised.

    Raises:
        FormatError: the file is not an order journal (wrong magic).
        DataError: a damaged frame followed by intact ones (names the byte offset), or an
            intact frame whose records do not decode (names the offset and the field).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"order journal {path} does not exist") from None
    if len(data) < len(MAGIC):
        if MAGIC.startswith(data):  # crashed while writing the header of a new journal
            reason = "torn header" if data else None
            return Replay([], 0, 0, len(data), reason)
        raise FormatError("not an order journal (bad magic)", path=str(path))
    if not data.startswith(MAGIC):
        raise FormatError("not an order journal (bad magic)", path=str(path))
    view = memoryview(data)
    records: list[Record] = []
    frames = 0
    offset = len(MAGIC)
    # Preallocated room: zeros after the last frame (a frame never starts with a zero
    # length, so a torn frame is still seen: its own bytes are not all zero).
    end = len(data.rstrip(b"\0"))
    while offset < end:
        stop, problem = _frame_at(view, offset)
        if problem is not None:
            later = _next_valid_frame(view[:end], offset + 1)
            if later >= 0:
                raise DataError(
                    f"byte offset {offset}: damaged frame ({problem}) followed by intact "
                    f"frames (the next at byte offset {later}); the journal is corrupt, not "
                    "torn: keep the file and reconcile with the venue",
                    path=str(path),
                )
            return Replay(records, frames, offset, len(data) - offset, problem)
        try:
            batch = orjson.loads(view[offset + HEADER.size : stop])
            if not isinstance(batch, list) or not batch:
                raise DataError("a frame must hold a non-empty JSON array")
            records.extend(from_json_obj(obj) for obj in batch)
        except (orjson.JSONDecodeError, DataError) as exc:
            reason = exc.reason if isinstance(exc, DataError) else str(exc)
            where = f" field {exc.field!r}" if isinstance(exc, DataError) and exc.field else ""
            raise DataError(f"byte offset {offset}:{where} {reason}", path=str(path)) from None
        frames += 1
        offset = stop
    return Replay(records, frames, offset, 0, None)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OrderJournal:
    """An order journal open for appending (use `OrderJournal.open`).

    Not thread-safe: one thread (the live loop) appends.
    """

    def __init__(self, path: Path, fd: int, recovered: Replay) -> None:
        self.path = path
        self.recovered = recovered
        """What was in the file when it was opened (after the torn tail was cut off)."""
        self._fd: int | None = fd
        self._size = recovered.valid_bytes
        self._allocated = os.fstat(fd).st_size
        self._broken: str | None = None

    @classmethod
    def open(cls, path: Path | str) -> OrderJournal:
        """Open (or create) a journal for appending, after replaying and repairing it.

        A new file gets its header and is synced with its directory entry. A torn tail is
        truncated and the truncation synced. The file stays locked until `close`.

        Raises:
            UsageError: another process has it open.
            FormatError, DataError: as `replay`; nothing is written to a damaged journal.
        """
        path = Path(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UsageError(
                    f"order journal {path} is open in another process (locked)"
                ) from None
            recovered = replay(path)
            if recovered.valid_bytes < len(MAGIC):  # new, or a torn header
                os.ftruncate(fd, 0)
                os.pwrite(fd, MAGIC, 0)
                os.fsync(fd)
                _fsync_dir(path.resolve().parent)
                recovered = Replay(
                    [], 0, len(MAGIC), recovered.discarded_bytes, recovered.discard_reason
                )
            elif recovered.discarded_bytes:
                # Zeroed, not cut: the room stays allocated and reads as free space.
                os.pwrite(fd, bytes(recovered.discarded_bytes), recovered.valid_bytes)
                os.fsync(fd)
            os.lseek(fd, recovered.valid_bytes, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, recovered)

    def append_batch(self, records: Iterable[Record], *, sync: bool = True) -> int:
        """Append one frame holding `records`; with `sync`, return only after `os.fsync`.

        Intents must be appended with `sync=True` and sent only after this returns. Replies
        and events may use `sync=False` (they are on disk at the next synced batch; losing
        them in a crash only means asking the venue).

        Returns:
            The byte offset of the new frame.

        Raises:
            CockpitError: the journal is closed or broken, or the write or sync failed.
        """
        fd = self._writable()
        batch = list(records)
        if not batch:
            raise UsageError("append_batch: no records")
        frame = encode_frame(batch)
        offset = self._size
        if offset + len(frame) > self._allocated:
            self._grow(fd, offset + len(frame))
        try:
            view = memoryview(frame)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except OSError as exc:
            self._undo(fd, offset, exc)
            raise CockpitError(
                f"order journal {self.path}: write failed ({exc.strerror}); "
                "the batch was not journaled, do not send it"
            ) from None
        if sync:
            try:
                _datasync(fd)
            except OSError as exc:
                self._broken = f"fsync failed ({exc.strerror})"
                raise CockpitError(
                    f"order journal {self.path}: {self._broken}; stop trading, the journal's "
                    "content on disk is unknown"
                ) from None
        self._size = offset + len(frame)
        return offset

    def append(self, record: Record, *, sync: bool = True) -> int:
        """`append_batch` of one record."""
        return self.append_batch([record], sync=sync)

    def sync(self) -> None:
        """Sync what was appended with `sync=False`."""
        fd = self._writable()
        try:
            _datasync(fd)
        except OSError as exc:
            self._broken = f"fsync failed ({exc.strerror})"
            raise CockpitError(f"order journal {self.path}: {self._broken}") from None

    @property
    def size(self) -> int:
        """Bytes in the journal file (the offset of the next frame)."""
        return self._size

    def close(self) -> None:
        """Release the lock and close the file (idempotent). Does not sync."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OrderJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _writable(self) -> int:
        if self._fd is None:
            raise UsageError(f"order journal {self.path} is closed")
        if self._broken is not None:
            raise CockpitError(f"order journal {self.path} is unusable: {self._broken}")
        return self._fd

    def _grow(self, fd: int, need: int) -> None:
        """Allocate room for `need` bytes and more, synced with its size (a metadata change,
        once every PREALLOCATE bytes). A filesystem without fallocate just appends."""
        size = max(need, self._allocated) + PREALLOCATE
        try:
            os.posix_fallocate(fd, self._allocated, size - self._allocated)
            os.fsync(fd)
        except OSError:
            return  # no room to reserve (or not supported): the write itself will tell
        self._allocated = size

    def _undo(self, fd: int, offset: int, exc: OSError) -> None:
        """Zero a partly written frame, so the next one follows the last good frame."""
        try:
            end = os.lseek(fd, 0, os.SEEK_CUR)
            keep = max(offset, min(end, self._allocated))  # allocated room: zeroed
            if keep > offset:
                os.pwrite(fd, bytes(keep - offset), offset)
            if end > keep:
                os.ftruncate(fd, keep)
            os.lseek(fd, offset, os.SEEK_SET)
        except OSError as undo_exc:
            self._broken = (
                f"write failed ({exc.strerror}) and the partial frame could not be removed "
                f"({undo_exc.strerror})"
            )
