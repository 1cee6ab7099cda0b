"""Binance historical downloads converted to an EventStream.

Two vendor formats, and their quirks:

Tick-level depth CSV (`load_binance_depth_csv`), Binance's historical order-book download:
    symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu
- `timestamp` is the exchange's event time in milliseconds. There is no local receive
  time: events get ts_local = ts_exch and FLAG_LOCAL_TS_MISSING.
- `update_type` is `snap` (a row of a full snapshot) or `set` (the new absolute size of a
  level; 0 removes it); `side` is `b` (bid) or `a` (ask).
- Rows sharing `last_update_id` (and `update_type`) are one message: a snapshot becomes a
  KIND_BOOK_CLEAR (SIDE_NONE, FLAG_SNAPSHOT) then its levels as KIND_BOOK_SNAPSHOT; a `set`
  message becomes KIND_BOOK_DELTA rows. FLAG_LAST marks the last row of every message.
- Continuity follows Binance's futures rule: a message's `pu` (previous final update id)
  must equal the `last_update_id` of the message before it. After a snapshot with id S,
  messages ending before S (`last_update_id < S`) are stale: they are dropped and counted in
  `meta['skipped']['stale_rows']`; the first message after S is continuous when
  `first_update_id <= S + 1` or `pu == S`. `pu` of -1 means unknown: such messages, and the
  first message of a stream that does not start with a snapshot, are counted in
  `meta['sequence_unchecked']`. A break is counted in `meta['sequence_gaps']` (locations in
  `meta['gap_lines']`), or raised as DataError with `strict=True`. Gaps are reported, never
  hidden: the book after a gap is unreliable until the next snapshot.

Vendor Parquet (`load_vendor_parquet`), as published with NautilusTrader's test data:
- trades: `timestamp` (timestamp[ms, UTC]), `trade_id`, `price`, `quantity` (float64),
  `buyer_maker` (the strings 'True'/'False'). `buyer_maker` true means the buyer was the
  resting order, so the aggressor SOLD (SIDE_SELL); false means the aggressor bought.
  There is no symbol column: the symbol is an argument, the given instrument's, or the file
  name's first token (`btcusdt-trades.parquet` -> BTCUSDT), as `meta['symbol_source']` says.
- quotes: `timestamp`, `symbol` ('BTC/USDT': the slash is dropped to give Binance's own
  symbol name), `ask_size`, `ask`, `bid_size`, `bid`; two KIND_QUOTE events a row (bid, then
  ask with FLAG_LAST). An empty (null) side means no quote on that side: price 0, size 0.
- No local time: ts_local = ts_exch and FLAG_LOCAL_TS_MISSING.
- Prices and sizes are float64. Their shortest round-trip text is NOT always the decimal the
  venue printed: the file holds 0.00031099999999999997, one ulp away from 0.000311, the result
  of float arithmetic upstream (pyarrow's double-to-string cast gives that 17-digit text too).
  A float64 carries 15 significant decimal digits faithfully, so each value is formatted with
  15 significant digits (`%.15g`, which gives 0.000311) and then converted exactly through
  the decimal path like any CSV text. Values needing more than 15 digits cannot be exact.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from adapters import _columns as col
from adapters._columns import PathArg, Rows
from engine.data.stream import EventStream
from engine.errors import DataError, FormatError, UsageError
from engine.events import (
    FLAG_LAST,
    FLAG_LOCAL_TS_MISSING,
    KIND_QUOTE,
    KIND_TRADE,
    SIDE_BUY,
    SIDE_SELL,
)
from engine.instruments import Instrument, InstrumentRegistry

__all__ = [
    "DEPTH_COLUMNS",
    "PARQUET_COLUMNS",
    "is_binance_depth_csv",
    "is_vendor_parquet",
    "load_binance_depth_csv",
    "load_vendor_parquet",
    "sniff_vendor_parquet",
]

DEPTH_COLUMNS = [
    "symbol",
    "timestamp",
    "first_update_id",
    "last_update_id",
    "side",
    "update_type",
    "price",
    "qty",
    "pu",
]
PARQUET_COLUMNS: dict[str, list[str]] = {
    "trades": ["timestamp", "trade_id", "price", "quantity", "buyer_maker"],
    "quotes": ["timestamp", "symbol", "ask_size", "ask", "bid_size", "bid"],
}
_DEPTH_SIDES = {"b": SIDE_BUY, "a": SIDE_SELL}
_UPDATE_TYPES = {"set": 0, "snap": 1}
# buyer_maker true: the buyer rested, the seller was the aggressor.
_BUYER_MAKER = {"True": SIDE_SELL, "true": SIDE_SELL, "False": SIDE_BUY, "false": SIDE_BUY}
_MAX_GAP_LINES = 100
_DICT = pa.dictionary(pa.int32(), pa.string())


def is_binance_depth_csv(path: PathArg) -> bool:
    """Whether the file's header is that of a Binance tick-level depth CSV."""
    try:
        return col.read_header(str(path)) == DEPTH_COLUMNS
    except DataError:
        return False


