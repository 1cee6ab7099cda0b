"""Column-level building blocks shared by the vendor-file converters.

Everything here works on whole columns (pyarrow arrays, numpy arrays), never with a Python
loop per row; the only per-row Python loops are on error paths, to name the first bad line.
Errors are `DataError` / `FormatError` naming the file, the line (or row) and the field.

Conventions: a "part" is one input file read into a pyarrow table; the rows of all parts are
concatenated into one stream, and `Rows` maps a position in that stream back to its file
and line for error messages.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from engine.decimals import format_units, to_units
from engine.errors import DataError, FormatError, UsageError
from engine.events import (
    EVENT_DTYPE,
    FLAG_LAST,
    FLAG_SNAPSHOT,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    SIDE_NONE,
)
from engine.instruments import Instrument, infer_step

PathArg = str | os.PathLike[str]
GZIP_MAGIC = b"\x1f\x8b"
BAD_CODE = np.int8(-128)
"""Marks a value that a lookup table does not know (an unknown side, a bad flag)."""


def as_paths(paths: PathArg | Sequence[PathArg]) -> list[str]:
    """One path or a sequence of paths, as a non-empty list of strings."""
    if isinstance(paths, str | os.PathLike):
        out = [os.fspath(paths)]
    else:
        out = [os.fspath(p) for p in paths]
    if not out:
        raise UsageError("no input files given")
    return out


def check_repair(repair: str | None) -> None:
    """Only `None` (refuse disorder) and `'sort'` (stable sort, reported) exist."""
    if repair not in (None, "sort"):
        raise UsageError(f"repair must be None or 'sort', got {repair!r}")


# --- Reading CSV -----------------------------------------------------------------------------


def is_gzip(path: str) -> bool:
    """Detect gzip by its magic bytes, not by the file name."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def read_header(path: str) -> list[str]:
    """The column names on the first line; FormatError for an empty or unreadable file."""
    try:
        if os.path.getsize(path) == 0:
            raise FormatError("empty file (no header line)", path=path)
        compressed = is_gzip(path)
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    try:
        with (gzip.open if compressed else open)(path, "rb") as f:
            first = f.readline(1 << 20)
    except (OSError, EOFError, zlib.error) as exc:
        what = "truncated or corrupt gzip file" if compressed else "cannot read the file"
        raise FormatError(f"{what} ({exc})", path=path) from None
    text = first.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
    if not text.strip():
        raise FormatError("empty file (no header line)", path=path)
    # Tardis never quotes its header, but other writers (pyarrow, pandas) may.
    return [c.strip().strip('"') for c in text.split(",")]


def check_columns(path: str, header: Sequence[str], expected: Sequence[str], what: str) -> None:
    """FormatError listing the expected columns unless `header` holds exactly `expected`."""
    if list(header) == list(expected):
        return
    missing = [c for c in expected if c not in header]
    unknown = [c for c in header if c not in expected]
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    if unknown:
        parts.append(f"unknown {', '.join(unknown)}")
    if not parts:
        parts.append("columns in an unexpected order")
    raise FormatError(
        f"not a {what} file: {'; '.join(parts)}; expected columns: {','.join(expected)}",
        path=path,
        line=1,
    )


def read_csv(
    path: str,
    header: Sequence[str],
    column_types: dict[str, pa.DataType],
    include: Sequence[str],
) -> pa.Table:
    """Read a plain or gzip CSV with pyarrow (multi-threaded), typed as `column_types`.

    Columns not in `column_types` are read as strings with empty fields as nulls.
    """
    compression = "gzip" if is_gzip(path) else None
    convert = pcsv.ConvertOptions(
        column_types=column_types,
        include_columns=list(include),
        # Only an empty field is missing: "NaN" or "null" must reach the decimal check
        # and be refused as not a number rather than pass as an absent value.
        null_values=[""],
        strings_can_be_null=True,
        check_utf8=False,
    )
    try:
        with pa.input_stream(path, compression=compression) as stream:
            table = pcsv.read_csv(stream, convert_options=convert)
    except pa.ArrowInvalid as exc:
        _locate_csv_error(path, header, column_types, compression, exc)
        raise  # unreachable: the call above always raises
    except (OSError, EOFError, zlib.error) as exc:
        what = "truncated or corrupt gzip file" if compression else "cannot read the file"
        raise FormatError(f"{what} ({exc})", path=path) from None
    if list(table.column_names) != list(include):
        table = table.select(list(include))
    return table


