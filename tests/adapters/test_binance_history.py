"""Binance historical downloads: tick-level depth CSV and vendor Parquet trades/quotes."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adapters.binance_history import (
    is_binance_depth_csv,
    is_vendor_parquet,
    load_binance_depth_csv,
    load_vendor_parquet,
    sniff_vendor_parquet,
)
from engine.errors import DataError, FormatError, UsageError
from engine.events import (
    FLAG_LAST,
    FLAG_LOCAL_TS_MISSING,
    FLAG_SNAPSHOT,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    KIND_QUOTE,
    KIND_TRADE,
    SIDE_BUY,
    SIDE_NONE,
    SIDE_SELL,
)
from engine.instruments import Instrument

FIXTURES = Path(__file__).parent / "fixtures"


def fx(name: str) -> Path:
    return FIXTURES / name


# --- Depth CSV: recorded samples -------------------------------------------------------------


@pytest.fixture(scope="module")
def csv_dir(shared_data: Path) -> Path:
    return shared_data / "binance-csv"


def test_depth_snapshot_file(csv_dir: Path) -> None:
    stream = load_binance_depth_csv(csv_dir / "btcusdt-depth-snap.csv")
    ev = stream.events
    assert len(ev) == 101 and stream.meta["rows"] == 100
    assert stream.meta["format"] == "binance:depth_csv"
    assert ev[0]["kind"] == KIND_BOOK_CLEAR and ev[0]["side"] == SIDE_NONE
    assert (ev["kind"][1:] == KIND_BOOK_SNAPSHOT).all()
    assert (ev["side"][1:] == SIDE_BUY).all()  # the sample holds bids only
    assert (ev["flags"] & FLAG_SNAPSHOT).all()
    assert (ev["flags"] & FLAG_LOCAL_TS_MISSING).all()
    assert (ev["ts_local"] == ev["ts_exch"]).all()
    assert ev[0]["ts_exch"] == 1_667_346_579_146_000_000
    assert np.flatnonzero(ev["flags"] & FLAG_LAST).tolist() == [100]
    inst = stream.instruments[0]
    assert (inst.venue, inst.symbol) == ("binance", "BTCUSDT")
    assert inst.tick_size == Decimal("0.1") and inst.lot_size == Decimal("0.001")
    # First row: 20377.00 x 1.770.
    assert ev[1]["price"] == 203_770 and ev[1]["size"] == 1_770
    assert stream.meta["sequence_gaps"] == 0


def test_depth_update_file(csv_dir: Path) -> None:
    stream = load_binance_depth_csv(csv_dir / "btcusdt-depth-update.csv")
    ev = stream.events
    assert len(ev) == 100
    assert (ev["kind"] == KIND_BOOK_DELTA).all()
    # All 100 rows share last_update_id 2098041696700: one message.
    assert np.flatnonzero(ev["flags"] & FLAG_LAST).tolist() == [99]
    assert np.count_nonzero(ev["side"] == SIDE_BUY) == 23
    assert np.count_nonzero(ev["size"] == 0) > 0  # qty 0 removes a level
    # The first message has no predecessor: its continuity cannot be checked.
    assert stream.meta["sequence_gaps"] == 0
    assert stream.meta["sequence_unchecked"] == 1


def test_depth_samples_together_report_the_gap(csv_dir: Path) -> None:
    snap, update = csv_dir / "btcusdt-depth-snap.csv", csv_dir / "btcusdt-depth-update.csv"
    stream = load_binance_depth_csv([snap, update])
    assert len(stream) == 201
    assert stream.meta["sequence_gaps"] == 1
    assert stream.meta["gap_lines"] == [f"{update}:2"]
    assert stream.meta["source"] == [str(snap), str(update)]
    with pytest.raises(DataError) as err:
        load_binance_depth_csv([snap, update], strict=True)
    assert (err.value.path, err.value.line, err.value.field) == (str(update), 2, "pu")
    assert "sequence gap" in str(err.value)


def test_depth_gzip_round_trip(csv_dir: Path, tmp_path: Path) -> None:
    src = csv_dir / "btcusdt-depth-update.csv"
    gz = tmp_path / "depth.csv.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    assert (
        load_binance_depth_csv(gz).events.tobytes() == load_binance_depth_csv(src).events.tobytes()
    )


# --- Depth CSV: fixtures ---------------------------------------------------------------------


def test_depth_sequence_rules() -> None:
    stream = load_binance_depth_csv(fx("binance_depth_sequence.csv"))
    ev = stream.events
    meta = stream.meta
    # Line 4 ends (u=95) before the snapshot (100): stale, dropped and counted.
    assert meta["skipped"] == {"stale_rows": 1}
    assert meta["rows"] == 8 and len(ev) == 8
    assert (
        ev["kind"].tolist()
        == [KIND_BOOK_CLEAR, KIND_BOOK_SNAPSHOT, KIND_BOOK_SNAPSHOT] + [KIND_BOOK_DELTA] * 5
    )
    assert np.flatnonzero(ev["flags"] & FLAG_LAST).tolist() == [2, 4, 5, 6, 7]
    # Line 5 straddles the snapshot (U=96 <= 101): continuous. Line 7 continues (pu=103).
    # Line 8 has pu=112 after u=110: a gap. Line 9 has pu=-1: unchecked.
    assert meta["sequence_gaps"] == 1
    assert meta["gap_lines"] == [f"{fx('binance_depth_sequence.csv')}:8"]
    assert meta["sequence_unchecked"] == 1
    with pytest.raises(DataError) as err:
        load_binance_depth_csv(fx("binance_depth_sequence.csv"), strict=True)
    assert (err.value.line, err.value.field) == (8, "pu")


def test_depth_repair_sort() -> None:
    stream = load_binance_depth_csv(fx("binance_depth_backwards.csv"), repair="sort")
    assert stream.meta["repairs"] == {"sorted_rows": 2}
    assert (np.diff(stream.events["ts_local"]) >= 0).all()


def test_depth_given_instrument() -> None:
    inst = Instrument("BTCUSDT", "binance", Decimal("0.1"), Decimal("0.001"), kind="perpetual")
    stream = load_binance_depth_csv(fx("binance_depth_sequence.csv"), instrument=inst)
    assert stream.instruments[0] is inst
    with pytest.raises(DataError) as err:
        load_binance_depth_csv(
            fx("binance_depth_sequence.csv"),
            instrument=Instrument("BTCUSDT", "binance", Decimal("0.5"), Decimal("0.001")),
        )
    assert (err.value.line, err.value.field) == (3, "price")
    assert "tick size 0.5" in str(err.value)


@pytest.mark.parametrize(
    ("name", "error", "line", "field", "words"),
    [
        (
            "binance_depth_bad_column.csv",
            FormatError,
            1,
            None,
            ["missing qty", "unknown quantity", "symbol,timestamp,first_update_id"],
        ),
        ("binance_depth_nan_price.csv", DataError, 3, "price", ["'nan'", "not a finite"]),
        ("binance_depth_negative_qty.csv", DataError, 3, "qty", ["negative", "-2"]),
        ("binance_depth_unknown_side.csv", DataError, 3, "side", ["'s'", "'b'", "'a'"]),
        (
            "binance_depth_unknown_update_type.csv",
            DataError,
            3,
            "update_type",
            ["'delete'", "'snap'"],
        ),
        ("binance_depth_backwards.csv", DataError, 4, "timestamp", ["backwards"]),
        ("binance_depth_empty.csv", FormatError, None, None, ["empty file"]),
    ],
)
def test_depth_broken_files(name, error, line, field, words) -> None:
    path = fx(name)
    with pytest.raises(error) as err:
        load_binance_depth_csv(path)
    exc = err.value
    assert type(exc) is error
    assert (exc.path, exc.line, exc.field) == (str(path), line, field)
    for word in words:
        assert word in str(exc)


def test_depth_truncated_gzip(tmp_path: Path) -> None:
    rows = ["symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu"]
    rows += [f"BTCUSDT,{1000 + i},{i},{i},b,set,{20000 + i}.0,1.000,{i - 1}" for i in range(2000)]
    data = gzip.compress(("\n".join(rows) + "\n").encode())
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError) as err:
        load_binance_depth_csv(cut)
    assert err.value.path == str(cut) and "truncated" in str(err.value)


# --- Vendor Parquet: recorded samples --------------------------------------------------------


def test_parquet_trades(csv_dir: Path) -> None:
    path = csv_dir / "btcusdt-trades.parquet"
    stream = load_vendor_parquet(path)
    assert stream.meta["symbol_source"] == "file name"
    ev = stream.events
    table = pq.read_table(path)
    assert len(ev) == 2_001 and stream.meta["rows"] == 2_001
    assert stream.meta["format"] == "vendor_parquet:trades"
    assert (ev["kind"] == KIND_TRADE).all()
    assert (ev["flags"] == FLAG_LAST | FLAG_LOCAL_TS_MISSING).all()
    assert (ev["ts_local"] == ev["ts_exch"]).all()
    assert (np.diff(ev["ts_local"]) >= 0).all()
    # buyer_maker 'True': the buyer rested, the aggressor sold.
    maker = np.array(table["buyer_maker"].to_pylist()) == "True"
    assert (ev["side"][maker] == SIDE_SELL).all() and (ev["side"][~maker] == SIDE_BUY).all()
    assert ev[0]["side"] == SIDE_SELL and ev[1]["side"] == SIDE_BUY
    inst = stream.instruments[0]
    assert (inst.venue, inst.symbol) == ("binance", "BTCUSDT")
    assert inst.tick_size == Decimal("0.01") and inst.lot_size == Decimal("0.000001")
    assert ev[0]["price"] == 3_943_248 and ev[0]["size"] == 263  # 39432.48 x 0.000263
    # Stored as 0.00031099999999999997 (float noise), converted to exactly 0.000311.
    assert table["quantity"][2].as_py() == 0.00031099999999999997
    assert ev[2]["size"] == 311
    assert ev[0]["ts_exch"] == 1_610_064_000_278_000_000


def test_parquet_quotes(csv_dir: Path) -> None:
    stream = load_vendor_parquet(csv_dir / "btcusdt-quotes.parquet")
    ev = stream.events
    assert len(ev) == 902 and stream.meta["rows"] == 451
    assert (ev["kind"] == KIND_QUOTE).all()
    assert (ev["side"][0::2] == SIDE_BUY).all() and (ev["side"][1::2] == SIDE_SELL).all()
    assert (ev["flags"][1::2] & FLAG_LAST).all() and not (ev["flags"][0::2] & FLAG_LAST).any()
    assert (ev["flags"] & FLAG_LOCAL_TS_MISSING).all()
    assert stream.instruments[0].symbol == "BTCUSDT"  # 'BTC/USDT' in the file
    # First row: bid 39432.99 x 0.0031, ask 39433.62 x 0.066851.
    assert (ev[0]["price"], ev[0]["size"]) == (3_943_299, 3_100)
    assert (ev[1]["price"], ev[1]["size"]) == (3_943_362, 66_851)
    assert stream.meta["empty_quote_sides"] == 0


def test_parquet_floats_are_exact_decimals(csv_dir: Path) -> None:
    """Every size is the 15-digit decimal of its float, not the float's 17-digit noise."""
    path = csv_dir / "btcusdt-quotes.parquet"
    stream = load_vendor_parquet(path)
    lot = stream.instruments[0].lot_size
    table = pq.read_table(path)
    want = [Decimal(f"{v:.15g}") for v in table["bid_size"].to_pylist()]
    got = [stream.instruments[0].lots_to_size(int(x)) for x in stream.events["size"][0::2]]
    assert got == want
    assert lot == Decimal("0.000001")


