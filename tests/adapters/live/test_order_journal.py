"""The durable order journal: frame bytes, fsync before return, torn tails, damage, restarts."""

from __future__ import annotations

import errno
import os
import stat
import struct
import zlib
from pathlib import Path

import pytest

from adapters.live import order_journal
from adapters.live.order_journal import MAGIC, OrderJournal, encode_frame, replay
from adapters.live.order_records import Event, Intent, Marker, Reply
from engine.errors import CockpitError, DataError, FormatError, UsageError

T0 = 1_700_000_000_000_000_000


def new(n: int, side: str = "buy", price: str = "61837.63", qty: str = "0.001") -> Intent:
    return Intent(
        action="new",
        client_id=f"ck-{n}",
        instrument="BTCUSDT",
        ts_ns=T0 + n,
        side=side,  # type: ignore[arg-type]
        price=price,
        qty=qty,
        order_type="limit",
        tif="GTC",
    )


BATCHES = [
    [Marker("session_start", T0, {"prefix": "ck"})],
    [new(1), new(2, "sell", "61840.00")],
    [Reply("ck-1", "ack", T0 + 10, venue_order_id="28457")],
    [Event("ck-1", "trade", T0 + 20, "28457", "1001", "0.0004", "61837.63")],
    [Intent("cancel", "ck-3", "BTCUSDT", T0 + 30, orig_client_id="ck-2")],
]
LAST = [
    new(4),
    new(5, qty="0.25"),
    Intent("amend", "ck-6", "BTCUSDT", T0 + 40, qty="0.0005", orig_client_id="ck-1"),
]


def all_records(batches: list[list]) -> list:
    return [r for batch in batches for r in batch]


def logical(path: Path) -> bytes:
    """The journal's bytes without the preallocated room (zeros; a frame ends in "]")."""
    return path.read_bytes().rstrip(b"\0")


def write_journal(path: Path, batches: list[list]) -> list[int]:
    """Append each batch; return the byte offset of each frame."""
    with OrderJournal.open(path) as journal:
        return [journal.append_batch(batch) for batch in batches]


def test_frame_layout() -> None:
    frame = encode_frame([Marker("session_start", 7, {"prefix": "ck"})])
    payload = b'[{"k":"marker","name":"session_start","ts_ns":7,"data":{"prefix":"ck"}}]'
    length = struct.pack("<I", len(payload))
    assert frame == length + struct.pack("<I", zlib.crc32(length + payload)) + payload
    assert len(payload) == 72
    assert frame[:8].hex() == "48000000" + struct.pack("<I", zlib.crc32(length + payload)).hex()


def test_records_round_trip_with_frames_and_offsets(tmp_path) -> None:
    path = tmp_path / "orders.journal"
    offsets = write_journal(path, [*BATCHES, LAST])
    data = logical(path)
    assert path.stat().st_size >= order_journal.PREALLOCATE > len(data)  # room reserved
    assert data.startswith(MAGIC) and offsets[0] == len(MAGIC) == 24
    frames = [encode_frame(b) for b in [*BATCHES, LAST]]
    assert data == MAGIC + b"".join(frames)
    assert offsets == [24 + sum(len(f) for f in frames[:i]) for i in range(len(frames))]
    result = replay(path)
    assert result.records == all_records([*BATCHES, LAST])
    assert (result.frames, result.valid_bytes, result.discarded_bytes) == (6, len(data), 0)
    assert result.discard_reason is None


def test_new_journal_is_owner_only_and_synced_with_its_directory(tmp_path, monkeypatch) -> None:
    synced: list[bool] = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        os, "fsync", lambda fd: synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)) or real_fsync(fd)
    )
    with OrderJournal.open(tmp_path / "j") as journal:
        assert journal.size == len(MAGIC)
        assert journal.recovered.records == []
    assert synced == [False, True]  # the file, then its directory entry
    assert stat.S_IMODE((tmp_path / "j").stat().st_mode) == 0o600
    assert (tmp_path / "j").read_bytes() == MAGIC


