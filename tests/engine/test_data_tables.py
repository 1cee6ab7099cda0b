"""Parquet and CSV event files: lossless round trips, exact decimals, named errors."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.data.io import engine_format, open_events, save_events
from engine.data.stream import EventStream
from engine.data.tables import (
    CSV_COLUMNS,
    is_event_csv,
    is_event_parquet,
    read_csv,
    read_parquet,
    write_csv,
    write_parquet,
)
from engine.errors import DataError, FormatError, UsageError
from engine.events import (
    EVENT_DTYPE,
    FLAG_LAST,
    FLAG_SNAPSHOT,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_QUOTE,
    KIND_TRADE,
    SIDE_BUY,
    SIDE_NONE,
    SIDE_SELL,
)
from engine.instruments import Instrument, InstrumentRegistry
from engine.synthetic import SyntheticConfig, generate

BTC = Instrument("BTCUSDT", "binance", Decimal("0.01"), Decimal("0.00001"))
# A venue tick of 0.5 and lot of 10: every price ends in .0 or .5, every size in 0.
DERIBIT = Instrument("BTC-PERPETUAL", "deribit", Decimal("0.5"), Decimal("10"), kind="perpetual")


def mixed_stream() -> EventStream:
    """Two instruments with different grids, every kind and side, negative and zero values."""
    rows = [
        # ts_local, instrument, kind, side, price ticks, size lots, flags
        (1_000, 0, KIND_BOOK_CLEAR, SIDE_NONE, 0, 0, FLAG_SNAPSHOT),
        (1_000, 0, KIND_BOOK_DELTA, SIDE_BUY, 6_183_763, 123_456, 0),
        (1_000, 0, KIND_BOOK_DELTA, SIDE_SELL, 6_183_764, 1, FLAG_LAST),
        (2_000, 1, KIND_TRADE, SIDE_SELL, 12_843, 7, FLAG_LAST),
        (2_000, 1, KIND_TRADE, SIDE_NONE, -3, 1, FLAG_LAST),  # a negative price (spreads)
        (3_000, 0, KIND_QUOTE, SIDE_BUY, 6_183_700, 0, 0),
        (3_000, 0, KIND_QUOTE, SIDE_SELL, 6_183_800, 99_999_999, FLAG_LAST),
        (4_000, 1, KIND_BOOK_DELTA, SIDE_BUY, 12_842, 0, FLAG_LAST),
    ]
    ev = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for i, (ts, inst, kind, side, price, size, flags) in enumerate(rows):
        ev[i] = (ts - 250, ts, price, size, inst, kind, side, flags)
    registry = InstrumentRegistry([BTC, DERIBIT])
    return EventStream(ev, registry, {"source": ["hand.csv"], "note": "mixed"})


def synthetic() -> EventStream:
    return generate(SyntheticConfig(n_events=3_000, seed=5, n_instruments=2))


def same_events(a: EventStream, b: EventStream) -> None:
    assert b.events.dtype == EVENT_DTYPE
    assert b.events.tobytes() == a.events.tobytes()
    assert b.instruments.to_list() == a.instruments.to_list()


# --- Parquet ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [mixed_stream, synthetic])
def test_parquet_round_trip_is_byte_identical(tmp_path: Path, make) -> None:
    stream = make()
    path = tmp_path / "a.parquet"
    write_parquet(stream, path)
    assert is_event_parquet(path)
    assert engine_format(path) == "parquet"
    back = read_parquet(path)
    same_events(stream, back)
    # Provenance: the stream's own meta, with the file it was read from as the source.
    assert back.meta == {**stream.meta, "source": [str(path)]}
    # Raw integer columns, one per field, nothing else.
    schema = pq.read_schema(path)
    assert schema.names == list(EVENT_DTYPE.names)
    assert schema.field("price").type == pa.int64()
    assert schema.field("flags").type == pa.uint16()


def test_parquet_empty_stream(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    write_parquet(EventStream(np.zeros(0, EVENT_DTYPE), InstrumentRegistry([BTC]), {}), path)
    back = read_parquet(path)
    assert len(back) == 0 and back.instruments.to_list() == [BTC.to_dict()]


def test_non_cockpit_parquet_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "vendor.parquet"
    pq.write_table(pa.table({"timestamp": [1, 2], "price": [1.5, 2.5]}), path)
    assert not is_event_parquet(path)
    assert engine_format(path) is None
    with pytest.raises(FormatError) as err:
        read_parquet(path)
    assert err.value.path == str(path)
    assert "without cockpit metadata" in str(err.value)
    with pytest.raises(FormatError, match="not a cockpit event file"):
        open_events(path)


def test_parquet_with_metadata_but_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "partial.parquet"
    table = pa.table({"ts_local": [1, 2]}).replace_schema_metadata(
        {b"cockpit.instruments": json.dumps([BTC.to_dict()])}
    )
    pq.write_table(table, path)
    with pytest.raises(FormatError, match="missing columns") as err:
        read_parquet(path)
    assert err.value.path == str(path)


def test_truncated_parquet_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.parquet"
    write_parquet(mixed_stream(), path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(FormatError, match="unreadable Parquet") as err:
        read_parquet(path)
    assert err.value.path == str(path)


def test_parquet_backwards_time_is_refused_or_sorted(tmp_path: Path) -> None:
    stream = mixed_stream()
    ev = stream.events.copy()
    ev[[3, 5]] = ev[[5, 3]]  # times 1000 x3, 3000, 2000, 2000, 3000, 4000
    path = tmp_path / "back.parquet"
    write_parquet(EventStream(ev, stream.instruments, {}), path)
    with pytest.raises(DataError) as err:
        read_parquet(path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 4, "ts_local")
    fixed = read_parquet(path, repair="sort")
    assert np.all(np.diff(fixed.events["ts_local"]) >= 0)
    # Stable: equal times keep their file order (the trade rows, then the two quote rows).
    assert fixed.events["ts_local"].tolist() == [1_000] * 3 + [2_000] * 2 + [3_000] * 2 + [4_000]
    assert fixed.meta["repairs"] == {"sorted_rows": 3}


# --- CSV -------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [mixed_stream, synthetic])
def test_csv_round_trip_with_sidecar_is_byte_identical(tmp_path: Path, make) -> None:
    stream = make()
    path = tmp_path / "a.csv"
    write_csv(stream, path)
    sidecar = Path(str(path) + ".instruments.json")
    assert json.loads(sidecar.read_text()) == stream.instruments.to_list()
    assert is_event_csv(path) and engine_format(path) == "csv"
    back = read_csv(path)
    same_events(stream, back)
    assert back.meta == {"source": [str(path)], "format": "cockpit:csv"}


def test_csv_text_is_exact_decimals_and_names(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    write_csv(mixed_stream(), path)
    lines = path.read_text().splitlines()
    assert lines[0].replace('"', "").split(",") == CSV_COLUMNS
    cells = [line.replace('"', "").split(",") for line in lines[1:]]
    assert cells[0] == [
        "750",
        "1000",
        "binance",
        "BTCUSDT",
        "book_clear",
        "none",
        "0.00",
        "0.00000",
        "2",
    ]
    assert cells[1][4:8] == ["book_delta", "buy", "61837.63", "1.23456"]
    assert cells[3][2:8] == ["deribit", "BTC-PERPETUAL", "trade", "sell", "6421.5", "70"]
    assert cells[4][6:8] == ["-1.5", "10"]
    assert cells[6][7] == "999.99999"
    assert len(cells) == 8


def test_csv_without_sidecar_infers_instruments_and_keeps_values_exact(tmp_path: Path) -> None:
    stream = mixed_stream()
    path = tmp_path / "a.csv"
    write_csv(stream, path)
    Path(str(path) + ".instruments.json").unlink()
    back = read_csv(path)
    # The inferred grid is the data's finest decimal step, not the venue's tick.
    inferred = {(i.venue, i.symbol): (str(i.tick_size), str(i.lot_size)) for i in back.instruments}
    assert inferred == {
        ("binance", "BTCUSDT"): ("0.01", "0.00001"),
        ("deribit", "BTC-PERPETUAL"): ("0.1", "1"),
    }
    a, b = stream.events, back.events
    for name in ("ts_exch", "ts_local", "instrument", "kind", "side", "flags"):
        assert b[name].tolist() == a[name].tolist(), name
    # Ticks differ for deribit (0.5 vs 0.1), the prices and sizes they stand for do not.
    for i in range(len(a)):
        src, dst = (
            stream.instruments[int(a["instrument"][i])],
            back.instruments[int(b["instrument"][i])],
        )
        assert dst.ticks_to_price(int(b["price"][i])) == src.ticks_to_price(int(a["price"][i]))
        assert dst.lots_to_size(int(b["size"][i])) == src.lots_to_size(int(a["size"][i]))
    assert b["price"][3] == 64_215 and a["price"][3] == 12_843  # 6421.5
    assert b["size"][3] == 70 and a["size"][3] == 7


def test_csv_without_sidecar_synthetic_market_is_still_byte_identical(tmp_path: Path) -> None:
    stream = synthetic()
    path = tmp_path / "a.csv"
    write_csv(stream, path)
    Path(str(path) + ".instruments.json").unlink()
    back = read_csv(path)
    # 3,000 events use every cent and every lot digit: the inferred grid is the real one.
    assert [(str(i.tick_size), str(i.lot_size)) for i in back.instruments] == [
        ("0.01", "0.001")
    ] * 2
    assert back.events.tobytes() == stream.events.tobytes()


def write_and_edit(tmp_path: Path, row: int, column: str, value: str) -> Path:
    """Write the mixed stream as CSV and set one cell (row 0 is file line 2)."""
    path = tmp_path / "a.csv"
    write_csv(mixed_stream(), path)
    lines = path.read_text().splitlines()
    cells = lines[row + 1].split(",")
    cells[CSV_COLUMNS.index(column)] = value
    lines[row + 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("row", "column", "value", "words"),
    [
        (3, "kind", '"trad"', "unknown kind 'trad'"),
        (6, "kind", '"QUOTE"', "unknown kind 'QUOTE'"),
        (2, "side", '"bid"', "unknown side 'bid'"),
        (5, "side", "", "unknown side ''"),
    ],
)
def test_csv_unknown_kind_or_side_names_the_line(
    tmp_path: Path, row: int, column: str, value: str, words: str
) -> None:
    path = write_and_edit(tmp_path, row, column, value)
    with pytest.raises(DataError) as err:
        read_csv(path)
    exc = err.value
    assert (exc.path, exc.line, exc.field) == (str(path), row + 2, column)
    assert words in str(exc)
    assert str(exc).startswith(f"{path}, line {row + 2}, field {column!r}: ")


@pytest.mark.parametrize(
    ("row", "column", "value", "words"),
    [
        (1, "price", "61837.635", "has more than 2 decimal places"),  # finer than tick 0.01
        (3, "price", "6421.7", "not a multiple of the tick size 0.5"),  # second instrument
        (4, "size", "abc", "not a number"),
        (7, "size", "-10", "negative size"),
    ],
)
def test_csv_bad_values_name_the_line(
    tmp_path: Path, row: int, column: str, value: str, words: str
) -> None:
    path = write_and_edit(tmp_path, row, column, value)
    with pytest.raises(DataError) as err:
        read_csv(path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), row + 2, column)
    assert words in str(err.value)


def test_csv_backwards_time_is_refused_or_sorted(tmp_path: Path) -> None:
    path = write_and_edit(tmp_path, 7, "ts_local", "1500")
    with pytest.raises(DataError) as err:
        read_csv(path)
    assert (err.value.line, err.value.field) == (9, "ts_local")
    assert "timestamps go backwards" in str(err.value)
    fixed = read_csv(path, repair="sort")
    assert fixed.events["ts_local"].tolist() == [1_000] * 3 + [1_500] + [2_000] * 2 + [3_000] * 2
    assert fixed.meta["repairs"] == {"sorted_rows": 5}
    assert fixed.events["kind"][3] == KIND_BOOK_DELTA and fixed.events["instrument"][3] == 1
    with pytest.raises(UsageError):
        read_csv(path, repair="shuffle")


def test_csv_other_columns_are_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    assert not is_event_csv(path)
    with pytest.raises(FormatError, match="columns") as err:
        read_csv(path)
    assert err.value.path == str(path)


def test_save_events_picks_the_format_from_the_suffix(tmp_path: Path) -> None:
    stream = mixed_stream()
    for suffix, fmt in ((".evt", "native"), (".parquet", "parquet"), (".csv", "csv")):
        path = tmp_path / f"a{suffix}"
        assert save_events(stream, path) == fmt
        assert engine_format(path) == fmt
        same_events(stream, open_events(path))
    assert save_events(stream, tmp_path / "x.data", "csv") == "csv"
    assert engine_format(tmp_path / "x.data") == "csv"
    # Parquet is told by its PAR1 magic, not its name.
    assert save_events(stream, tmp_path / "y.bin", "parquet") == "parquet"
    assert engine_format(tmp_path / "y.bin") == "parquet"
    same_events(stream, open_events(tmp_path / "y.bin"))
    with pytest.raises(UsageError, match="suffix '.txt'"):
        save_events(stream, tmp_path / "a.txt")
    with pytest.raises(UsageError, match="unknown output format"):
        save_events(stream, tmp_path / "a.evt", "feather")
    with pytest.raises(UsageError, match="no such file"):
        open_events(tmp_path / "missing.evt")