def sniff_vendor_parquet(path: PathArg) -> str | None:
    """'trades' or 'quotes' for a vendor Parquet file (by its columns), else None."""
    try:
        names = set(pq.read_schema(str(path)).names)
    except (pa.ArrowException, OSError):
        return None
    for data_type, cols in PARQUET_COLUMNS.items():
        if names == set(cols):
            return data_type
    return None


def is_vendor_parquet(path: PathArg) -> bool:
    """Whether the file is a vendor Parquet file of trades or quotes."""
    return sniff_vendor_parquet(path) is not None


def load_binance_depth_csv(
    paths: PathArg | Sequence[PathArg],
    *,
    instrument: Instrument | None = None,
    strict: bool = False,
    repair: str | None = None,
    venue: str = "binance",
) -> EventStream:
    """Load Binance tick-level depth CSV files (consecutive files read as one stream).

    Args:
        paths: one file or several, in time order (plain or gzip).
        instrument: tick and lot size to use instead of inferring them from the data.
        strict: raise DataError at the first sequence gap instead of counting it.
        repair: None refuses rows whose time goes backwards; 'sort' sorts them stably and
            reports `meta['repairs'] = {'sorted_rows': n}`.
        venue: venue name of the instruments.

    Raises:
        FormatError: empty, truncated or unreadable file, unknown columns.
        DataError: a bad value or (with strict) a sequence gap, naming file, line and field.
    """
    files = col.as_paths(paths)
    col.check_repair(repair)
    types = {
        "symbol": _DICT,
        "timestamp": pa.int64(),
        "first_update_id": pa.int64(),
        "last_update_id": pa.int64(),
        "side": _DICT,
        "update_type": _DICT,
        "price": pa.string(),
        "qty": pa.string(),
        "pu": pa.int64(),
    }
    tables = []
    for path in files:
        header = col.read_header(path)
        col.check_columns(path, header, DEPTH_COLUMNS, "Binance tick-level depth")
        tables.append(col.read_csv(path, header, types, DEPTH_COLUMNS))
    rows = Rows(files, [t.num_rows for t in tables])

    keys: dict[tuple, int] = {}
    ids = []
    for t, path in zip(tables, files, strict=True):
        ids.append(
            col.key_ids([col.constant(venue, t.num_rows), t["symbol"]], keys, path, ["", "symbol"])
        )
    instruments = col.infer_instruments(
        keys,
        [(t["price"], i) for t, i in zip(tables, ids, strict=True)],
        [(t["qty"], i) for t, i in zip(tables, ids, strict=True)],
        instrument,
    )
    registry = InstrumentRegistry()
    for inst in instruments:
        registry.add(inst)
    ticks = col.Grid([i.tick_size for i in instruments], "tick size")
    lots = col.Grid([i.lot_size for i in instruments], "lot size")

    parts = []
    for t, i, path in zip(tables, ids, files, strict=True):
        parts.append(
            {
                "ts": col.int_column(t["timestamp"], path, "timestamp") * 1_000_000,
                "inst": i,
                "first": col.int_column(t["first_update_id"], path, "first_update_id"),
                "last": col.int_column(t["last_update_id"], path, "last_update_id"),
                "pu": col.int_column(t["pu"], path, "pu"),
                "side": col.coded_column(t["side"], _DEPTH_SIDES, path, "side"),
                "snap": col.coded_column(t["update_type"], _UPDATE_TYPES, path, "update_type"),
                "price": ticks.convert(t["price"], i, path, "price"),
                "size": lots.convert(t["qty"], i, path, "qty", nonnegative=True),
            }
        )
    c = {k: col.concat([p[k] for p in parts]) for k in parts[0]}
    meta: dict = {
        "source": files,
        "format": "binance:depth_csv",
        "rows": rows.total,
        "instrument_source": "given" if instrument is not None else "inferred",
        "skipped": {},
    }
    order = col.order_rows(c["ts"], rows, repair, "timestamp")
    if repair == "sort":
        meta["repairs"] = {"sorted_rows": col.moved_rows(order)}
    c = col.take(c, order)
    rows.order = order

    keep = _check_sequence(c, rows, meta, strict)
    if not keep.all():
        c = {k: v[keep] for k, v in c.items()}
    events = _build_depth(c)
    meta["events"] = len(events)
    return EventStream(events, registry, meta)


