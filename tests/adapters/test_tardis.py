"""Tardis CSV converter: recorded sample files, small hand-written fixtures, broken files."""

from __future__ import annotations

import gzip
import shutil
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.tardis import load_tardis, sniff_tardis
from engine.errors import DataError, FormatError, UsageError
from engine.events import (
    FLAG_LAST,
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


def btc(tick: str = "0.01", lot: str = "0.001") -> Instrument:
    return Instrument("BTCUSDT", "binance-futures", Decimal(tick), Decimal(lot), kind="perpetual")


def assert_monotone(events: np.ndarray) -> None:
    assert (np.diff(events["ts_local"]) >= 0).all()


# --- Recorded data ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tardis_dir(shared_data: Path) -> Path:
    return shared_data / "tardis"


EXPECTED = {
    # file: (data type, rows, events)
    "binance-futures_trades_BTCUSDT.csv": ("trades", 9_999, 9_999),
    "binance-futures_quotes_BTCUSDT.csv": ("quotes", 9_999, 19_998),
    "deribit_incremental_book_L2_BTC-PERPETUAL.csv": ("incremental_book_L2", 15, 16),
    "binance-futures_book_snapshot_25_BTCUSDT.csv": ("book_snapshot_25", 10, 10 * 51),
    "binance-futures_book_snapshot_5_BTCUSDT.csv": ("book_snapshot_5", 10, 10 * 11),
    "bitmex_trades_XBTUSD.csv": ("trades", 10, 10),
    "huobi-dm-swap_quotes_BTC-USD.csv": ("quotes", 10, 20),
}


def test_every_recorded_file_is_covered(tardis_dir: Path) -> None:
    assert sorted(p.name for p in tardis_dir.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_file_loads(tardis_dir: Path, name: str) -> None:
    data_type, rows, n_events = EXPECTED[name]
    path = tardis_dir / name
    assert sniff_tardis(path) == data_type
    stream = load_tardis(path)
    assert len(stream) == n_events
    assert stream.meta["rows"] == rows
    assert stream.meta["format"] == f"tardis:{data_type}"
    assert stream.meta["source"] == [str(path)]
    assert stream.meta["events"] == n_events
    assert_monotone(stream.events)
    # One instrument, named after the Tardis exchange and symbol.
    exchange, _, rest = name.partition("_")
    assert len(stream.instruments) == 1
    assert stream.instruments[0].venue == exchange
    assert stream.instruments[0].symbol == rest.rsplit("_", 1)[1].removesuffix(".csv")
    assert (stream.events["instrument"] == 0).all()
    # Every stream ends a message on its last event.
    assert stream.events["flags"][-1] & FLAG_LAST


def test_binance_trades(tardis_dir: Path) -> None:
    stream = load_tardis(tardis_dir / "binance-futures_trades_BTCUSDT.csv")
    ev = stream.events
    inst = stream.instruments[0]
    assert inst.tick_size == Decimal("0.01") and inst.lot_size == Decimal("0.001")
    assert stream.meta["instrument_source"] == "inferred"
    assert (ev["kind"] == KIND_TRADE).all()
    assert (ev["flags"] == FLAG_LAST).all()  # every trade is a message of its own
    # First row: 1582329602111000,1582329602418379,42377944,buy,9682,0.132
    assert ev["price"][0] == 968_200
    assert inst.format_price(int(ev["price"][0])) == "9682.00"
    assert ev["size"][0] == 132
    assert ev["side"][0] == SIDE_BUY
    assert ev["ts_exch"][0] == 1_582_329_602_111_000_000
    assert ev["ts_local"][0] == 1_582_329_602_418_379_000
    assert np.count_nonzero(ev["side"] == SIDE_BUY) == 5_267
    assert np.count_nonzero(ev["side"] == SIDE_SELL) == 4_732


def test_binance_quotes(tardis_dir: Path) -> None:
    stream = load_tardis(tardis_dir / "binance-futures_quotes_BTCUSDT.csv")
    ev = stream.events
    assert (ev["kind"] == KIND_QUOTE).all()
    assert (ev["side"][0::2] == SIDE_BUY).all() and (ev["side"][1::2] == SIDE_SELL).all()
    assert (ev["flags"][0::2] == 0).all() and (ev["flags"][1::2] == FLAG_LAST).all()
    assert (ev["ts_local"][0::2] == ev["ts_local"][1::2]).all()
    # First row: ask_amount 0.84, ask_price 9682, bid_price 9681.92, bid_amount 0.67.
    assert ev[0]["price"] == 968_192 and ev[0]["size"] == 670
    assert ev[1]["price"] == 968_200 and ev[1]["size"] == 840
    assert stream.meta["empty_quote_sides"] == 0
    assert (ev["price"][0::2] < ev["price"][1::2]).all()  # never crossed


def test_deribit_snapshot_is_cleared_first(tardis_dir: Path) -> None:
    stream = load_tardis(tardis_dir / "deribit_incremental_book_L2_BTC-PERPETUAL.csv")
    ev = stream.events
    assert ev[0]["kind"] == KIND_BOOK_CLEAR
    assert ev[0]["side"] == SIDE_NONE and ev[0]["flags"] == FLAG_SNAPSHOT
    assert ev[0]["ts_local"] == ev[1]["ts_local"] == 1_585_699_200_355_684_000
    assert (ev["kind"][1:] == KIND_BOOK_SNAPSHOT).all()
    assert (ev["flags"][1:] & FLAG_SNAPSHOT).all()
    # All 15 rows share one local timestamp: one message, FLAG_LAST on its last row only.
    assert np.flatnonzero(ev["flags"] & FLAG_LAST).tolist() == [15]
    assert stream.meta["snapshots"] == 1
    inst = stream.instruments[0]
    assert inst.tick_size == Decimal("0.1") and inst.lot_size == Decimal("1")
    assert ev[1]["price"] == 64_215 and ev[1]["size"] == 18_640  # 6421.5, 18640


@pytest.mark.parametrize("levels", [5, 25])
def test_book_snapshots(tardis_dir: Path, levels: int) -> None:
    stream = load_tardis(tardis_dir / f"binance-futures_book_snapshot_{levels}_BTCUSDT.csv")
    ev = stream.events
    group = 1 + 2 * levels
    assert (ev["kind"][::group] == KIND_BOOK_CLEAR).all()
    assert np.flatnonzero(ev["kind"] == KIND_BOOK_CLEAR).tolist() == list(
        range(0, 10 * group, group)
    )
    assert np.flatnonzero(ev["flags"] & FLAG_LAST).tolist() == list(
        range(group - 1, 10 * group, group)
    )
    assert (ev["flags"] & FLAG_SNAPSHOT).all()
    assert stream.meta["skipped"] == {"missing_levels": 0}
    # Row 1: asks[0] 11657.08 x 1.714, bids[0] 11657.07 x 10.896.
    assert (ev[1]["side"], ev[1]["price"], ev[1]["size"]) == (SIDE_SELL, 1_165_708, 1_714)
    assert (ev[2]["side"], ev[2]["price"], ev[2]["size"]) == (SIDE_BUY, 1_165_707, 10_896)


def test_bitmex_uuid_ids(tardis_dir: Path) -> None:
    stream = load_tardis(tardis_dir / "bitmex_trades_XBTUSD.csv")
    assert (stream.events["side"] == SIDE_SELL).all()
    assert stream.events["price"][0] == 85_315  # 8531.5 at tick 0.1
    assert stream.events["size"].tolist() == [2152] + [1] * 9


def test_gzip_round_trip(tardis_dir: Path, tmp_path: Path) -> None:
    for name in (
        "binance-futures_trades_BTCUSDT.csv",
        "deribit_incremental_book_L2_BTC-PERPETUAL.csv",
    ):
        plain = tardis_dir / name
        gz = tmp_path / (name + ".gz")
        with open(plain, "rb") as src, gzip.open(gz, "wb") as dst:
            shutil.copyfileobj(src, dst)
        a, b = load_tardis(plain), load_tardis(gz)
        assert a.events.tobytes() == b.events.tobytes()
        assert a.instruments.to_list() == b.instruments.to_list()
        assert sniff_tardis(gz) == sniff_tardis(plain)


def test_consecutive_files_are_one_stream(tardis_dir: Path, tmp_path: Path) -> None:
    src = tardis_dir / "binance-futures_trades_BTCUSDT.csv"
    lines = src.read_text().splitlines(keepends=True)
    first, second = tmp_path / "day1.csv", tmp_path / "day2.csv.gz"
    first.write_text("".join(lines[:5001]))
    with gzip.open(second, "wt") as f:
        f.write(lines[0] + "".join(lines[5001:]))
    whole = load_tardis(src)
    split = load_tardis([first, second])
    assert split.events.tobytes() == whole.events.tobytes()
    assert split.meta["rows"] == 9_999
    assert split.meta["source"] == [str(first), str(second)]


def test_same_file_twice_goes_backwards_in_the_second_file(tardis_dir: Path) -> None:
    src = tardis_dir / "binance-futures_trades_BTCUSDT.csv"
    with pytest.raises(DataError) as err:
        load_tardis([src, src])
    assert err.value.line == 2 and err.value.field == "local_timestamp"
    stream = load_tardis([src, src], repair="sort")
    assert len(stream) == 19_998
    assert_monotone(stream.events)
    assert stream.meta["repairs"]["sorted_rows"] > 0


def test_mixed_data_types_are_refused(tardis_dir: Path) -> None:
    with pytest.raises(FormatError, match="one data type at a time"):
        load_tardis(
            [
                tardis_dir / "binance-futures_trades_BTCUSDT.csv",
                tardis_dir / "bitmex_trades_XBTUSD.csv",
                tardis_dir / "huobi-dm-swap_quotes_BTC-USD.csv",
            ]
        )


def test_two_exchanges_in_one_stream(tardis_dir: Path) -> None:
    # Trades from two venues: two instruments, each with its own inferred tick.
    stream = load_tardis(
        [
            tardis_dir / "bitmex_trades_XBTUSD.csv",
            tardis_dir / "binance-futures_trades_BTCUSDT.csv",
        ],
        repair="sort",
    )
    assert [(i.venue, str(i.tick_size)) for i in stream.instruments] == [
        ("bitmex", "0.1"),
        ("binance-futures", "0.01"),
    ]
    assert np.bincount(stream.events["instrument"]).tolist() == [10, 9_999]


# --- Small fixtures: structure ---------------------------------------------------------------


def test_trade_sides_and_values() -> None:
    stream = load_tardis(fx("tardis_trades_small.csv"))
    ev = stream.events
    assert ev["side"].tolist() == [SIDE_BUY, SIDE_SELL, SIDE_NONE]
    assert ev["price"].tolist() == [968_200, 968_192, 968_190]
    assert ev["size"].tolist() == [132, 400, 1000]


def test_l2_messages_snapshots_and_symbols() -> None:
    stream = load_tardis(fx("tardis_l2_two_symbols.csv"))
    ev = stream.events
    names = [(i.symbol, str(i.tick_size), str(i.lot_size)) for i in stream.instruments]
    assert names == [("BTC-PERPETUAL", "0.1", "1"), ("ETH-PERPETUAL", "0.01", "1")]
    kinds = ev["kind"].tolist()
    C, S, D = KIND_BOOK_CLEAR, KIND_BOOK_SNAPSHOT, KIND_BOOK_DELTA
    assert kinds == [C, S, S, C, S, D, D, D, C, S, S, D]
    assert ev["instrument"].tolist() == [0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1]
    # Last row of each (local time, symbol) group; a clear never ends a message.
    assert np.flatnonzero(ev["flags"] & FLAG_LAST).tolist() == [2, 4, 6, 7, 10, 11]
    assert np.flatnonzero(ev["flags"] & FLAG_SNAPSHOT).tolist() == [0, 1, 2, 3, 4, 8, 9, 10]
    # Each instrument in its own ticks: 6421.5 at 0.1, 130.05 at 0.01.
    assert ev[1]["price"] == 64_215 and ev[4]["price"] == 13_005
    assert ev[5]["size"] == 0  # amount 0 removes the level
    assert stream.meta["snapshots"] == 3


def test_several_exchanges_and_symbols_in_one_file() -> None:
    stream = load_tardis(fx("tardis_trades_two_exchanges.csv"))
    got = [(i.venue, i.symbol, str(i.tick_size), str(i.lot_size)) for i in stream.instruments]
    assert got == [
        ("okex", "BTC-USDT", "0.1", "0.1"),
        ("binance", "BTCUSDT", "0.01", "0.001"),
        ("binance", "ETHUSDT", "0.1", "1"),
        ("okex", "ETH-USDT", "0.01", "1"),
    ]  # ids in order of first appearance, each with its own grid
    ev = stream.events
    assert ev["instrument"].tolist() == [0, 1, 2, 0, 1, 3]
    assert ev["price"].tolist() == [96_821, 968_192, 2_305, 96_822, 968_193, 23_025]
    assert ev["size"].tolist() == [5, 400, 2, 15, 4, 3]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False),
            st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_conversion_is_exact(tmp_path_factory, rows) -> None:
    """Whatever the decimals, ticks x tick == the text's value, exactly."""
    path = tmp_path_factory.mktemp("exact") / "t.csv"
    lines = ["exchange,symbol,timestamp,local_timestamp,id,side,price,amount"]
    lines += [f"x,Y,{i},{i},{i},buy,{p},{a}" for i, (p, a) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    stream = load_tardis(path)
    inst = stream.instruments[0]
    prices = [inst.ticks_to_price(int(t)) for t in stream.events["price"]]
    sizes = [inst.lots_to_size(int(t)) for t in stream.events["size"]]
    assert prices == [p for p, _ in rows]
    assert sizes == [a for _, a in rows]


def test_exponent_notation() -> None:
    # Tardis writes numbers as JavaScript prints them: below 1e-6 that is "9.5e-7".
    stream = load_tardis(fx("tardis_trades_exponent.csv"))
    inst = stream.instruments[0]
    assert inst.tick_size == Decimal("1e-8") and inst.lot_size == Decimal(1)
    assert stream.events["price"].tolist() == [95, 96, 10]
    assert stream.events["size"].tolist() == [12_000_000, 15_000_000, 3]


def test_quotes_empty_side_is_no_quote() -> None:
    stream = load_tardis(fx("tardis_quotes_empty_side.csv"))
    ev = stream.events
    assert len(ev) == 6
    assert (ev[3]["price"], ev[3]["size"], ev[3]["side"]) == (0, 0, SIDE_SELL)  # no ask
    assert (ev[4]["price"], ev[4]["size"], ev[4]["side"]) == (0, 0, SIDE_BUY)  # no bid
    assert ev[5]["price"] == 86_294
    assert stream.meta["empty_quote_sides"] == 2


def test_book_snapshot_missing_levels_are_counted() -> None:
    stream = load_tardis(fx("tardis_book_snapshot_3_missing.csv"))
    ev = stream.events
    assert len(ev) == 7 + 4
    assert stream.meta["skipped"] == {"missing_levels": 3}
    assert ev["kind"].tolist()[7:] == [KIND_BOOK_CLEAR] + [KIND_BOOK_SNAPSHOT] * 3
    assert np.flatnonzero(ev["flags"] & FLAG_LAST).tolist() == [6, 10]
    assert ev[8]["size"] == 15  # 1.5 at the inferred lot 0.1


def test_given_instrument_sets_the_grid() -> None:
    inst = btc("0.01", "0.001")
    stream = load_tardis(fx("tardis_trades_small.csv"), instrument=inst)
    assert stream.instruments[0] is inst
    assert stream.meta["instrument_source"] == "given"
    coarse = load_tardis(fx("tardis_trades_off_grid.csv"), instrument=btc("0.1", "0.001"))
    assert coarse.events["price"].tolist() == [96_820, 96_815, 96_817]


def test_header_only_file_is_an_empty_stream(tmp_path: Path) -> None:
    stream = load_tardis(fx("tardis_trades_header_only.csv"))
    assert len(stream) == 0 and stream.meta["rows"] == 0
    for name in (
        "tardis_l2_two_symbols.csv",
        "tardis_quotes_empty_side.csv",
        "tardis_book_snapshot_3_missing.csv",
    ):
        path = tmp_path / name
        path.write_text(fx(name).read_text().splitlines()[0] + "\n")
        stream = load_tardis(path)
        assert len(stream) == 0 and len(stream.instruments) == 0


def test_repair_sort_reports_moved_rows() -> None:
    stream = load_tardis(fx("tardis_trades_backwards.csv"), repair="sort")
    assert stream.meta["repairs"] == {"sorted_rows": 2}
    assert_monotone(stream.events)
    assert stream.events["size"].tolist() == [132, 1000, 400, 2000]


def test_sniff() -> None:
    assert sniff_tardis(fx("tardis_trades_small.csv")) == "trades"
    assert sniff_tardis(fx("tardis_book_snapshot_3_missing.csv")) == "book_snapshot_3"
    assert sniff_tardis(fx("tardis_trades_bad_column.csv")) is None
    assert sniff_tardis(fx("tardis_empty.csv")) is None
    assert sniff_tardis(fx("binance_depth_sequence.csv")) is None


# --- Broken files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "error", "line", "field", "words"),
    [
        (
            "tardis_trades_bad_column.csv",
            {},
            FormatError,
            1,
            None,
            ["missing price", "unknown prize", "exchange,symbol,timestamp,local_timestamp,id"],
        ),
        ("tardis_trades_nan_price.csv", {}, DataError, 3, "price", ["'NaN'", "not a finite"]),
        (
            "tardis_quotes_not_a_number.csv",
            {},
            DataError,
            3,
            "bid_price",
            ["'8629.2x'", "not a number"],
        ),
        ("tardis_trades_negative_amount.csv", {}, DataError, 3, "amount", ["negative", "-0.4"]),
        (
            "tardis_trades_off_grid.csv",
            {"instrument": btc("0.5")},
            DataError,
            4,
            "price",
            ["9681.7", "tick size 0.5"],
        ),
        (
            "tardis_trades_small.csv",
            {"instrument": btc("0.1")},
            DataError,
            3,
            "price",
            ["9681.92", "tick size 0.1"],
        ),
        (
            "tardis_trades_backwards.csv",
            {},
            DataError,
            4,
            "local_timestamp",
            ["backwards", "repair='sort'"],
        ),
        ("tardis_trades_unknown_side.csv", {}, DataError, 3, "side", ["'bull'", "'buy'"]),
        ("tardis_l2_bad_side.csv", {}, DataError, 3, "side", ["'buy'", "'bid'", "'ask'"]),
        (
            "tardis_trades_bad_timestamp.csv",
            {},
            DataError,
            3,
            "local_timestamp",
            ["not an integer"],
        ),
        ("tardis_trades_short_line.csv", {}, DataError, 3, None, ["7 fields", "8"]),
        ("tardis_quotes_half_empty.csv", {}, DataError, 3, None, ["'ask_price' is empty"]),
        ("tardis_trades_missing_symbol.csv", {}, DataError, 3, "symbol", ["missing value"]),
        ("tardis_empty.csv", {}, FormatError, None, None, ["empty file"]),
        ("tardis_trades_truncated.csv.gz", {}, FormatError, None, None, ["truncated"]),
    ],
)
def test_broken_files(name, kwargs, error, line, field, words) -> None:
    path = fx(name)
    with pytest.raises(error) as err:
        load_tardis(path, **kwargs)
    exc = err.value
    assert type(exc) is error
    assert exc.path == str(path)
    assert exc.line == line
    assert exc.field == field
    message = str(exc)
    assert message.startswith(str(path))
    for word in words:
        assert word in message


def test_truncated_gzip_header(tmp_path: Path) -> None:
    gz = tmp_path / "cut.csv.gz"
    gz.write_bytes(gzip.compress(fx("tardis_trades_small.csv").read_bytes())[:20])
    with pytest.raises(FormatError, match="truncated or corrupt gzip"):
        load_tardis(gz)


def test_missing_file_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_tardis(tmp_path / "nope.csv")
    with pytest.raises(UsageError):
        load_tardis([])
    with pytest.raises(UsageError):
        load_tardis(fx("tardis_trades_small.csv"), repair="drop")
