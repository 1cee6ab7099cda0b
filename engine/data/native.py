"""The native event file: a small self-describing header, then the raw event array.

Layout (all little-endian)::

    0   8 bytes   magic b"CKPTEVT1"
    8   uint32    header length H (bytes of JSON that follow)
    12  H bytes   UTF-8 JSON: {"version", "dtype", "count", "data_offset", "instruments", "meta"}
    ..  zero padding up to data_offset (a multiple of 64, so the array is cache-line aligned)
    data_offset   count * 40 bytes of EVENT_DTYPE rows

Opening maps the array with `np.memmap`: nothing of the data is read until it is touched, so
opening a 10M-event file costs the header parse only.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from engine.data.stream import EventStream
from engine.errors import FormatError
from engine.events import EVENT_DTYPE
from engine.instruments import InstrumentRegistry

MAGIC = b"CKPTEVT1"
VERSION = 1
_ALIGN = 64
_MAX_HEADER = 64 * 1024 * 1024


def _dtype_descr() -> list[list[str]]:
    return [[name, EVENT_DTYPE.fields[name][0].str] for name in EVENT_DTYPE.names]


def is_native(path: str | os.PathLike) -> bool:
    """True when the file starts with the native magic."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def write_native(stream: EventStream, path: str | os.PathLike) -> int:
    """Write a stream as a native file; returns the number of bytes written."""
    events = np.ascontiguousarray(stream.events, dtype=EVENT_DTYPE)
    header = {
        "version": VERSION,
        "dtype": _dtype_descr(),
        "count": int(len(events)),
        "instruments": stream.instruments.to_list(),
        "meta": stream.meta,
    }
    # data_offset depends on the header's own length; fix it with one extra pass.
    header["data_offset"] = 0
    for _ in range(2):
        blob = json.dumps(header, sort_keys=True, default=str).encode()
        offset = -(-(len(MAGIC) + 4 + len(blob)) // _ALIGN) * _ALIGN
        header["data_offset"] = offset
    blob = json.dumps(header, sort_keys=True, default=str).encode()
    assert len(MAGIC) + 4 + len(blob) <= header["data_offset"]
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<I", len(blob)))
        f.write(blob)
        f.write(b"\0" * (header["data_offset"] - f.tell()))
        f.write(memoryview(events).cast("B"))
    os.replace(tmp, path)
    return header["data_offset"] + events.nbytes


def read_native_header(path: str | os.PathLike) -> dict:
    """Parse and check the header without touching the event data."""
    p = str(path)
    try:
        size = os.path.getsize(p)
        with open(p, "rb") as f:
            head = f.read(len(MAGIC) + 4)
            if len(head) < len(MAGIC) + 4 or head[: len(MAGIC)] != MAGIC:
                raise FormatError("not a native cockpit event file (bad magic)", path=p)
            (hlen,) = struct.unpack("<I", head[len(MAGIC) :])
            if hlen > _MAX_HEADER or len(MAGIC) + 4 + hlen > size:
                raise FormatError("truncated or corrupt header", path=p)
            header = json.loads(f.read(hlen))
    except OSError as exc:
        raise FormatError(f"cannot read: {exc.strerror}", path=p) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"corrupt header: {exc}", path=p) from None
    for key in ("version", "dtype", "count", "data_offset", "instruments"):
        if key not in header:
            raise FormatError(f"header lacks {key!r}", path=p, field=key)
    if header["version"] != VERSION:
        raise FormatError(
            f"unsupported version {header['version']} (this build reads {VERSION})", path=p
        )
    if header["dtype"] != _dtype_descr():
        raise FormatError(f"event layout {header['dtype']} differs from this build's", path=p)
    expected = header["data_offset"] + header["count"] * EVENT_DTYPE.itemsize
    if size < expected:
        have = max(0, (size - header["data_offset"]) // EVENT_DTYPE.itemsize)
        raise FormatError(
            f"truncated: header says {header['count']} events, file holds {have}", path=p
        )
    if size > expected:
        raise FormatError(f"{size - expected} unexpected bytes after the last event", path=p)
    return header


def open_native(path: str | os.PathLike) -> EventStream:
    """Memory-map a native file (read-only, zero copy)."""
    header = read_native_header(path)
    count = header["count"]
    if count:
        events = np.memmap(
            path, dtype=EVENT_DTYPE, mode="r", offset=header["data_offset"], shape=(count,)
        )
    else:
        events = np.zeros(0, dtype=EVENT_DTYPE)
    meta = dict(header.get("meta") or {})
    meta.setdefault("source", [str(path)])
    return EventStream(events, InstrumentRegistry.from_list(header["instruments"]), meta)