def _check_sequence(c: dict[str, np.ndarray], rows: Rows, meta: dict, strict: bool) -> np.ndarray:
    """Find stale messages and sequence gaps; returns the rows to keep (not stale)."""
    n = len(c["ts"])
    snap = c["snap"].astype(bool)
    start = col.run_starts(c["inst"], c["last"], snap)
    m_row = np.flatnonzero(start)  # first row of each message
    m_inst = c["inst"][m_row].astype(np.int64)
    m_first, m_last, m_pu = c["first"][m_row], c["last"][m_row], c["pu"][m_row]
    m_snap = snap[m_row]
    m_count = np.diff(np.append(m_row, n))

    # Id of the latest snapshot at or before each message, per instrument (-1: none yet).
    snap_id = _forward_fill(np.where(m_snap, m_last, -1), m_inst)
    stale = ~m_snap & (snap_id >= 0) & (m_last < snap_id)
    live = np.flatnonzero(~stale)
    # Continuity between consecutive live messages of the same instrument.
    l_inst, l_snap = m_inst[live], m_snap[live]
    prev_last = col.previous_in_group(m_last[live], l_inst, -1)
    prev_snap = col.previous_in_group(l_snap, l_inst, False)
    has_prev = col.previous_in_group(np.ones(len(live), bool), l_inst, False)
    pu, first = m_pu[live], m_first[live]
    known = ~l_snap & has_prev & (pu != -1)
    ok = (pu == prev_last) | (prev_snap & (first <= prev_last + 1))
    gap = known & ~ok
    meta["sequence_gaps"] = int(gap.sum())
    meta["sequence_unchecked"] = int((~l_snap & ~known).sum())
    gap_rows = m_row[live[gap]]
    if strict and len(gap_rows):
        k = int(np.flatnonzero(gap)[0])
        raise rows.error(
            int(gap_rows[0]),
            f"sequence gap: pu {int(pu[k])} but the previous message ended at update id "
            f"{int(prev_last[k])} (strict=True; without it gaps are counted in meta)",
            "pu",
        )
    meta["gap_lines"] = ["{}:{}".format(*rows.locate(int(r))) for r in gap_rows[:_MAX_GAP_LINES]]
    keep = np.ones(n, dtype=bool)
    if stale.any():
        keep = ~np.repeat(stale, m_count)
        meta["skipped"]["stale_rows"] = int(n - keep.sum())
    return keep