def test_append_batch_syncs_before_returning(tmp_path, monkeypatch) -> None:
    path = tmp_path / "j"
    journal = OrderJournal.open(path)
    log: list[tuple[str, int]] = []
    real_write, real_sync, real_fsync = os.write, order_journal._datasync, os.fsync

    def write(fd: int, data) -> int:
        n = real_write(fd, data)
        log.append(("write", n))
        return n

    def datasync(fd: int) -> None:
        log.append(("datasync", len(logical(path))))
        real_sync(fd)

    def fsync(fd: int) -> None:  # growing the file changes its size: a full fsync
        log.append(("fsync", os.fstat(fd).st_size))
        real_fsync(fd)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(order_journal, "_datasync", datasync)
    monkeypatch.setattr(os, "fsync", fsync)
    frame_len = len(encode_frame(BATCHES[1]))
    journal.append_batch(BATCHES[1])
    log.append(("send", 0))  # what the live loop does once append_batch has returned
    room = len(MAGIC) + order_journal.PREALLOCATE + frame_len
    assert log == [
        ("fsync", room),  # the first append reserves room, synced with the file's size
        ("write", frame_len),
        ("datasync", len(MAGIC) + frame_len),
        ("send", 0),
    ]

    log.clear()
    journal.append_batch(BATCHES[2])  # within the room: the data alone is synced
    assert [kind for kind, _ in log] == ["write", "datasync"]

    log.clear()
    log.clear()
    journal.append(BATCHES[2][0], sync=False)  # a reply: flushed, synced later
    assert [kind for kind, _ in log] == ["write"]
    journal.sync()
    assert [kind for kind, _ in log] == ["write", "datasync"]
    journal.close()


def test_torn_last_frame_at_every_cut(tmp_path) -> None:
    path = tmp_path / "j"
    offsets = write_journal(path, [*BATCHES, LAST])
    full = logical(path)
    last = offsets[-1]
    assert len(full) - last > 200  # the loop below covers a real frame
    before = all_records(BATCHES)
    for cut in range(last + 1, len(full)):
        path.write_bytes(full[:cut])
        result = replay(path)
        assert result.records == before, cut
        assert (result.frames, result.valid_bytes, result.discarded_bytes) == (5, last, cut - last)
        assert result.discard_reason is not None
    # Cut exactly at the frame boundary: a clean end, nothing discarded.
    path.write_bytes(full[:last])
    assert replay(path).discarded_bytes == 0


def test_reopening_clears_the_torn_tail_then_appends(tmp_path) -> None:
    path = tmp_path / "j"
    offsets = write_journal(path, [*BATCHES, LAST])
    full = logical(path)
    for cut in (offsets[-1] + 1, offsets[-1] + 8, offsets[-1] + 9, len(full) - 1):
        path.write_bytes(full[:cut])
        with OrderJournal.open(path) as journal:
            assert journal.recovered.records == all_records(BATCHES)
            assert journal.recovered.discarded_bytes == cut - offsets[-1]
            assert logical(path) == full[: offsets[-1]]  # the torn bytes are zeroed
            journal.append_batch([new(7)])
        result = replay(path)
        assert result.records == [*all_records(BATCHES), new(7)]
        assert result.discarded_bytes == 0


def test_zero_filled_tail_is_free_room(tmp_path) -> None:
    """Zeros after the last frame are the preallocated room (or delayed allocation's
    extension after a crash): nothing torn, the next frame goes where they start."""
    path = tmp_path / "j"
    write_journal(path, BATCHES)
    size = len(logical(path))
    path.write_bytes(logical(path) + b"\0" * 4096)
    result = replay(path)
    assert result.records == all_records(BATCHES)
    assert (result.valid_bytes, result.discarded_bytes, result.discard_reason) == (size, 0, None)
    with OrderJournal.open(path) as journal:
        assert journal.size == size
        journal.append_batch(LAST)
    assert replay(path).records == all_records([*BATCHES, LAST])


def test_torn_frame_in_the_preallocated_room_is_discarded(tmp_path) -> None:
    path = tmp_path / "j"
    offsets = write_journal(path, [*BATCHES, LAST])
    data = bytearray(path.read_bytes())
    torn_end = offsets[-1] + 30
    data[torn_end : len(logical(path))] = bytes(len(logical(path)) - torn_end)  # cut short
    path.write_bytes(data)
    result = replay(path)
    assert result.records == all_records(BATCHES)
    assert result.valid_bytes == offsets[-1]
    assert result.discard_reason == "CRC mismatch"  # the frame's length, then zeros
    with OrderJournal.open(path) as journal:
        journal.append_batch([new(9)])
    assert replay(path).records == [*all_records(BATCHES), new(9)]


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_flipped_byte_in_the_middle_is_reported_with_its_frame_offset(tmp_path, mask) -> None:
    path = tmp_path / "j"
    offsets = write_journal(path, [*BATCHES, LAST])
    full = logical(path)
    start, end = offsets[1], offsets[2]  # the frame holding ck-1 and ck-2
    for position in range(start, end):
        damaged = bytearray(full)
        damaged[position] ^= mask
        path.write_bytes(damaged)
        with pytest.raises(DataError, match=f"byte offset {start}: damaged frame") as err:
            replay(path)
        assert f"the next at byte offset {end}" in str(err.value), position
        with pytest.raises(DataError):
            OrderJournal.open(path)
        assert path.read_bytes() == damaged  # a damaged journal is never written to


