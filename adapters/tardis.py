"""Tardis.dev CSV files (plain or gzip) converted to an EventStream.

Vendor format and its quirks (https://docs.tardis.dev/downloadable-csv-files):

- One data type per file, recognised from the header line (`sniff_tardis`):
  `incremental_book_L2` (exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,
  amount), `trades` (...,id,side,price,amount), `quotes` (...,ask_amount,ask_price,bid_price,
  bid_amount: asks come first, and the ask amount precedes the ask price), and
  `book_snapshot_N` (per level i: asks[i].price,asks[i].amount,bids[i].price,bids[i].amount).
- `timestamp` is the exchange's time and `local_timestamp` the arrival time, both integer
  microseconds since the epoch (UTC); events carry nanoseconds. Streams are ordered by the
  arrival time.
- incremental_book_L2: rows sharing a `local_timestamp` came in one message and the book is
  consistent only after the whole group, so only the last row of a group has FLAG_LAST.
  `amount` is the new absolute size of the level (0 removes it). `is_snapshot` turning from
  false to true (a reconnect, or the start of a new day's file) means the book must be
  rebuilt: a KIND_BOOK_CLEAR (SIDE_NONE, FLAG_SNAPSHOT) is emitted before the snapshot rows,
  and also when a file starts with a snapshot. `side` is `bid` or `ask`.
- trades: `side` is the aggressor (taker) side, `buy`, `sell` or `unknown`; `id` may be an
  integer or a UUID (BitMEX) and is not kept. Every trade is a message of its own (FLAG_LAST).
- quotes: one row gives two KIND_QUOTE events, the bid (SIDE_BUY) and then the ask
  (SIDE_SELL, FLAG_LAST). An empty side means no quote on that side: its event has price 0
  and size 0 (counted in `meta['empty_quote_sides']`).
- book_snapshot_N: each row is a full top-N book: a KIND_BOOK_CLEAR followed by one
  KIND_BOOK_SNAPSHOT event per level (ask then bid, level by level, FLAG_SNAPSHOT), FLAG_LAST
  on the last event of the row. Levels with empty fields (a thin book) are skipped and
  counted in `meta['skipped']['missing_levels']`.
- A file may hold several symbols (Tardis' grouped exports): each (exchange, symbol) is an
  instrument of the registry, its venue the Tardis exchange name.
- Prices and amounts are decimal text, read as strings and converted exactly. Without an
  explicit `instrument`, the tick (lot) is the finest decimal step that holds every price
  (amount) of the instrument in the loaded files: the data's precision, which may be finer
  than the venue's tick (Deribit quotes BTC-PERPETUAL in 0.5 but the inferred tick of a file
  whose prices all end in .0 or .5 is 0.1 -- exact either way). Instrument kind is left at
  its default: pass `instrument` to set it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adapters import _columns as col
from adapters._columns import PathArg, Rows
from engine.data.stream import EventStream
from engine.errors import FormatError
from engine.events import (
    FLAG_LAST,
    FLAG_SNAPSHOT,
    KIND_BOOK_CLEAR,
    KIND_BOOK_SNAPSHOT,
    KIND_QUOTE,
    KIND_TRADE,
    SIDE_BUY,
    SIDE_NONE,
    SIDE_SELL,
)
from engine.instruments import Instrument, InstrumentRegistry

__all__ = ["load_tardis", "sniff_tardis", "TARDIS_COLUMNS"]

_BASE = ["exchange", "symbol", "timestamp", "local_timestamp"]
TARDIS_COLUMNS: dict[str, list[str]] = {
    "incremental_book_L2": _BASE + ["is_snapshot", "side", "price", "amount"],
    "trades": _BASE + ["id", "side", "price", "amount"],
    "quotes": _BASE + ["ask_amount", "ask_price", "bid_price", "bid_amount"],
}
"""Expected header of each supported data type (book_snapshot_N: see `_snapshot_columns`)."""

_LEVEL = re.compile(r"^asks\[(\d+)\]\.price$")
_STR = pa.string()
_DICT = pa.dictionary(pa.int32(), pa.string())
_TRADE_SIDES = {"buy": SIDE_BUY, "sell": SIDE_SELL, "unknown": SIDE_NONE}
_BOOK_SIDES = {"bid": SIDE_BUY, "ask": SIDE_SELL}


def _snapshot_columns(levels: int) -> list[str]:
    cols = list(_BASE)
    for i in range(levels):
        cols += [f"asks[{i}].price", f"asks[{i}].amount", f"bids[{i}].price", f"bids[{i}].amount"]
    return cols


def _data_type(header: list[str]) -> str | None:
    for name, cols in TARDIS_COLUMNS.items():
        if header == cols:
            return name
    levels = sum(1 for c in header if _LEVEL.match(c))
    if levels and header == _snapshot_columns(levels):
        return f"book_snapshot_{levels}"
    return None


def _expected(data_type: str) -> list[str]:
    if data_type.startswith("book_snapshot_"):
        return _snapshot_columns(int(data_type.rsplit("_", 1)[1]))
    return TARDIS_COLUMNS[data_type]


def _closest(header: list[str]) -> str:
    """The supported data type whose columns overlap the header most (for the error)."""
    levels = sum(1 for c in header if c.startswith("asks[") and c.endswith(".price"))
    candidates = dict(TARDIS_COLUMNS)
    if levels:
        candidates[f"book_snapshot_{levels}"] = _snapshot_columns(levels)
    return max(candidates, key=lambda k: len(set(candidates[k]) & set(header)))


def sniff_tardis(path: PathArg) -> str | None:
    """The Tardis data type of a CSV file from its header line, or None if it is not one."""
    try:
        return _data_type(col.read_header(str(path)))
    except FormatError:
        return None


def load_tardis(
    paths: PathArg | Sequence[PathArg],
    *,
    instrument: Instrument | None = None,
    repair: str | None = None,
) -> EventStream:
    """Load Tardis CSV files of one data type (consecutive files read as one stream).

    Args:
        paths: one file or several of the same data type, in time order (plain or gzip).
        instrument: tick and lot size (and kind) to use instead of inferring them from the
            data; prices or amounts off its grid raise DataError.
        repair: None refuses rows whose local time goes backwards; 'sort' sorts them stably
            and reports `meta['repairs'] = {'sorted_rows': n}`.

    Raises:
        FormatError: empty, truncated or unreadable file, unknown columns, mixed data types.
        DataError: a bad value, naming the file, line and field.
    """
    files = col.as_paths(paths)
    col.check_repair(repair)
    data_type = None
    tables = []
    for path in files:
        header = col.read_header(path)
        kind = _data_type(header)
        if kind is None:
            guess = _closest(header)
            col.check_columns(path, header, _expected(guess), f"Tardis {guess}")
        if data_type is None:
            data_type = kind
        elif kind != data_type:
            raise FormatError(
                f"holds Tardis {kind}, but the first file holds {data_type}: load one data "
                "type at a time",
                path=path,
            )
        tables.append(_read(path, header, kind))
    assert data_type is not None
    rows = Rows(files, [t.num_rows for t in tables])

    keys: dict[tuple, int] = {}
    ids = [
        col.key_ids([t["exchange"], t["symbol"]], keys, path, ["exchange", "symbol"])
        for t, path in zip(tables, files, strict=True)
    ]
    price_names, size_names = _value_columns(data_type)
    instruments = col.infer_instruments(
        keys,
        [(t[c], i) for t, i in zip(tables, ids, strict=True) for c in price_names],
        [(t[c], i) for t, i in zip(tables, ids, strict=True) for c in size_names],
        instrument,
    )
    registry = InstrumentRegistry()
    for inst in instruments:
        registry.add(inst)
    ticks = col.Grid([i.tick_size for i in instruments], "tick size")
    lots = col.Grid([i.lot_size for i in instruments], "lot size")

    convert = {
        "trades": _trade_rows,
        "incremental_book_L2": _l2_rows,
        "quotes": _quote_rows,
    }.get(data_type, _snapshot_rows)
    parts = [
        convert(t, i, path, ticks, lots) for t, i, path in zip(tables, ids, files, strict=True)
    ]
    columns = {k: col.concat([p[k] for p in parts]) for k in parts[0]}
    if data_type == "incremental_book_L2":
        columns["file"] = rows.file_index()  # snapshots restart at each file

    meta: dict = {
        "source": files,
        "format": f"tardis:{data_type}",
        "rows": rows.total,
        "instrument_source": "given" if instrument is not None else "inferred",
        "skipped": {},
    }
    order = col.order_rows(columns["ts_local"], rows, repair, "local_timestamp")
    if repair == "sort":
        meta["repairs"] = {"sorted_rows": col.moved_rows(order)}
    columns = col.take(columns, order)
    rows.order = order

    build = {
        "trades": _build_trades,
        "incremental_book_L2": _build_l2,
        "quotes": _build_quotes,
    }.get(data_type, _build_snapshots)
    events = build(columns, meta)
    meta["events"] = len(events)
    return EventStream(events, registry, meta)


def _value_columns(data_type: str) -> tuple[list[str], list[str]]:
    """(price columns, size columns) of a data type."""
    if data_type == "quotes":
        return ["bid_price", "ask_price"], ["bid_amount", "ask_amount"]
    if data_type.startswith("book_snapshot_"):
        cols = _expected(data_type)[len(_BASE) :]
        return [c for c in cols if c.endswith(".price")], [c for c in cols if c.endswith(".amount")]
    return ["price"], ["amount"]


def _read(path: str, header: list[str], data_type: str) -> pa.Table:
    types: dict[str, pa.DataType] = {
        "exchange": _DICT,
        "symbol": _DICT,
        "timestamp": pa.int64(),
        "local_timestamp": pa.int64(),
    }
    include = list(_BASE)
    if data_type in ("trades", "incremental_book_L2"):
        if data_type == "incremental_book_L2":
            types["is_snapshot"] = pa.bool_()
            include.append("is_snapshot")
        # Trade ids are not kept (integers on most venues, UUIDs on BitMEX): not read at all.
        types.update(side=_DICT, price=_STR, amount=_STR)
        include += ["side", "price", "amount"]
    else:
        values = _expected(data_type)[len(_BASE) :]
        types.update({c: _STR for c in values})
        include += values
    return col.read_csv(path, header, types, include)


def _times(table: pa.Table, path: str) -> tuple[np.ndarray, np.ndarray]:
    """Exchange and local times in ns (Tardis writes microseconds)."""
    ts_exch = col.int_column(table["timestamp"], path, "timestamp") * 1000
    ts_local = col.int_column(table["local_timestamp"], path, "local_timestamp") * 1000
    return ts_exch, ts_local


def _trade_rows(table, ids, path, ticks, lots) -> dict[str, np.ndarray]:
    ts_exch, ts_local = _times(table, path)
    return {
        "ts_exch": ts_exch,
        "ts_local": ts_local,
        "inst": ids,
        "side": col.coded_column(table["side"], _TRADE_SIDES, path, "side"),
        "price": ticks.convert(table["price"], ids, path, "price"),
        "size": lots.convert(table["amount"], ids, path, "amount", nonnegative=True),
    }


def _l2_rows(table, ids, path, ticks, lots) -> dict[str, np.ndarray]:
    ts_exch, ts_local = _times(table, path)
    snap = table["is_snapshot"]
    i = col.first_null(snap)
    if i >= 0:
        raise col.where_error(path, i + 2, "missing value", "is_snapshot")
    return {
        "ts_exch": ts_exch,
        "ts_local": ts_local,
        "inst": ids,
        "snap": np.asarray(snap.to_numpy(), dtype=bool),
        "side": col.coded_column(table["side"], _BOOK_SIDES, path, "side"),
        "price": ticks.convert(table["price"], ids, path, "price"),
        "size": lots.convert(table["amount"], ids, path, "amount", nonnegative=True),
    }


def _quote_rows(table, ids, path, ticks, lots) -> dict[str, np.ndarray]:
    ts_exch, ts_local = _times(table, path)
    out = {"ts_exch": ts_exch, "ts_local": ts_local, "inst": ids}
    for side in ("bid", "ask"):
        px, sz = table[f"{side}_price"], table[f"{side}_amount"]
        missing = col.check_null_pairs(px, sz, path, (f"{side}_price", f"{side}_amount"))
        if missing.any():
            # No quote on that side: converted as price 0, size 0.
            px, sz = pc.fill_null(px, "0"), pc.fill_null(sz, "0")
        out[f"{side}_px"] = ticks.convert(px, ids, path, f"{side}_price")
        out[f"{side}_sz"] = lots.convert(sz, ids, path, f"{side}_amount", nonnegative=True)
        out[f"{side}_missing"] = missing
    return out


def _snapshot_rows(table, ids, path, ticks, lots) -> dict[str, np.ndarray]:
    ts_exch, ts_local = _times(table, path)
    levels = (table.num_columns - len(_BASE)) // 4
    n = table.num_rows
    # Level order in the output: ask 0, bid 0, ask 1, bid 1, ... (the file's column order).
    px = np.empty((n, 2 * levels), dtype=np.int64)
    sz = np.empty((n, 2 * levels), dtype=np.int64)
    valid = np.empty((n, 2 * levels), dtype=bool)
    for lvl in range(levels):
        for k, side in enumerate(("asks", "bids")):
            p_name, s_name = f"{side}[{lvl}].price", f"{side}[{lvl}].amount"
            p, s = table[p_name], table[s_name]
            missing = col.check_null_pairs(p, s, path, (p_name, s_name))
            if missing.any():
                p, s = pc.fill_null(p, "0"), pc.fill_null(s, "0")
            j = 2 * lvl + k
            px[:, j] = ticks.convert(p, ids, path, p_name)
            sz[:, j] = lots.convert(s, ids, path, s_name, nonnegative=True)
            valid[:, j] = ~missing
    return {
        "ts_exch": ts_exch,
        "ts_local": ts_local,
        "inst": ids,
        "px": px,
        "sz": sz,
        "valid": valid,
    }


def _build_trades(c: dict[str, np.ndarray], meta: dict) -> np.ndarray:
    ev = col.empty(len(c["ts_local"]))
    col.fill(
        ev,
        slice(None),
        ts_exch=c["ts_exch"],
        ts_local=c["ts_local"],
        instrument=c["inst"],
        kind=KIND_TRADE,
        side=c["side"],
        flags=FLAG_LAST,
        price=c["price"],
        size=c["size"],
    )
    return ev


def _build_quotes(c: dict[str, np.ndarray], meta: dict) -> np.ndarray:
    n = len(c["ts_local"])
    ev = col.empty(2 * n)
    for at, side, code, flags in (
        (slice(0, None, 2), "bid", SIDE_BUY, 0),
        (slice(1, None, 2), "ask", SIDE_SELL, FLAG_LAST),
    ):
        col.fill(
            ev,
            at,
            ts_exch=c["ts_exch"],
            ts_local=c["ts_local"],
            instrument=c["inst"],
            kind=KIND_QUOTE,
            side=code,
            flags=flags,
            price=c[f"{side}_px"],
            size=c[f"{side}_sz"],
        )
    meta["empty_quote_sides"] = int(c["bid_missing"].sum() + c["ask_missing"].sum())
    return ev


def _build_l2(c: dict[str, np.ndarray], meta: dict) -> np.ndarray:
    snap, inst = c["snap"], c["inst"]
    # A snapshot starts where is_snapshot turns true for an instrument, or at the first row
    # of an instrument in a file (each Tardis file starts with a fresh snapshot).
    group = c["file"].astype(np.int64) << 32 | inst.astype(np.int64)
    prev = col.previous_in_group(snap, group, False)
    starts = snap & ~prev  # `prev` is False on the first row of a group
    last = col.run_ends(c["ts_local"], inst)
    ev = col.book_rows(
        clear_before=starts,
        snap=snap,
        last=last,
        ts_exch=c["ts_exch"],
        ts_local=c["ts_local"],
        instrument=inst,
        side=c["side"],
        price=c["price"],
        size=c["size"],
    )
    meta["snapshots"] = int(starts.sum())
    return ev


def _build_snapshots(c: dict[str, np.ndarray], meta: dict) -> np.ndarray:
    valid = c["valid"]
    n, width = valid.shape
    count = valid.sum(axis=1)
    size = 1 + count  # the clear, then the levels present
    start = np.cumsum(size) - size
    total = int(size.sum())
    ev = col.empty(total)
    col.fill(
        ev,
        start,
        ts_exch=c["ts_exch"],
        ts_local=c["ts_local"],
        instrument=c["inst"],
        kind=KIND_BOOK_CLEAR,
        side=SIDE_NONE,
        flags=FLAG_SNAPSHOT,
    )
    flat = np.flatnonzero(valid.ravel())
    row = flat // width
    rank = (np.cumsum(valid, axis=1) - 1).ravel()[flat]
    pos = start[row] + 1 + rank
    level_side = np.tile(np.array([SIDE_SELL, SIDE_BUY], dtype=np.int8), width // 2)
    col.fill(
        ev,
        pos,
        ts_exch=c["ts_exch"][row],
        ts_local=c["ts_local"][row],
        instrument=c["inst"][row],
        kind=KIND_BOOK_SNAPSHOT,
        side=level_side[flat % width],
        flags=FLAG_SNAPSHOT,
        price=c["px"].ravel()[flat],
        size=c["sz"].ravel()[flat],
    )
    if total:
        ev["flags"][start + size - 1] |= FLAG_LAST
    meta["snapshots"] = n
    meta["skipped"]["missing_levels"] = int(n * width - len(flat))
    return ev
