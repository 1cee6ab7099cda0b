"""Native event files: byte-exact round trips, zero-copy opening and every way a file breaks."""

from __future__ import annotations

import json
import struct
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from engine.data.io import engine_format, open_events
from engine.data.native import (
    MAGIC,
    VERSION,
    is_native,
    open_native,
    read_native_header,
    write_native,
)
from engine.data.stream import EventStream
from engine.errors import FormatError
from engine.events import (
    EVENT_DTYPE,
    FLAG_LAST,
    KIND_BOOK_DELTA,
    KIND_QUOTE,
    KIND_TRADE,
    SIDE_BUY,
    SIDE_SELL,
)
from engine.instruments import Instrument, InstrumentRegistry
from engine.synthetic import SyntheticConfig, generate

HEAD = len(MAGIC) + 4  # magic, then the uint32 header length


def two_instruments() -> InstrumentRegistry:
    return InstrumentRegistry(
        [
            Instrument("BTCUSDT", "binance", Decimal("0.01"), Decimal("0.00001")),
            Instrument("BTC-PERPETUAL", "deribit", Decimal("0.5"), Decimal("10"), kind="perpetual"),
        ]
    )


def sample_events(n: int) -> np.ndarray:
    """n events with every field set to a distinct, checkable value (extreme ones too)."""
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    idx = np.arange(n, dtype=np.int64)
    ev["ts_local"] = 1_700_000_000_000_000_000 + idx * 1_000
    ev["ts_exch"] = ev["ts_local"] - 250_000 - (idx % 7)
    ev["price"] = 6_000_000 + (idx % 101) - 50
    ev["size"] = idx * 3 + 1
    ev["instrument"] = idx % 2
    ev["kind"] = np.array([KIND_BOOK_DELTA, KIND_TRADE, KIND_QUOTE], np.uint8)[idx % 3]
    ev["side"] = np.where(idx % 2 == 0, SIDE_BUY, SIDE_SELL)
    ev["flags"] = np.where(idx % 4 == 3, FLAG_LAST, 0)
    if n:
        ev["price"][0] = np.iinfo(np.int64).min + 1  # the widest values survive unchanged
        ev["size"][-1] = np.iinfo(np.int64).max
    return ev


def sample_stream(n: int = 1_000) -> EventStream:
    meta = {"source": ["somewhere.csv"], "note": "ünïcode ✓", "counts": {"a": 1, "b": [2, 3]}}
    return EventStream(sample_events(n), two_instruments(), meta)


def header_span(path: Path) -> tuple[int, int]:
    """(start, end) byte offsets of the JSON header inside the file."""
    (hlen,) = struct.unpack("<I", path.read_bytes()[len(MAGIC) : HEAD])
    return HEAD, HEAD + hlen


def patch_header(path: Path, old: bytes, new: bytes) -> None:
    """Replace bytes inside the JSON header, keeping its length (and so the layout)."""
    assert len(old) == len(new)
    data = bytearray(path.read_bytes())
    start, end = header_span(path)
    at = data.index(old, start, end)
    data[at : at + len(old)] = new
    path.write_bytes(bytes(data))


# --- round trips -----------------------------------------------------------------------------


def test_round_trip_is_byte_identical(tmp_path: Path) -> None:
    stream = sample_stream()
    path = tmp_path / "a.evt"
    written = write_native(stream, path)
    assert written == path.stat().st_size
    assert not Path(str(path) + ".tmp").exists()  # written to a temp file, then renamed

    back = open_native(path)
    assert back.events.tobytes() == stream.events.tobytes()
    assert back.instruments.to_list() == stream.instruments.to_list()
    assert back.instruments[1].tick_size == Decimal("0.5")
    assert back.instruments[1].kind == "perpetual"
    assert back.meta == stream.meta

    # Writing what was read gives the same file, byte for byte.
    again = tmp_path / "b.evt"
    write_native(back, again)
    assert again.read_bytes() == path.read_bytes()


def test_file_layout(tmp_path: Path) -> None:
    stream = sample_stream(10)
    path = tmp_path / "a.evt"
    write_native(stream, path)
    data = path.read_bytes()
    assert data[:8] == b"CKPTEVT1"
    start, end = header_span(path)
    header = json.loads(data[start:end])
    assert header["version"] == VERSION == 1
    assert header["count"] == 10
    assert header["data_offset"] % 64 == 0
    assert header["dtype"] == [
        [name, EVENT_DTYPE.fields[name][0].str] for name in EVENT_DTYPE.names
    ]
    assert set(data[end : header["data_offset"]]) <= {0}  # zero padding
    assert len(data) == header["data_offset"] + 10 * 40
    assert data[header["data_offset"] :] == stream.events.tobytes()
    assert read_native_header(path) == header


def test_synthetic_market_round_trip(tmp_path: Path) -> None:
    stream = generate(SyntheticConfig(n_events=5_000, seed=11, n_instruments=2))
    path = tmp_path / "syn.evt"
    write_native(stream, path)
    back = open_events(path)
    assert back.events.tobytes() == stream.events.tobytes()
    assert back.instruments.to_list() == stream.instruments.to_list()
    assert back.meta == stream.meta  # "source": "synthetic" kept as the generator wrote it


def test_source_is_added_when_the_stream_has_none(tmp_path: Path) -> None:
    path = tmp_path / "a.evt"
    write_native(EventStream(sample_events(3), two_instruments(), {"x": 1}), path)
    assert open_native(path).meta == {"x": 1, "source": [str(path)]}


