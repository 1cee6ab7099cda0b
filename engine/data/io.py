"""Open and save event streams in the engine's own formats, chosen by content or suffix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from engine.data.native import is_native, open_native, write_native
from engine.data.sniff import is_parquet_file
from engine.data.stream import EventStream
from engine.data.tables import (
    is_event_csv,
    is_event_parquet,
    read_csv,
    read_parquet,
    write_csv,
    write_parquet,
)
from engine.errors import FormatError, UsageError

Format = Literal["native", "parquet", "csv"]
SUFFIXES: dict[str, Format] = {".evt": "native", ".parquet": "parquet", ".csv": "csv"}


def engine_format(path: str | os.PathLike) -> Format | None:
    """Which engine format a file is in, by content ('native', 'parquet', 'csv' or None)."""
    if is_native(path):
        return "native"
    if is_parquet_file(path) and is_event_parquet(path):
        return "parquet"
    if is_event_csv(path):
        return "csv"
    return None


def open_events(path: str | os.PathLike, *, repair: str | None = None) -> EventStream:
    """Open a file in one of the engine's formats (native files are memory-mapped).

    `repair='sort'` sorts Parquet and CSV rows whose time goes backwards (reported in
    `meta['repairs']`); native files are mapped as they are, never read at opening.
    """
    if not Path(path).exists():
        raise UsageError(f"{path}: no such file")
    fmt = engine_format(path)
    if fmt == "native":
        return open_native(path)
    if fmt == "parquet":
        return read_parquet(path, repair=repair)
    if fmt == "csv":
        return read_csv(path, repair=repair)
    raise FormatError("not a cockpit event file (native, Parquet or CSV)", path=str(path))


def format_for_output(path: str | os.PathLike, fmt: str | None = None) -> Format:
    """The output format: explicit, else from the suffix (.evt, .parquet, .csv)."""
    if fmt is not None:
        if fmt not in ("native", "parquet", "csv"):
            raise UsageError(f"unknown output format {fmt!r} (native, parquet, csv)")
        return fmt  # type: ignore[return-value]
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(
            f"{path}: cannot tell the output format from the suffix {suffix!r}; "
            "use .evt (native), .parquet or .csv, or --format"
        )
    return SUFFIXES[suffix]


def save_events(stream: EventStream, path: str | os.PathLike, fmt: str | None = None) -> Format:
    """Write a stream; returns the format used."""
    out = format_for_output(path, fmt)
    if out == "native":
        write_native(stream, path)
    elif out == "parquet":
        write_parquet(stream, path)
    else:
        write_csv(stream, path)
    return out