def _locate_csv_error(
    path: str,
    header: Sequence[str],
    column_types: dict[str, pa.DataType],
    compression: str | None,
    exc: Exception,
) -> None:
    """Slow path after pyarrow refused a file: find the first bad line and raise about it."""
    opener = gzip.open if compression else open
    ncols = len(header)
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as f:
            f.readline()
            for lineno, line in enumerate(f, start=2):
                fields = line.rstrip("\r\n").split(",")
                if len(fields) != ncols and line.strip():
                    raise DataError(
                        f"{len(fields)} fields where the header has {ncols}", path=path, line=lineno
                    )
                for name, typ in column_types.items():
                    if name not in header or len(fields) != ncols:
                        continue
                    value = fields[header.index(name)]
                    if value == "":
                        continue  # nulls are reported later as missing values
                    if pa.types.is_integer(typ) and not _is_int(value):
                        raise DataError(
                            f"{value!r} is not an integer", path=path, line=lineno, field=name
                        )
                    if pa.types.is_boolean(typ) and value.lower() not in (
                        "true",
                        "false",
                        "1",
                        "0",
                    ):
                        raise DataError(
                            f"{value!r} is not true or false", path=path, line=lineno, field=name
                        )
    except (OSError, EOFError, zlib.error) as io_exc:
        raise FormatError(f"truncated or corrupt file ({io_exc})", path=path) from None
    raise FormatError(f"unreadable CSV ({exc})", path=path) from None


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


# --- Row bookkeeping -------------------------------------------------------------------------


@dataclass
class Rows:
    """Maps a row of the concatenated stream back to its file and line (or row)."""

    paths: list[str]
    counts: list[int]
    row_offset: int = 2
    """File line of a file's row 0: 2 for a CSV with one header line."""
    unit: str = "line"
    """`line` for text files, `row` for Parquet (0-based row index, no line numbers)."""
    order: np.ndarray | None = None
    """After a repair sort: the pre-sort position of each row."""
    starts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.starts = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])

    @property
    def total(self) -> int:
        """Rows in all files."""
        return int(self.starts[-1])

    def file_index(self) -> np.ndarray:
        """For every (pre-sort) row, the index of its file."""
        return np.repeat(np.arange(len(self.counts), dtype=np.int32), self.counts)

    def locate(self, i: int) -> tuple[str, int]:
        """(path, line) of the row now at position `i`."""
        if self.order is not None:
            i = int(self.order[i])
        f = int(np.searchsorted(self.starts, i, side="right") - 1)
        return self.paths[f], i - int(self.starts[f]) + self.row_offset

    def error(self, i: int, message: str, field: str | None = None) -> DataError:
        """A DataError naming the file and line (or row) of stream position `i`."""
        path, line = self.locate(i)
        return where_error(path, line, message, field, self.unit)


def where_error(
    path: str, line: int, message: str, field: str | None = None, unit: str = "line"
) -> DataError:
    """DataError for a line of a text file, or a row of a Parquet file."""
    if unit == "line":
        return DataError(message, path=path, line=line, field=field)
    return DataError(f"row {line}: {message}", path=path, field=field)


# --- Column conversion -----------------------------------------------------------------------


def first_null(col: pa.ChunkedArray | pa.Array) -> int:
    """Index of the first null, or -1."""
    if col.null_count == 0:
        return -1
    return int(np.flatnonzero(np.asarray(pc.is_null(col)))[0])


def int_column(
    col: pa.ChunkedArray, path: str, name: str, row_offset: int = 2, unit: str = "line"
) -> np.ndarray:
    """An int64 column as numpy; DataError naming the first missing value."""
    i = first_null(col)
    if i >= 0:
        raise where_error(path, i + row_offset, "missing value", name, unit)
    return np.asarray(col.to_numpy(), dtype=np.int64)


def dictionary_of(col: pa.ChunkedArray | pa.Array) -> tuple[list, np.ndarray]:
    """(distinct values in order of appearance, int64 index of each row's value)."""
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col])
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    # Unification appends each chunk's new values: the order of first appearance is kept.
    col = col.unify_dictionaries()
    if col.num_chunks == 0:
        return [], np.zeros(0, dtype=np.int64)
    values = col.chunk(0).dictionary.to_pylist()
    idx = [ch.indices.to_numpy(zero_copy_only=False) for ch in col.chunks]
    return values, np.concatenate(idx).astype(np.int64, copy=False)


