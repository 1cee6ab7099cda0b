"""Tell every supported file format apart by content and load any mix of them as one stream.

Files of one market in one vendor format (the same Tardis data type, exchange and symbol; the
same Binance capture symbol and market; the same depth-CSV symbol) are handed to their loader
together in the order given, so a market split over several files (one a day) reads as one
stream with its sequence checked across the boundaries. Every other file is a source of its
own, and the sources are merged by local time (engine.data.merge), ties in the order of
their first file in the list.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

from engine.data.io import engine_format, open_events
from engine.data.merge import merge_streams
from engine.data.sniff import first_line, is_parquet_file
from engine.data.stream import EventStream
from engine.errors import FormatError, UsageError
from engine.instruments import Instrument

FORMATS = (
    "native",
    "parquet",
    "csv",
    "tardis",
    "binance-ws",
    "binance-depth-csv",
    "vendor-parquet",
    "bybit-orderbook",
)


def detect_format(path: str | os.PathLike) -> str:
    """The format of one file, by content; FormatError when it is none of the known ones."""
    from adapters.binance_history import is_binance_depth_csv, is_vendor_parquet
    from adapters.binance_ws import sniff_binance_capture
    from adapters.bybit_history import sniff_bybit_orderbook
    from adapters.tardis import sniff_tardis

    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: no such file")
    if p.is_dir():
        raise UsageError(f"{path}: is a directory, expected a data file")
    fmt = engine_format(p)
    if fmt is not None:
        return fmt
    if sniff_tardis(p):
        return "tardis"
    if sniff_binance_capture(p):
        return "binance-ws"
    if is_binance_depth_csv(p):
        return "binance-depth-csv"
    if is_parquet_file(p) and is_vendor_parquet(p):
        return "vendor-parquet"
    if sniff_bybit_orderbook(p):
        return "bybit-orderbook"
    line = first_line(p)[:80]
    raise FormatError(
        f"unknown format (first line {line!r}); known: {', '.join(FORMATS)}", path=str(path)
    )


def _market(fmt: str, path: Path) -> tuple | None:
    """What files must share to continue one another (None: a file is always on its own)."""
    if fmt == "tardis":
        from adapters.tardis import sniff_tardis

        return (fmt, sniff_tardis(path), *_first_row(path, 2))
    if fmt == "binance-ws":
        from adapters.binance_ws import sniff_capture_market

        return (fmt, *sniff_capture_market(path))
    if fmt == "binance-depth-csv":
        return (fmt, *_first_row(path, 1))
    if fmt == "bybit-orderbook":
        from adapters.bybit_history import sniff_bybit_orderbook

        return (fmt, sniff_bybit_orderbook(path))
    return None


def _first_row(path: Path, n: int) -> tuple[str, ...]:
    """The first `n` cells of the first data row of a CSV file, plain or gzip."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    try:
        text = {"encoding": "utf-8", "errors": "replace"}
        with gzip.open(path, "rt", **text) if gz else open(path, **text) as f:
            f.readline()
            return tuple(f.readline().rstrip("\r\n").split(",")[:n])
    except (OSError, EOFError, zlib.error):
        return ()


def _load_group(
    fmt: str,
    paths: list[Path],
    *,
    instrument: Instrument | None,
    repair: str | None,
    strict: bool,
) -> list[EventStream]:
    from adapters.binance_history import load_binance_depth_csv, load_vendor_parquet
    from adapters.binance_ws import load_binance_capture
    from adapters.bybit_history import load_bybit_orderbook
    from adapters.tardis import load_tardis

    if fmt in ("native", "parquet", "csv"):
        return [open_events(p, repair=repair) for p in paths]
    if fmt == "tardis":
        return [load_tardis(paths, instrument=instrument, repair=repair)]
    if fmt == "binance-ws":
        return [load_binance_capture(paths, instrument=instrument, strict=strict)]
    if fmt == "binance-depth-csv":
        return [load_binance_depth_csv(paths, instrument=instrument, strict=strict, repair=repair)]
    if fmt == "vendor-parquet":
        return [load_vendor_parquet(p, instrument=instrument) for p in paths]
    if fmt == "bybit-orderbook":
        return [load_bybit_orderbook(paths, instrument=instrument, strict=strict)]
    raise UsageError(f"unknown format {fmt!r}")


def load(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    instrument: Instrument | None = None,
    repair: str | None = None,
    strict: bool = False,
) -> EventStream:
    """Load one or more files of any supported format as one stream ordered by local time."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise UsageError("no input files")
    if repair not in (None, "sort"):
        raise UsageError(f"unknown repair {repair!r} (known: sort)")
    groups: list[tuple[str, list[Path]]] = []
    by_market: dict[tuple, list[Path]] = {}
    for raw in paths:
        p = Path(raw)
        fmt = detect_format(p)
        market = _market(fmt, p)
        if market is not None and market in by_market:
            by_market[market].append(p)
            continue
        groups.append((fmt, [p]))
        if market is not None:
            by_market[market] = groups[-1][1]
    streams: list[EventStream] = []
    for fmt, group in groups:
        streams.extend(_load_group(fmt, group, instrument=instrument, repair=repair, strict=strict))
    return merge_streams(streams)