def test_empty_stream_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "empty.evt"
    stream = EventStream(np.zeros(0, dtype=EVENT_DTYPE), two_instruments(), {"source": []})
    write_native(stream, path)
    header = read_native_header(path)
    assert header["count"] == 0
    assert path.stat().st_size == header["data_offset"]
    back = open_native(path)
    assert len(back) == 0
    assert back.events.dtype == EVENT_DTYPE
    assert back.instruments.to_list() == stream.instruments.to_list()
    assert back.meta == {"source": []}


# --- opening maps, it does not read ---------------------------------------------------------


def test_opening_a_million_events_maps_the_file(tmp_path: Path) -> None:
    n = 1_000_000
    path = tmp_path / "big.evt"
    events = sample_events(n)
    write_native(EventStream(events, two_instruments(), {}), path)

    stream = open_native(path)
    mapped = stream.events
    assert isinstance(mapped, np.memmap)
    assert mapped.shape == (n,) and mapped.dtype == EVENT_DTYPE
    assert not mapped.flags.writeable  # read-only mapping
    offset = read_native_header(path)["data_offset"]
    assert mapped.offset == offset and offset % 64 == 0
    assert mapped.ctypes.data % 64 == 0  # the array itself starts on a cache line
    assert mapped[123_456].tobytes() == events[123_456].tobytes()
    assert int(mapped["size"].sum(dtype=np.int64)) == int(events["size"].sum(dtype=np.int64))


def test_the_mapping_is_a_view_of_the_file_not_a_copy(tmp_path: Path) -> None:
    path = tmp_path / "a.evt"
    write_native(EventStream(sample_events(1_000), two_instruments(), {}), path)
    mapped = open_native(path).events
    offset = read_native_header(path)["data_offset"]
    # Change event 500's size on disk after opening: the open array sees the new value,
    # which it could not if opening had read the data into memory.
    size_at = offset + 500 * EVENT_DTYPE.itemsize + EVENT_DTYPE.fields["size"][1]
    with open(path, "r+b") as f:
        f.seek(size_at)
        f.write(struct.pack("<q", 987_654_321))
    assert int(mapped["size"][500]) == 987_654_321


def test_native_is_detected_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "no_suffix"
    write_native(sample_stream(5), path)
    assert is_native(path)
    assert engine_format(path) == "native"
    assert open_events(path).events.tobytes() == sample_events(5).tobytes()
    other = tmp_path / "other.evt"
    other.write_bytes(b"hello")
    assert not is_native(other)
    assert not is_native(tmp_path / "missing.evt")


# --- broken files ------------------------------------------------------------------------------


@pytest.fixture()
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.evt"
    write_native(sample_stream(100), path)
    return path


def raises_format_error(path: Path, *words: str) -> FormatError:
    with pytest.raises(FormatError) as err:
        open_native(path)
    exc = err.value
    assert exc.path == str(path)
    assert str(exc).startswith(f"{path}")
    for word in words:
        assert word in str(exc)
    return exc


@pytest.mark.parametrize("cut", [1, 39, 40, 41, 4_000])
def test_truncated_data_is_reported_with_the_count(good: Path, cut: int) -> None:
    data = good.read_bytes()
    good.write_bytes(data[:-cut])
    have = (len(data) - cut - read_offset(data)) // 40
    raises_format_error(good, "truncated", "header says 100 events", f"file holds {max(have, 0)}")


def read_offset(data: bytes) -> int:
    (hlen,) = struct.unpack("<I", data[len(MAGIC) : HEAD])
    return json.loads(data[HEAD : HEAD + hlen])["data_offset"]


def test_truncated_inside_the_header(good: Path) -> None:
    _, end = header_span(good)
    good.write_bytes(good.read_bytes()[: end - 10])
    raises_format_error(good, "truncated or corrupt header")


def test_truncated_before_the_header_length(good: Path) -> None:
    good.write_bytes(good.read_bytes()[:10])
    raises_format_error(good, "bad magic")


def test_bad_magic(good: Path) -> None:
    data = bytearray(good.read_bytes())
    data[:8] = b"CKPTEVT2"
    good.write_bytes(bytes(data))
    raises_format_error(good, "not a native cockpit event file", "bad magic")
    assert not is_native(good)
    # Through the format-agnostic opener it is not any cockpit format at all.
    with pytest.raises(FormatError, match="not a cockpit event file"):
        open_events(good)


def test_unsupported_version(good: Path) -> None:
    patch_header(good, b'"version": 1', b'"version": 7')
    raises_format_error(good, "unsupported version 7", "reads 1")


def test_other_event_layout(good: Path) -> None:
    # The same header with big-endian int64 timestamps: a file from another build.
    patch_header(good, b'"<i8"', b'">i8"')
    raises_format_error(good, "event layout", ">i8", "differs from this build")


def test_header_missing_a_key(good: Path) -> None:
    patch_header(good, b'"count"', b'"cuont"')
    exc = raises_format_error(good, "header lacks 'count'")
    assert exc.field == "count"


def test_corrupt_header_json(good: Path) -> None:
    start, _ = header_span(good)
    data = bytearray(good.read_bytes())
    assert data[start : start + 1] == b"{"
    data[start] = ord("[")
    good.write_bytes(bytes(data))
    raises_format_error(good, "corrupt header")


def test_trailing_garbage(good: Path) -> None:
    with open(good, "ab") as f:
        f.write(b"junk!")
    raises_format_error(good, "5 unexpected bytes after the last event")


def test_unreadable_path_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="cannot read"):
        read_native_header(tmp_path)  # a directory