def constant(value: str, n: int) -> pa.ChunkedArray:
    """A column of `n` copies of one string, as a dictionary array (no per-row strings)."""
    indices = pa.array(np.zeros(n, dtype=np.int32))
    return pa.chunked_array([pa.DictionaryArray.from_arrays(indices, pa.array([value]))])


def coded_column(
    col: pa.ChunkedArray,
    lookup: dict[str, int],
    path: str,
    name: str,
    row_offset: int = 2,
    unit: str = "line",
) -> np.ndarray:
    """Map a string (or dictionary-typed) column through `lookup` to int8 codes, vectorised.

    DataError names the first missing or unknown value and lists the known ones.
    """
    i = first_null(col)
    if i >= 0:
        raise where_error(path, i + row_offset, "missing value", name, unit)
    values, idx = dictionary_of(col)
    lut = np.array([lookup.get(v, BAD_CODE) for v in values], dtype=np.int8)
    out = lut[idx] if len(idx) else np.zeros(0, dtype=np.int8)
    bad = np.flatnonzero(out == BAD_CODE)
    if len(bad):
        i = int(bad[0])
        known = ", ".join(repr(k) for k in lookup)
        raise where_error(
            path, i + row_offset, f"unknown value {col[i].as_py()!r} (expected {known})", name, unit
        )
    return out


def key_ids(
    cols: Sequence[pa.ChunkedArray],
    keys: dict[tuple, int],
    path: str,
    names: Sequence[str],
    row_offset: int = 2,
    unit: str = "line",
) -> np.ndarray:
    """Ids (uint32) of the tuples formed by string columns, assigned in order of appearance.

    `keys` maps tuples to ids and is extended in place, so that several files share ids.
    Cheap when at most one column varies (one exchange per Tardis file: only the symbol).
    DataError names the first missing value.
    """
    for c, name in zip(cols, names, strict=True):
        i = first_null(c)
        if i >= 0:
            raise where_error(path, i + row_offset, "missing value", name, unit)
    n = len(cols[0])
    if n == 0:
        return np.zeros(0, dtype=np.uint32)
    decoded = [dictionary_of(c) for c in cols]
    varying = [k for k, (d, _) in enumerate(decoded) if len(d) > 1]
    if len(varying) <= 1:
        # Each row's tuple is fixed by the one varying column, whose values are in order.
        v = varying[0] if varying else 0
        values, idx = decoded[v]
        tuples = [tuple(d[0] if k != v else x for k, (d, _) in enumerate(decoded)) for x in values]
    else:
        code = np.zeros(n, dtype=np.int64)
        for d, ix in decoded:
            code = code * len(d) + ix
        present, first, idx = np.unique(code, return_index=True, return_inverse=True)
        tuples = []
        for c in present.tolist():
            parts = []
            for d, _ in reversed(decoded):
                c, r = divmod(c, len(d))
                parts.append(d[r])
            tuples.append(tuple(reversed(parts)))
        # Register in order of first appearance so that ids do not depend on the sort.
        for j in np.argsort(first, kind="stable").tolist():
            keys.setdefault(tuples[j], len(keys))
    lut = np.array([keys.setdefault(t, len(keys)) for t in tuples], dtype=np.uint32)
    return lut[idx]


def check_null_pairs(
    a: pa.ChunkedArray, b: pa.ChunkedArray, path: str, names: tuple[str, str], row_offset: int = 2
) -> np.ndarray:
    """Rows where both are null (a missing level or side); DataError if only one of them is."""
    na = np.asarray(pc.is_null(a)) if a.null_count else np.zeros(len(a), bool)
    nb = np.asarray(pc.is_null(b)) if b.null_count else np.zeros(len(b), bool)
    odd = np.flatnonzero(na != nb)
    if len(odd):
        i = int(odd[0])
        empty, given = (names[0], names[1]) if na[i] else (names[1], names[0])
        raise DataError(f"{empty!r} is empty but {given!r} is not", path=path, line=i + row_offset)
    return na


# --- Prices and sizes ------------------------------------------------------------------------