# --- Vendor Parquet: fixtures written here ---------------------------------------------------


def trades_table(**overrides) -> pa.Table:
    cols = {
        "timestamp": pa.array([1_000, 2_000, 3_000], pa.timestamp("ms", tz="UTC")),
        "trade_id": pa.array([1, 2, 3], pa.int64()),
        "price": pa.array([100.5, 100.25, 100.75]),
        "quantity": pa.array([0.1, 0.2, 0.30000000000000004]),
        "buyer_maker": pa.array(["True", "False", "True"]),
    }
    cols.update(overrides)
    return pa.table(cols)


def write(tmp_path: Path, table: pa.Table, name: str = "t.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(table, path)
    return path


def test_parquet_fixture_trades(tmp_path: Path) -> None:
    stream = load_vendor_parquet(write(tmp_path, trades_table()), symbol="XYZUSDT", venue="v")
    ev = stream.events
    assert ev["price"].tolist() == [10_050, 10_025, 10_075]  # inferred tick 0.01
    assert ev["size"].tolist() == [1, 2, 3]  # 0.30000000000000004 -> 0.3
    assert ev["side"].tolist() == [SIDE_SELL, SIDE_BUY, SIDE_SELL]
    assert ev["ts_exch"].tolist() == [1_000_000_000, 2_000_000_000, 3_000_000_000]
    assert stream.instruments[0].key == ("v", "XYZUSDT")


def test_parquet_boolean_buyer_maker(tmp_path: Path) -> None:
    table = trades_table(buyer_maker=pa.array([True, False, False]))
    stream = load_vendor_parquet(write(tmp_path, table), symbol="X")
    assert stream.events["side"].tolist() == [SIDE_SELL, SIDE_BUY, SIDE_BUY]


def test_parquet_quotes_null_side(tmp_path: Path) -> None:
    table = pa.table(
        {
            "timestamp": pa.array([1, 2], pa.timestamp("ms", tz="UTC")),
            "symbol": ["BTC/USDT", "BTC/USDT"],
            "ask_size": [1.5, None],
            "ask": [10.5, None],
            "bid_size": [2.0, 1.0],
            "bid": [10.0, 10.0],
        }
    )
    stream = load_vendor_parquet(write(tmp_path, table))
    ev = stream.events
    assert (ev[3]["price"], ev[3]["size"], ev[3]["side"]) == (0, 0, SIDE_SELL)
    assert stream.meta["empty_quote_sides"] == 1


def test_parquet_repair_sort(tmp_path: Path) -> None:
    table = trades_table(timestamp=pa.array([3_000, 1_000, 2_000], pa.timestamp("ms", tz="UTC")))
    path = write(tmp_path, table)
    with pytest.raises(DataError) as err:
        load_vendor_parquet(path, symbol="X")
    assert err.value.field == "timestamp" and "row 1" in str(err.value)
    stream = load_vendor_parquet(path, symbol="X", repair="sort")
    assert stream.meta["repairs"] == {"sorted_rows": 3}
    assert stream.events["ts_exch"].tolist() == [1_000_000_000, 2_000_000_000, 3_000_000_000]


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"price": pa.array([100.5, float("nan"), 100.75])}, "price", ["row 1", "'nan'"]),
        ({"quantity": pa.array([0.1, -0.2, 0.3])}, "quantity", ["row 1", "negative"]),
        (
            {"buyer_maker": pa.array(["True", "maybe", "False"])},
            "buyer_maker",
            ["row 1", "'maybe'"],
        ),
        ({"price": pa.array([100.5, None, 100.75])}, "price", ["row 1", "missing value"]),
    ],
)
def test_parquet_bad_values(tmp_path: Path, overrides, field, words) -> None:
    path = write(tmp_path, trades_table(**overrides))
    with pytest.raises(DataError) as err:
        load_vendor_parquet(path, symbol="X")
    assert (err.value.path, err.value.field) == (str(path), field)
    for word in words:
        assert word in str(err.value)