def _forward_fill(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Latest value >= 0 at or before each position within its group (-1 where none)."""
    m = len(values)
    if m == 0:
        return values
    single = (group == group[0]).all()
    order = np.arange(m) if single else np.argsort(group, kind="stable")
    v, g = values[order], group[order]
    pos = np.where(v >= 0, np.arange(m), -1)
    latest = np.maximum.accumulate(pos)
    group_start = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    starts = np.repeat(group_start, np.diff(np.append(group_start, m)))
    filled = np.where(latest >= starts, v[np.maximum(latest, 0)], -1)
    out = np.empty_like(values)
    out[order] = filled
    return out


def _build_depth(c: dict[str, np.ndarray]) -> np.ndarray:
    snap = c["snap"].astype(bool)
    msg_start = col.run_starts(c["inst"], c["last"], snap)
    clear_before = snap & msg_start
    last = col.run_ends(c["inst"], c["last"], snap)
    return col.book_rows(
        clear_before=clear_before,
        snap=snap,
        last=last,
        ts_exch=c["ts"],
        ts_local=c["ts"],
        instrument=c["inst"],
        side=c["side"],
        price=c["price"],
        size=c["size"],
        extra_flags=FLAG_LOCAL_TS_MISSING,
    )


# --- Parquet ---------------------------------------------------------------------------------


def load_vendor_parquet(
    path: PathArg,
    *,
    symbol: str | None = None,
    venue: str = "binance",
    instrument: Instrument | None = None,
    repair: str | None = None,
) -> EventStream:
    """Load a vendor Parquet file of Binance trades or quotes (detected from its columns).

    Args:
        path: the Parquet file.
        symbol: instrument symbol. Trades files have no symbol column: without `symbol`
            or `instrument` the file name's first token is used (`btcusdt-trades.parquet`
            -> BTCUSDT, `meta['symbol_source'] = 'file name'`). For quotes it overrides
            the file's single symbol.
        venue: venue name of the instruments.
        instrument: tick and lot size to use instead of inferring them from the data.
        repair: None refuses rows whose time goes backwards; 'sort' sorts them stably.

    Raises:
        FormatError: not a Parquet file, unknown or missing columns.
        DataError: a bad value, naming the file, row and field.
        UsageError: trades without a usable symbol.
    """
    path = str(path)
    col.check_repair(repair)
    table = _read_parquet(path)
    names = set(table.column_names)
    data_type = "trades" if names & {"buyer_maker", "trade_id", "quantity"} else "quotes"
    expected = PARQUET_COLUMNS[data_type]
    if names != set(expected):
        missing = [c for c in expected if c not in names]
        unknown = [c for c in table.column_names if c not in expected]
        listing = "; ".join(f"{name}: {','.join(cols)}" for name, cols in PARQUET_COLUMNS.items())
        raise FormatError(
            f"not a vendor {data_type} Parquet file: missing {', '.join(missing) or 'none'}; "
            f"unknown {', '.join(unknown) or 'none'}; expected columns ({listing})",
            path=path,
        )
    n = table.num_rows
    where = {"row_offset": 0, "unit": "row"}

    if data_type == "trades":
        name, symbol_source = _trades_symbol(path, symbol, instrument)
        symbols = col.constant(name, n)
    else:
        symbol_source = "column" if symbol is None else "argument"
        symbols = pc.replace_substring(_as_text(table["symbol"]), "/", "")
        if symbol is not None:
            distinct = pc.unique(symbols).to_pylist()
            if len(distinct) > 1:
                raise UsageError(
                    f"{path}: symbol={symbol!r} given but the file holds {len(distinct)} "
                    f"symbols ({', '.join(map(str, distinct[:5]))})"
                )
            symbols = col.constant(symbol, n)
    keys: dict[tuple, int] = {}
    ids = col.key_ids([col.constant(venue, n), symbols], keys, path, ["", "symbol"], 0, "row")

    ts = _timestamps(table["timestamp"], path)
    if data_type == "trades":
        prices = {"price": _decimal_text(table["price"])}
        sizes = {"quantity": _decimal_text(table["quantity"])}
    else:
        prices = {"bid": _decimal_text(table["bid"]), "ask": _decimal_text(table["ask"])}
        sizes = {
            "bid_size": _decimal_text(table["bid_size"]),
            "ask_size": _decimal_text(table["ask_size"]),
        }
    instruments = col.infer_instruments(
        keys,
        [(pa.chunked_array([v]), ids) for v in prices.values()],
        [(pa.chunked_array([v]), ids) for v in sizes.values()],
        instrument,
    )
    registry = InstrumentRegistry()
    for inst in instruments:
        registry.add(inst)
    ticks = col.Grid([i.tick_size for i in instruments], "tick size")
    lots = col.Grid([i.lot_size for i in instruments], "lot size")

    meta: dict = {
        "source": [path],
        "format": f"vendor_parquet:{data_type}",
        "rows": n,
        "symbol_source": symbol_source,
        "instrument_source": "given" if instrument is not None else "inferred",
        "skipped": {},
    }
    c: dict[str, np.ndarray] = {"ts": ts, "inst": ids}
    if data_type == "trades":
        c["side"] = col.coded_column(
            _as_text(table["buyer_maker"]), _BUYER_MAKER, path, "buyer_maker", **where
        )
        c["price"] = ticks.convert(prices["price"], ids, path, "price", **where)
        c["size"] = lots.convert(
            sizes["quantity"], ids, path, "quantity", nonnegative=True, **where
        )
    else:
        empty_sides = 0
        for side in ("bid", "ask"):
            px, sz = prices[side], sizes[f"{side}_size"]
            missing = _null_pairs(px, sz, path, (side, f"{side}_size"))
            empty_sides += int(missing.sum())
            if missing.any():
                px, sz = pc.fill_null(px, "0"), pc.fill_null(sz, "0")
            c[f"{side}_px"] = ticks.convert(px, ids, path, side, **where)
            c[f"{side}_sz"] = lots.convert(sz, ids, path, f"{side}_size", nonnegative=True, **where)
        meta["empty_quote_sides"] = empty_sides

    rows = Rows([path], [n], row_offset=0, unit="row")
    order = col.order_rows(c["ts"], rows, repair, "timestamp")
    if repair == "sort":
        meta["repairs"] = {"sorted_rows": col.moved_rows(order)}
    c = col.take(c, order)

    if data_type == "trades":
        ev = col.empty(n)
        col.fill(
            ev,
            slice(None),
            ts_exch=c["ts"],
            ts_local=c["ts"],
            instrument=c["inst"],
            kind=KIND_TRADE,
            side=c["side"],
            flags=FLAG_LAST | FLAG_LOCAL_TS_MISSING,
            price=c["price"],
            size=c["size"],
        )
    else:
        ev = col.empty(2 * n)
        for at, side, code, flags in (
            (slice(0, None, 2), "bid", SIDE_BUY, FLAG_LOCAL_TS_MISSING),
            (slice(1, None, 2), "ask", SIDE_SELL, FLAG_LAST | FLAG_LOCAL_TS_MISSING),
        ):
            col.fill(
                ev,
                at,
                ts_exch=c["ts"],
                ts_local=c["ts"],
                instrument=c["inst"],
                kind=KIND_QUOTE,
                side=code,
                flags=flags,
                price=c[f"{side}_px"],
                size=c[f"{side}_sz"],
            )
    meta["events"] = len(ev)
    return EventStream(ev, registry, meta)


def _trades_symbol(path: str, symbol: str | None, instrument: Instrument | None) -> tuple[str, str]:
    """(symbol, where it came from) for a trades file, which has no symbol column.

    Without `symbol` or `instrument`, the file name's first token names the market, as in
    the vendor's own naming (`btcusdt-trades.parquet` -> BTCUSDT); meta records that.
    """
    if symbol is not None:
        return symbol, "argument"
    if instrument is not None:
        return instrument.symbol, "instrument"
    token = re.split(r"[-_.]", Path(path).name, maxsplit=1)[0]
    if token.isalnum() and token.lower() not in {"trades", "quotes", "data", "part"}:
        return token.upper(), "file name"
    raise UsageError(
        f"{path}: a trades file has no symbol column and its name does not start with one: "
        "pass symbol=..."
    )


def _read_parquet(path: str) -> pa.Table:
    try:
        with open(path, "rb") as f:
            if not f.read(1):
                raise FormatError("empty file", path=path)
        return pq.read_table(path)
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    except (pa.ArrowException, OSError) as exc:
        raise FormatError(f"not a readable Parquet file ({exc})", path=path) from None


def _timestamps(column: pa.ChunkedArray, path: str) -> np.ndarray:
    """Nanoseconds since the epoch from a timestamp column (any unit) or integer ms."""
    i = col.first_null(column)
    if i >= 0:
        raise col.where_error(path, i, "missing value", "timestamp", "row")
    if pa.types.is_timestamp(column.type):
        return np.asarray(column.cast(pa.timestamp("ns", column.type.tz)).cast(pa.int64()))
    if pa.types.is_integer(column.type):
        return np.asarray(column.cast(pa.int64()), dtype=np.int64) * 1_000_000
    raise FormatError(
        f"column 'timestamp' has type {column.type}, expected a timestamp or integer ms",
        path=path,
    )


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A boolean or string column as strings ('True'/'False' for booleans)."""
    if pa.types.is_boolean(column.type):
        return pc.if_else(column, "True", "False")
    if not pa.types.is_string(column.type):
        return column.cast(pa.string())
    return column


def _decimal_text(column: pa.ChunkedArray) -> pa.Array:
    """Decimal text of a numeric column; floats rounded to 15 significant digits.

    See the module docstring: 15 digits undo the float noise of 0.00031099999999999997.
    """
    if pa.types.is_floating(column.type):
        # Significant decimal digits a binary float of this width carries faithfully.
        digits = {16: 3, 32: 7, 64: 15}[column.type.bit_width]
        values = column.to_numpy()  # nulls become NaN; the null mask is kept below
        mask = np.asarray(pc.is_null(column)) if column.null_count else None
        text = [f"{v:.{digits}g}" for v in values.tolist()]
        return pa.array(text, pa.string(), mask=mask)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.combine_chunks()
    return pc.cast(column, pa.string()).combine_chunks()


def _null_pairs(px: pa.Array, sz: pa.Array, path: str, names: tuple[str, str]) -> np.ndarray:
    """Rows where price and size are both null; DataError naming the row if only one is."""
    try:
        return col.check_null_pairs(px, sz, path, names, row_offset=0)
    except DataError as exc:
        raise col.where_error(path, exc.line or 0, exc.reason, None, "row") from None