@dataclass
class Grid:
    """Per-instrument tick or lot steps, for converting a column of decimal text exactly."""

    steps: list[Decimal]
    what: str  # "tick size" or "lot size"

    @property
    def scale(self) -> int:
        """Decimal places that hold every step exactly (the finest one)."""
        return max((max(0, -s.normalize().as_tuple().exponent) for s in self.steps), default=0)

    def convert(
        self,
        values: pa.ChunkedArray | pa.Array,
        ids: np.ndarray,
        path: str,
        name: str,
        *,
        row_offset: int = 2,
        unit: str = "line",
        nonnegative: bool = False,
    ) -> np.ndarray:
        """Decimal text to int64 steps of each row's instrument; DataError names the row."""
        scale = self.scale
        try:
            units = to_units(values, scale, path=path, field=name, row_offset=row_offset)
        except DataError as exc:
            if exc.line is None:
                raise
            reason = exc.reason
            if "decimal places" in reason:
                steps = ", ".join(str(s) for s in self.steps)
                reason += f": off the grid of the {self.what} {steps}"
            raise where_error(path, exc.line, reason, name, unit) from None
        if nonnegative and len(units) and units.min() < 0:
            i = int(np.flatnonzero(units < 0)[0])
            raise where_error(
                path,
                i + row_offset,
                f"negative value {format_units(int(units[i]), scale)}",
                name,
                unit,
            )
        step_units = np.array([int(s.scaleb(scale)) for s in self.steps], dtype=np.int64)
        if len(units) == 0 or (step_units == 1).all():
            return units
        per_row = step_units[ids] if len(step_units) > 1 else step_units[0]
        q, r = np.divmod(units, per_row)
        if r.any():
            i = int(np.flatnonzero(r)[0])
            step = self.steps[int(ids[i])] if len(self.steps) > 1 else self.steps[0]
            raise where_error(
                path,
                i + row_offset,
                f"{format_units(int(units[i]), scale)} is not a multiple of the {self.what} {step}",
                name,
                unit,
            )
        return q


def infer_instruments(
    keys: dict[tuple[str, str], int],
    price_cols: Sequence[tuple[pa.ChunkedArray, np.ndarray]],
    size_cols: Sequence[tuple[pa.ChunkedArray, np.ndarray]],
    instrument: Instrument | None,
) -> list[Instrument]:
    """One Instrument per (venue, symbol) key: the given one, or steps inferred from the data.

    The inferred tick (lot) is the finest decimal step holding every price (size) of that
    instrument exactly: the data's precision, which may be finer than the venue's real tick.
    A given `instrument` is used as is for a single-instrument stream and lends its steps,
    kind and multiplier to every instrument of a multi-instrument one.
    """
    out = []
    for (venue, symbol), iid in sorted(keys.items(), key=lambda kv: kv[1]):
        if instrument is not None:
            if len(keys) == 1:
                out.append(instrument)
            else:
                out.append(
                    Instrument(
                        symbol=symbol,
                        venue=venue,
                        tick_size=instrument.tick_size,
                        lot_size=instrument.lot_size,
                        kind=instrument.kind,
                        contract_multiplier=instrument.contract_multiplier,
                    )
                )
            continue
        tick = infer_step(*_distinct(price_cols, iid, len(keys)))
        lot = infer_step(*_distinct(size_cols, iid, len(keys)))
        out.append(Instrument(symbol=symbol, venue=venue, tick_size=tick, lot_size=lot))
    return out


def _distinct(
    cols: Sequence[tuple[pa.ChunkedArray, np.ndarray]], iid: int, n_keys: int
) -> list[pa.Array]:
    """The distinct non-null values of each column on the rows of instrument `iid`.

    Inferring the precision from distinct values is exact and much cheaper than from every
    row: a day of trades has millions of rows but only thousands of distinct prices.
    """
    out = []
    for col, ids in cols:
        if n_keys > 1:
            col = col.filter(pa.array(ids == iid))
        if len(col) == 0:
            continue
        values = pc.unique(col)
        if values.null_count:
            values = values.drop_null()
        if len(values):
            out.append(values)
    return out


# --- Ordering --------------------------------------------------------------------------------


def order_rows(ts: np.ndarray, rows: Rows, repair: str | None, field: str) -> np.ndarray | None:
    """Check that `ts` never goes backwards; with repair='sort' return the stable sort order.

    Returns None when the rows are already in order (nothing to do).
    """
    if len(ts) < 2:
        return None
    back = np.flatnonzero(ts[1:] < ts[:-1])
    if len(back) == 0:
        return None
    if repair != "sort":
        i = int(back[0]) + 1
        raise rows.error(
            i,
            f"timestamps go backwards: {int(ts[i])} after {int(ts[i - 1])} ({len(back)} such "
            "rows; pass repair='sort' to sort them stably and report the count)",
            field,
        )
    return np.argsort(ts, kind="stable")