def test_flipped_byte_in_the_last_frame_cannot_be_told_from_a_torn_one(tmp_path) -> None:
    path = tmp_path / "j"
    offsets = write_journal(path, [*BATCHES, LAST])
    damaged = bytearray(logical(path))
    damaged[offsets[-1] + 20] ^= 0x01
    path.write_bytes(damaged)
    result = replay(path)
    assert result.records == all_records(BATCHES)
    assert result.discard_reason == "CRC mismatch"


def test_intact_frame_with_bad_records_is_an_error_naming_offset_and_field(tmp_path) -> None:
    path = tmp_path / "j"
    write_journal(path, BATCHES[:1])
    offset = len(logical(path))

    def frame(payload: bytes) -> bytes:
        length = struct.pack("<I", len(payload))
        return length + struct.pack("<I", zlib.crc32(length + payload)) + payload

    good = logical(path)
    cases = {
        b"[1]": f"byte offset {offset}: a record must be a JSON object, not int",
        b"[]": f"byte offset {offset}: a frame must hold a non-empty JSON array",
        b"[{": f"byte offset {offset}: unexpected end of data",
        b'[{"k":"intent","action":"new","client_id":"ck-1","instrument":"X","ts_ns":1,'
        b'"side":"buy","qty":0.5,"order_type":"market"}]': (
            f"byte offset {offset}: field 'intent.qty' 0.5 is not a decimal string"
        ),
    }
    for payload, message in cases.items():
        path.write_bytes(good + frame(payload))
        with pytest.raises(DataError) as err:
            replay(path)
        assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


def test_not_a_journal(tmp_path) -> None:
    path = tmp_path / "j"
    path.write_bytes(b"something else entirely\n")
    with pytest.raises(FormatError, match="not an order journal"):
        replay(path)
    with pytest.raises(FormatError):
        OrderJournal.open(path)
    assert path.read_bytes() == b"something else entirely\n"
    with pytest.raises(UsageError, match="does not exist"):
        replay(tmp_path / "missing")


def test_torn_header_is_rewritten(tmp_path) -> None:
    path = tmp_path / "j"
    path.write_bytes(MAGIC[:10])
    result = replay(path)
    assert (result.records, result.valid_bytes, result.discarded_bytes) == ([], 0, 10)
    with OrderJournal.open(path) as journal:
        journal.append_batch(BATCHES[0])
    assert replay(path).records == BATCHES[0]


def test_one_writer_at_a_time(tmp_path) -> None:
    path = tmp_path / "j"
    with OrderJournal.open(path):
        with pytest.raises(UsageError, match="open in another process"):
            OrderJournal.open(path)
    with OrderJournal.open(path) as journal:  # released on close
        journal.append_batch(BATCHES[0])


def test_failed_write_is_cut_off_and_the_journal_stays_usable(tmp_path, monkeypatch) -> None:
    path = tmp_path / "j"
    journal = OrderJournal.open(path)
    journal.append_batch(BATCHES[0])
    size = len(logical(path))
    real_write = os.write
    calls = []

    def disk_full(fd: int, data) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:10]))  # a partial write ...
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # ... then a full disk

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(CockpitError, match="write failed .* do not send it"):
        journal.append_batch(BATCHES[1])
    assert len(logical(path)) == size == journal.size  # the partial frame is zeroed
    monkeypatch.setattr(os, "write", real_write)
    journal.append_batch(BATCHES[2])
    journal.close()
    assert replay(path).records == [*BATCHES[0], *BATCHES[2]]


def test_failed_fsync_makes_the_journal_unusable(tmp_path, monkeypatch) -> None:
    journal = OrderJournal.open(tmp_path / "j")

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    journal.append_batch(BATCHES[0], sync=False)  # the room is reserved (with os.fsync)
    monkeypatch.setattr(order_journal, "_datasync", eio)
    with pytest.raises(CockpitError, match="fsync failed .*stop trading"):
        journal.append_batch(BATCHES[0])
    monkeypatch.undo()
    with pytest.raises(CockpitError, match="unusable: fsync failed"):
        journal.append_batch(BATCHES[1])
    journal.close()
    with pytest.raises(UsageError, match="is closed"):
        journal.append_batch(BATCHES[1])


def test_empty_batch_is_refused(tmp_path) -> None:
    with OrderJournal.open(tmp_path / "j") as journal:
        with pytest.raises(UsageError, match="no records"):
            journal.append_batch([])
        assert journal.size == len(MAGIC)
