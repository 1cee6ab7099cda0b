"""Events as columnar tables: Parquet (lossless, integer columns) and CSV (interchange).

Parquet keeps the raw integer fields plus the instrument registry in the schema metadata,
so a round trip is byte-identical. CSV is for people and other tools: decimal prices and
sizes, kind and side names, venue and symbol per row. The tick and lot size of each
instrument go to a sidecar `FILE.instruments.json`; without it, they are inferred from the
text (the finest decimal step seen), which is exact for the values but may be finer than
the venue's real tick.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from engine.data.stream import EventStream, in_time_order
from engine.decimals import units_to_strings
from engine.errors import DataError, FormatError
from engine.events import EVENT_DTYPE, KIND_CODES, KIND_NAMES, SIDE_NAMES
from engine.instruments import Instrument, InstrumentRegistry, infer_step

_META_INSTRUMENTS = b"cockpit.instruments"
_META_META = b"cockpit.meta"
CSV_COLUMNS = ["ts_exch", "ts_local", "venue", "symbol", "kind", "side", "price", "size", "flags"]
_SIDE_CODES = {v: k for k, v in SIDE_NAMES.items()}


def write_parquet(stream: EventStream, path: str | os.PathLike) -> None:
    """Write events as Parquet with the registry in the schema metadata."""
    ev = stream.events
    table = pa.table({name: np.asarray(ev[name]) for name in EVENT_DTYPE.names})
    table = table.replace_schema_metadata(
        {
            _META_INSTRUMENTS: json.dumps(stream.instruments.to_list()),
            _META_META: json.dumps(stream.meta, default=str),
        }
    )
    pq.write_table(table, path, compression="zstd")


def is_event_parquet(path: str | os.PathLike) -> bool:
    """True for a Parquet file written by `write_parquet`."""
    try:
        md = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException):
        return False
    return _META_INSTRUMENTS in md


def read_parquet(path: str | os.PathLike, *, repair: str | None = None) -> EventStream:
    """Read a Parquet file written by `write_parquet`.

    Rows whose time goes backwards are a DataError, or with repair='sort' sorted stably and
    counted in `meta['repairs']`.
    """
    p = str(path)
    try:
        table = pq.read_table(p)
    except (OSError, pa.ArrowException) as exc:
        raise FormatError(f"unreadable Parquet (truncated or corrupt?): {exc}", path=p) from None
    md = table.schema.metadata or {}
    if _META_INSTRUMENTS not in md:
        raise FormatError(
            "Parquet without cockpit metadata; vendor Parquet files are read by the adapters",
            path=p,
        )
    missing = [n for n in EVENT_DTYPE.names if n not in table.column_names]
    if missing:
        raise FormatError(f"missing columns {missing}", path=p)
    events = np.zeros(table.num_rows, dtype=EVENT_DTYPE)
    for name in EVENT_DTYPE.names:
        col = table.column(name)
        if col.null_count:
            raise DataError("missing values", path=p, field=name)
        events[name] = col.to_numpy()
    registry = InstrumentRegistry.from_list(json.loads(md[_META_INSTRUMENTS]))
    meta = json.loads(md.get(_META_META, b"{}"))
    meta["source"] = [p]
    events, moved = in_time_order(events, repair, path=p, row_offset=0)
    if moved is not None:
        meta["repairs"] = {"sorted_rows": moved}
    return EventStream(events, registry, meta)


def _sidecar(path: str | os.PathLike) -> Path:
    return Path(str(path) + ".instruments.json")


def write_csv(stream: EventStream, path: str | os.PathLike) -> None:
    """Write events as CSV with decimal prices, plus the instruments sidecar."""
    ev = stream.events
    iid = np.asarray(ev["instrument"])
    price = np.empty(len(ev), dtype=object)
    size = np.empty(len(ev), dtype=object)
    venue = np.empty(len(ev), dtype=object)
    symbol = np.empty(len(ev), dtype=object)
    for i, inst in enumerate(stream.instruments):
        sel = iid == i
        if not sel.any():
            continue
        ps, ss = inst.price_scale, inst.size_scale
        tick_units = int(inst.tick_size.scaleb(ps))
        lot_units = int(inst.lot_size.scaleb(ss))
        price[sel] = units_to_strings(np.asarray(ev["price"][sel]) * tick_units, ps).to_numpy(
            zero_copy_only=False
        )
        size[sel] = units_to_strings(np.asarray(ev["size"][sel]) * lot_units, ss).to_numpy(
            zero_copy_only=False
        )
        venue[sel] = inst.venue
        symbol[sel] = inst.symbol
    kinds = np.array([KIND_NAMES.get(int(k), str(int(k))) for k in range(256)], dtype=object)
    sides = np.array([SIDE_NAMES[-1], SIDE_NAMES[0], SIDE_NAMES[1]], dtype=object)
    table = pa.table(
        {
            "ts_exch": np.asarray(ev["ts_exch"]),
            "ts_local": np.asarray(ev["ts_local"]),
            "venue": pa.array(venue, pa.string()),
            "symbol": pa.array(symbol, pa.string()),
            "kind": pa.array(kinds[np.asarray(ev["kind"])], pa.string()),
            "side": pa.array(sides[np.asarray(ev["side"]).astype(np.int64) + 1], pa.string()),
            "price": pa.array(price, pa.string()),
            "size": pa.array(size, pa.string()),
            "flags": np.asarray(ev["flags"]),
        }
    )
    pacsv.write_csv(table, path)
    _sidecar(path).write_text(json.dumps(stream.instruments.to_list(), indent=1))


def is_event_csv(path: str | os.PathLike) -> bool:
    """True when the CSV header is the cockpit interchange header."""
    from engine.data.sniff import first_line

    return [c.strip('"') for c in first_line(path).split(",")] == CSV_COLUMNS


def read_csv(path: str | os.PathLike, *, repair: str | None = None) -> EventStream:
    """Read the CSV interchange format (instruments from the sidecar, else inferred).

    Rows whose time goes backwards are a DataError, or with repair='sort' sorted stably and
    counted in `meta['repairs']`.
    """
    p = str(path)
    types = {c: pa.string() for c in ("venue", "symbol", "kind", "side", "price", "size")}
    types.update({"ts_exch": pa.int64(), "ts_local": pa.int64(), "flags": pa.uint16()})
    try:
        table = pacsv.read_csv(p, convert_options=pacsv.ConvertOptions(column_types=types))
    except pa.ArrowInvalid as exc:
        raise DataError(f"unreadable CSV: {exc}", path=p) from None
    except OSError as exc:
        raise FormatError(f"cannot read: {exc}", path=p) from None
    if table.column_names != CSV_COLUMNS:
        raise FormatError(f"columns {table.column_names}, expected {CSV_COLUMNS}", path=p)
    n = table.num_rows
    events = np.zeros(n, dtype=EVENT_DTYPE)
    events["ts_exch"] = table.column("ts_exch").to_numpy()
    events["ts_local"] = table.column("ts_local").to_numpy()
    events["flags"] = table.column("flags").to_numpy()
    for field, codes, target in (("kind", KIND_CODES, "kind"), ("side", _SIDE_CODES, "side")):
        col = table.column(field).to_numpy(zero_copy_only=False)
        uniq, inv = np.unique(col, return_inverse=True)
        lut = []
        for name in uniq:
            if name not in codes:
                row = int(np.flatnonzero(col == name)[0])
                raise DataError(f"unknown {field} {name!r}", path=p, line=row + 2, field=field)
            lut.append(codes[name])
        events[target] = np.asarray(lut)[inv]
    known = {}
    if _sidecar(p).exists():
        for d in json.loads(_sidecar(p).read_text()):
            inst = Instrument.from_dict(d)
            known[inst.key] = inst
    registry = InstrumentRegistry()
    keys = pc.binary_join_element_wise(table.column("venue"), table.column("symbol"), "\x1f")
    keys_np = keys.to_numpy(zero_copy_only=False)
    uniq, first, inv = np.unique(keys_np, return_index=True, return_inverse=True)
    for u in np.argsort(first):  # instrument ids in order of first appearance
        venue, symbol = uniq[u].split("\x1f")
        rows = np.flatnonzero(inv == u)
        price_col = table.column("price").take(rows)
        size_col = table.column("size").take(rows)
        inst = known.get((venue, symbol)) or Instrument(
            symbol, venue, infer_step(price_col), infer_step(size_col)
        )
        iid = registry.add(inst)
        events["instrument"][rows] = iid
        # Row numbers in errors must be file lines: map back through `rows`.
        try:
            events["price"][rows] = inst.prices_to_ticks(
                price_col, path=p, field="price", row_offset=0
            )
            events["size"][rows] = inst.sizes_to_lots(size_col, path=p, field="size", row_offset=0)
        except DataError as exc:
            line = None if exc.line is None else int(rows[exc.line]) + 2
            raise DataError(exc.reason, path=p, line=line, field=exc.field) from None
    if (events["size"] < 0).any():
        row = int(np.flatnonzero(events["size"] < 0)[0])
        raise DataError("negative size", path=p, line=row + 2, field="size")
    events, moved = in_time_order(events, repair, path=p, row_offset=2)
    meta: dict = {"source": [p], "format": "cockpit:csv"}
    if moved is not None:
        meta["repairs"] = {"sorted_rows": moved}
    return EventStream(events, registry, meta)