def moved_rows(order: np.ndarray | None) -> int:
    """How many rows a sort moved from their place."""
    if order is None:
        return 0
    return int(np.count_nonzero(order != np.arange(len(order))))


def run_ends(*keys: np.ndarray) -> np.ndarray:
    """True on the last row of every run of equal consecutive key tuples."""
    n = len(keys[0])
    last = np.ones(n, dtype=bool)
    if n > 1:
        diff = np.zeros(n - 1, dtype=bool)
        for k in keys:
            diff |= k[1:] != k[:-1]
        last[:-1] = diff
    return last


def run_starts(*keys: np.ndarray) -> np.ndarray:
    """True on the first row of every run of equal consecutive key tuples."""
    n = len(keys[0])
    first = np.ones(n, dtype=bool)
    if n > 1:
        first[1:] = run_ends(*keys)[:-1]
    return first


def previous_in_group(values: np.ndarray, group: np.ndarray, fill) -> np.ndarray:
    """For each row, `values` of the previous row of the same group (`fill` for the first)."""
    n = len(values)
    out = np.full(n, fill, dtype=values.dtype)
    if n < 2:
        return out
    if (group == group[0]).all():
        out[1:] = values[:-1]
        return out
    order = np.argsort(group, kind="stable")
    g, v = group[order], values[order]
    prev = np.full(n, fill, dtype=values.dtype)
    same = g[1:] == g[:-1]
    prev[1:] = np.where(same, v[:-1], fill)
    out[order] = prev
    return out


def with_inserted(before: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Positions after inserting one extra event before each row where `before` is True.

    Returns (position of each row, positions of the inserted events, total length).
    """
    shift = np.cumsum(before, dtype=np.int64)
    pos = np.arange(len(before), dtype=np.int64) + shift
    return pos, pos[before] - 1, len(before) + int(shift[-1] if len(shift) else 0)


def fill(
    ev: np.ndarray,
    at: np.ndarray | slice,
    *,
    ts_exch,
    ts_local,
    instrument,
    kind,
    side,
    flags,
    price=0,
    size=0,
) -> None:
    """Write columns (arrays or scalars) into the events at positions `at`."""
    ev["ts_exch"][at] = ts_exch
    ev["ts_local"][at] = ts_local
    ev["instrument"][at] = instrument
    ev["kind"][at] = kind
    ev["side"][at] = side
    ev["flags"][at] = flags
    ev["price"][at] = price
    ev["size"][at] = size


def book_rows(
    *,
    clear_before: np.ndarray,
    snap: np.ndarray,
    last: np.ndarray,
    ts_exch: np.ndarray,
    ts_local: np.ndarray,
    instrument: np.ndarray,
    side: np.ndarray,
    price: np.ndarray,
    size: np.ndarray,
    extra_flags: int = 0,
) -> np.ndarray:
    """Book rows (snapshot rows where `snap`, deltas elsewhere), with a CLEAR inserted
    before each row marked `clear_before`; `extra_flags` go on every event."""
    pos, clear_pos, total = with_inserted(clear_before)
    ev = empty(total)
    flags = (np.where(snap, FLAG_SNAPSHOT, 0) | np.where(last, FLAG_LAST, 0) | extra_flags).astype(
        np.uint16
    )
    fill(
        ev,
        pos,
        ts_exch=ts_exch,
        ts_local=ts_local,
        instrument=instrument,
        kind=np.where(snap, KIND_BOOK_SNAPSHOT, KIND_BOOK_DELTA),
        side=side,
        flags=flags,
        price=price,
        size=size,
    )
    fill(
        ev,
        clear_pos,
        ts_exch=ts_exch[clear_before],
        ts_local=ts_local[clear_before],
        instrument=instrument[clear_before],
        kind=KIND_BOOK_CLEAR,
        side=SIDE_NONE,
        flags=FLAG_SNAPSHOT | extra_flags,
    )
    return ev


def empty(n: int) -> np.ndarray:
    """Uninitialised events: every field is written by the builders (cheaper than zeros)."""
    return np.empty(n, dtype=EVENT_DTYPE)


def concat(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """np.concatenate that avoids a copy for a single part."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def take(arrays: dict[str, np.ndarray], order: np.ndarray | None) -> dict[str, np.ndarray]:
    """Reorder every column of a row table."""
    if order is None:
        return arrays
    return {k: v[order] for k, v in arrays.items()}