def test_parquet_off_grid_with_instrument(tmp_path: Path) -> None:
    path = write(tmp_path, trades_table())
    inst = Instrument("X", "binance", Decimal("0.5"), Decimal("0.1"))
    with pytest.raises(DataError) as err:
        load_vendor_parquet(path, instrument=inst)
    assert err.value.field == "price" and "row 1" in str(err.value)
    assert "tick size 0.5" in str(err.value)


def test_parquet_bad_files(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        trades_table().rename_columns(["timestamp", "trade_id", "price", "qty", "buyer_maker"]),
    )
    with pytest.raises(FormatError) as err:
        load_vendor_parquet(bad, symbol="X")
    assert "missing quantity" in str(err.value) and "unknown qty" in str(err.value)
    assert "timestamp,trade_id,price,quantity,buyer_maker" in str(err.value)
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match="empty file"):
        load_vendor_parquet(empty, symbol="X")
    text = tmp_path / "text.parquet"
    text.write_text("timestamp,price\n1,2\n")
    with pytest.raises(FormatError, match="not a readable Parquet"):
        load_vendor_parquet(text, symbol="X")
    with pytest.raises(UsageError, match="symbol"):
        load_vendor_parquet(write(tmp_path, trades_table(), "trades.parquet"))


def test_parquet_trades_symbol_sources(tmp_path: Path) -> None:
    path = write(tmp_path, trades_table(), "ethusdt-trades-2021.parquet")
    stream = load_vendor_parquet(path)
    assert stream.instruments[0].symbol == "ETHUSDT"
    assert stream.meta["symbol_source"] == "file name"
    assert load_vendor_parquet(path, symbol="X").meta["symbol_source"] == "argument"
    inst = Instrument("ETH", "binance", Decimal("0.01"), Decimal("0.1"))
    stream = load_vendor_parquet(path, instrument=inst)
    assert stream.meta["symbol_source"] == "instrument" and stream.instruments[0] is inst


def test_sniffers(csv_dir: Path) -> None:
    assert is_binance_depth_csv(csv_dir / "btcusdt-depth-snap.csv")
    assert not is_binance_depth_csv(fx("binance_depth_bad_column.csv"))
    assert not is_binance_depth_csv(fx("binance_depth_empty.csv"))
    assert sniff_vendor_parquet(csv_dir / "btcusdt-trades.parquet") == "trades"
    assert sniff_vendor_parquet(csv_dir / "btcusdt-quotes.parquet") == "quotes"
    assert is_vendor_parquet(csv_dir / "btcusdt-quotes.parquet")
    assert not is_vendor_parquet(csv_dir / "btcusdt-depth-snap.csv")
