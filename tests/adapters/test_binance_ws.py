"""Binance WebSocket capture loader: the recorded captures in ../shared and small fixtures."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import numpy as np
import orjson
import pytest

from adapters.binance_ws import load_binance_capture, sniff_binance_capture
from engine.errors import DataError, FormatError
from engine.events import (
    FLAG_EXCH_TS_MISSING,
    FLAG_LAST,
    FLAG_RESYNC,
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

FIXTURES = Path(__file__).parent / "fixtures" / "binance_ws"
MS = 1_000_000

# The README table of ../shared/data/binance-ws (lines include the REST snapshot line).
README_TABLE = {
    "spot_btcusdt_20240808.gz": dict(lines=41_249, depth=3_451, tickers=28_040, trades=9_757),
    "spot_btcusdt_20240809.gz": dict(lines=58_325, depth=3_044, tickers=45_134, trades=10_147),
    "spot_ethusdt_20240808.gz": dict(lines=33_618, depth=3_434, tickers=24_077, trades=6_106),
    "usdm_btcusdt_20240808.gz": dict(lines=93_954, depth=6_551, tickers=66_089, trades=21_313),
}
SNAPSHOT_LINE = {
    "spot_btcusdt_20240808.gz": 8,
    "spot_ethusdt_20240808.gz": 6,
    "usdm_btcusdt_20240808.gz": 55,
}


# -- a reference book in plain Python ------------------------------------------------------


class RefBook:
    """Dict-of-levels L2 book with lazily recomputed best prices (test reference only)."""

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.best_bid: int | None = None
        self.best_ask: int | None = None

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.best_bid = self.best_ask = None

    def set(self, side: int, price: int, size: int) -> None:
        if side == SIDE_BUY:
            levels = self.bids
            if size:
                levels[price] = size
                if self.best_bid is None or price > self.best_bid:
                    self.best_bid = price
            elif levels.pop(price, None) is not None and price == self.best_bid:
                self.best_bid = max(levels) if levels else None
        else:
            levels = self.asks
            if size:
                levels[price] = size
                if self.best_ask is None or price < self.best_ask:
                    self.best_ask = price
            elif levels.pop(price, None) is not None and price == self.best_ask:
                self.best_ask = min(levels) if levels else None

    def crossed(self) -> bool:
        return (
            self.best_bid is not None
            and self.best_ask is not None
            and self.best_bid >= self.best_ask
        )


def replay(events: np.ndarray) -> tuple[RefBook, int, int]:
    """Apply the book rows; return the book, messages checked, and crossed messages seen."""
    book = RefBook()
    synced = False
    checked = crossed = 0
    cols = zip(
        events["kind"].tolist(),
        events["side"].tolist(),
        events["flags"].tolist(),
        events["price"].tolist(),
        events["size"].tolist(),
        strict=True,
    )
    for kind, side, flags, price, size in cols:
        if kind == KIND_BOOK_CLEAR:
            book.clear()
            synced = not flags & FLAG_RESYNC
        elif kind == KIND_BOOK_SNAPSHOT or kind == KIND_BOOK_DELTA:
            book.set(side, price, size)
        else:
            continue
        if synced and flags & FLAG_LAST:
            checked += 1
            crossed += book.crossed()
    return book, checked, crossed


# -- recorded captures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def captures(shared_data: Path):
    """Load each capture (and the two spot BTC days together) once for the module."""
    folder = shared_data / "binance-ws"
    cache: dict[tuple[str, ...], object] = {}

    def get(*names: str):
        if names not in cache:
            cache[names] = load_binance_capture([folder / n for n in names])
        return cache[names]

    get.folder = folder
    return get


@pytest.mark.parametrize("name", sorted(README_TABLE))
def test_counts_match_the_readme_table(captures, name):
    s = captures(name)
    want = README_TABLE[name]
    m = s.meta
    assert m["lines"] == want["lines"]
    assert m["depth_messages"] == want["depth"]
    assert m["book_tickers"] == want["tickers"]
    assert m["trades"] == want["trades"]
    assert m["snapshots"] == (1 if name in SNAPSHOT_LINE else 0)
    assert m["lines"] == m["depth_messages"] + m["book_tickers"] + m["trades"] + m["snapshots"]
    assert m["unknown_messages"] == {}
    assert m["duplicate_trades"] == 0
    assert m["non_market_trades"] == {}
    kinds = s.events["kind"]
    assert (kinds == KIND_QUOTE).sum() == 2 * want["tickers"]
    assert (kinds == KIND_TRADE).sum() == want["trades"]
    assert m["level_updates"] >= (kinds == KIND_BOOK_DELTA).sum()


@pytest.mark.parametrize("name", sorted(README_TABLE))
def test_receive_times_are_monotone_and_lag_the_exchange(captures, name):
    s = captures(name)
    assert np.all(np.diff(s.events["ts_local"]) >= 0)
    # README: the collector's clock is about 1.27 s behind the exchange time.
    assert 1_200 < s.meta["exch_minus_local_ms"] < 1_350


@pytest.mark.parametrize("name", sorted(SNAPSHOT_LINE))
def test_each_0808_capture_syncs_without_gaps_and_is_never_crossed(captures, name):
    s = captures(name)
    m = s.meta
    assert m["synced"]
    assert m["sequence_gaps"] == 0
    assert m["diffs_discarded"] == 0
    assert m["snapshots_applied"] == 1
    assert m["diffs_applied"] + m["diffs_before_snapshot"] == m["depth_messages"]
    book, checked, crossed = replay(s.events)
    assert checked == m["diffs_applied"] + 1  # every applied diff, plus the snapshot
    assert crossed == 0
    assert book.bids and book.asks


def test_spot_btc_two_days_read_as_one_stream(captures):
    s = captures("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz")
    m = s.meta
    assert m["lines_per_file"] == [41_249, 58_325]
    assert m["sequence_gaps"] == 0
    assert m["synced"]
    # Every diff of the second day continues the first: all of them are applied.
    assert m["diffs_before_snapshot"] == 2
    assert m["diffs_applied"] == 3_449 + 3_044
    assert np.all(np.diff(s.events["ts_local"]) >= 0)
    _, checked, crossed = replay(s.events)
    assert checked == m["diffs_applied"] + 1
    assert crossed == 0
    assert (s.events["kind"] == KIND_QUOTE).sum() == 2 * (28_040 + 45_134)
    assert (s.events["kind"] == KIND_BOOK_CLEAR).sum() == 1


def test_spot_btc_second_day_alone_cannot_sync(captures):
    s = captures("spot_btcusdt_20240809.gz")
    m = s.meta
    assert not m["synced"]
    assert m["snapshots"] == 0
    assert m["diffs_applied"] == 0
    assert m["diffs_before_snapshot"] == m["depth_messages"] == 3_044
    assert m["sequence_gaps"] == 0
    kinds = s.events["kind"]
    # No book rows at all; quotes and trades are still there.
    assert not np.isin(kinds, [KIND_BOOK_CLEAR, KIND_BOOK_SNAPSHOT, KIND_BOOK_DELTA]).any()
    assert len(s.events) == 2 * 45_134 + 10_147


def test_instrument_inference(captures):
    spot = captures("spot_btcusdt_20240808.gz").instruments[0]
    assert (spot.venue, spot.symbol, spot.kind) == ("binance", "BTCUSDT", "spot")
    assert spot.tick_size == Decimal("0.01")
    # Level sizes such as 25.42618900 (line 1886) need six decimals.
    assert spot.lot_size == Decimal("0.000001")
    eth = captures("spot_ethusdt_20240808.gz").instruments[0]
    assert (eth.venue, eth.symbol, eth.tick_size, eth.lot_size) == (
        "binance",
        "ETHUSDT",
        Decimal("0.01"),
        Decimal("0.00001"),
    )
    usdm = captures("usdm_btcusdt_20240808.gz")
    fut = usdm.instruments[0]
    assert (fut.venue, fut.symbol, fut.kind) == ("binance-futures", "BTCUSDT", "perpetual")
    assert (fut.tick_size, fut.lot_size) == (Decimal("0.1"), Decimal("0.001"))
    assert usdm.meta["format"] == "binance-ws:usdm"
    assert captures("spot_btcusdt_20240808.gz").meta["format"] == "binance-ws:spot"


def test_exact_values_of_known_rows_spot(captures):
    ev = captures("spot_btcusdt_20240808.gz").events
    # Line 3, the first message emitted (lines 1-2 are diffs waiting for the snapshot):
    # bookTicker b 61837.63000000 B 3.78826000 a 61837.64000000 A 1.54698000, no exchange time.
    bid, ask = ev[0], ev[1]
    assert bid["kind"] == ask["kind"] == KIND_QUOTE
    assert (bid["side"], ask["side"]) == (SIDE_BUY, SIDE_SELL)
    assert (int(bid["price"]), int(bid["size"])) == (6_183_763, 3_788_260)
    assert (int(ask["price"]), int(ask["size"])) == (6_183_764, 1_546_980)
    assert bid["ts_local"] == ask["ts_local"] == ask["ts_exch"] == 1723161254087891268
    assert bid["flags"] == FLAG_EXCH_TS_MISSING
    assert ask["flags"] == FLAG_EXCH_TS_MISSING | FLAG_LAST
    # The snapshot (line 8): a clear, then 1,000 bids and 1,000 asks at its receive time.
    snap_ts = 1723161254206652067
    clear = np.flatnonzero(ev["kind"] == KIND_BOOK_CLEAR)
    assert len(clear) == 1
    c = int(clear[0])
    assert ev[c]["ts_local"] == snap_ts and ev[c]["side"] == SIDE_NONE
    assert ev[c]["flags"] == FLAG_SNAPSHOT | FLAG_EXCH_TS_MISSING
    rows = ev[c + 1 : c + 2001]
    assert np.all(rows["kind"] == KIND_BOOK_SNAPSHOT) and np.all(rows["ts_local"] == snap_ts)
    assert (rows["side"] == SIDE_BUY).sum() == 1_000 and (rows["side"] == SIDE_SELL).sum() == 1_000
    assert (int(rows[0]["price"]), int(rows[0]["size"])) == (6_183_763, 3_788_260)
    assert rows[-1]["flags"] & FLAG_LAST and not rows[-2]["flags"] & FLAG_LAST
    # Then the buffered diff of line 6 (U=50093239208 <= 50093239219 <= u=50093239224),
    # stamped with the snapshot's receive time but keeping its own exchange time.
    first_delta = ev[c + 2001]
    assert first_delta["kind"] == KIND_BOOK_DELTA
    assert first_delta["ts_local"] == snap_ts
    assert first_delta["ts_exch"] == 1723161255408 * MS


def test_exact_values_of_known_rows_usdm(captures):
    ev = captures("usdm_btcusdt_20240808.gz").events
    # Line 2: bookTicker b 61800.20 B 2.507 a 61800.30 A 2.510 E 1723161256313.
    bid, ask = ev[0], ev[1]
    assert (int(bid["price"]), int(bid["size"]), int(ask["price"]), int(ask["size"])) == (
        618_002,
        2_507,
        618_003,
        2_510,
    )
    assert bid["ts_exch"] == 1723161256313 * MS and bid["ts_local"] == 1723161255088169167
    assert bid["flags"] == 0 and ask["flags"] == FLAG_LAST
    # Line 3: trade p 61800.30 q 0.006 T 1723161256322 m false: the buyer was the aggressor.
    t = ev[2]
    assert t["kind"] == KIND_TRADE and t["side"] == SIDE_BUY
    assert (int(t["price"]), int(t["size"])) == (618_003, 6)
    assert t["ts_exch"] == 1723161256322 * MS and t["flags"] == FLAG_LAST


def test_eth_first_valid_diff_starts_exactly_after_the_snapshot(captures):
    # The raw lines: snapshot at line 6, first diff after it at line 7 with U == lastUpdateId + 1.
    with gzip.open(captures.folder / "spot_ethusdt_20240808.gz", "rb") as f:
        lines = [next(f) for _ in range(7)]
    snap = orjson.loads(lines[5].split(b" ", 1)[1])
    diff = orjson.loads(lines[6].split(b" ", 1)[1])["data"]
    assert diff["U"] == snap["lastUpdateId"] + 1
    # A stricter check (U <= lastUpdateId <= u) would refuse it; the loader accepts it.
    assert not diff["U"] <= snap["lastUpdateId"] <= diff["u"]
    m = captures("spot_ethusdt_20240808.gz").meta
    assert m["sequence_gaps"] == 0 and m["diffs_before_snapshot"] == 2
    assert m["diffs_applied"] == 3_432


def test_strict_mode_accepts_clean_captures(captures):
    s = load_binance_capture(captures.folder / "spot_ethusdt_20240808.gz", strict=True)
    assert s.meta["sequence_gaps"] == 0


def test_sniff_recorded_captures(captures, shared_data):
    for name in README_TABLE:
        assert sniff_binance_capture(captures.folder / name)
    for other in (shared_data / "tardis").glob("*.csv"):
        assert not sniff_binance_capture(other)


# -- small fixtures --------------------------------------------------------------------------


def rows_of(s, kind):
    return s.events[s.events["kind"] == kind]


def test_small_spot_capture():
    s = load_binance_capture(FIXTURES / "spot_small.txt")
    inst = s.instruments[0]
    assert (inst.venue, inst.symbol, inst.tick_size, inst.lot_size) == (
        "binance",
        "BTCUSDT",
        Decimal("0.01"),
        Decimal("0.01"),
    )
    m = s.meta
    assert (m["lines"], m["depth_messages"], m["trades"], m["book_tickers"]) == (7, 3, 2, 1)
    assert (m["diffs_before_snapshot"], m["diffs_applied"], m["sequence_gaps"]) == (1, 2, 0)
    ev = s.events
    assert ev["kind"].tolist() == [
        KIND_QUOTE,
        KIND_QUOTE,
        KIND_BOOK_CLEAR,
        *[KIND_BOOK_SNAPSHOT] * 4,
        KIND_BOOK_DELTA,
        KIND_BOOK_DELTA,
        KIND_TRADE,
        KIND_BOOK_DELTA,
        KIND_TRADE,
    ]
    snap_ts = 1723161254200000000
    # The buffered diff (line 2) follows the snapshot at its time, with its own E.
    assert ev["ts_local"][7:9].tolist() == [snap_ts, snap_ts]
    assert ev["ts_exch"][7:9].tolist() == [1723161255370 * MS] * 2
    assert ev["side"][7:9].tolist() == [SIDE_BUY, SIDE_SELL]
    assert ev["price"][7:9].tolist() == [10_001, 10_005]
    assert ev["size"][7:9].tolist() == [200, 0]
    assert ev["flags"][7:9].tolist() == [0, FLAG_LAST]
    # Snapshot: bids then asks, spot has no exchange time.
    assert ev["side"][3:7].tolist() == [SIDE_BUY, SIDE_BUY, SIDE_SELL, SIDE_SELL]
    assert ev["price"][3:7].tolist() == [10_000, 9_999, 10_003, 10_005]
    assert np.all(ev["ts_exch"][2:7] == snap_ts)
    assert ev["flags"][2:7].tolist() == [FLAG_SNAPSHOT | FLAG_EXCH_TS_MISSING] * 4 + [
        FLAG_SNAPSHOT | FLAG_EXCH_TS_MISSING | FLAG_LAST
    ]
    # Trades: m false -> buyer aggressed, m true -> seller aggressed; ts_exch is T.
    trades = rows_of(s, KIND_TRADE)
    assert trades["side"].tolist() == [SIDE_BUY, SIDE_SELL]
    assert trades["ts_exch"].tolist() == [1723161255520 * MS, 1723161255620 * MS]
    assert trades["size"].tolist() == [50, 25]
    book, checked, crossed = replay(ev)
    assert (checked, crossed) == (3, 0)
    assert book.bids == {10_000: 100, 9_999: 300, 10_001: 200}
    assert book.asks == {10_003: 100}


def test_spot_gap_resyncs_at_the_next_snapshot():
    s = load_binance_capture(FIXTURES / "spot_gap.txt")
    m = s.meta
    assert m["sequence_gaps"] == 1
    assert m["snapshots"] == m["snapshots_applied"] == 2
    # The diff that broke continuity (107-108) is covered by the second snapshot (108).
    assert m["diffs_discarded"] == 1
    assert m["diffs_applied"] == 4  # 101-103, 104-105, then 109-110 (buffered) and 111
    assert m["synced"]
    clears = rows_of(s, KIND_BOOK_CLEAR)
    assert clears["flags"].tolist() == [
        FLAG_SNAPSHOT | FLAG_EXCH_TS_MISSING,
        FLAG_RESYNC,
        FLAG_SNAPSHOT | FLAG_EXCH_TS_MISSING,
    ]
    assert clears["ts_local"][1] == 1723161254300000000  # at the diff that broke (line 4)
    book, checked, crossed = replay(s.events)
    assert crossed == 0 and checked == 1 + 2 + 1 + 2
    assert book.bids == {10_002: 10} and book.asks == {10_004: 10}  # lot 0.1


def test_usdm_gap_resyncs_at_the_next_snapshot():
    s = load_binance_capture(FIXTURES / "usdm_gap.txt")
    m = s.meta
    inst = s.instruments[0]
    assert (inst.venue, inst.tick_size, inst.lot_size) == (
        "binance-futures",
        Decimal("0.1"),
        Decimal("0.001"),
    )
    assert m["format"] == "binance-ws:usdm"
    assert m["sequence_gaps"] == 1
    assert m["diffs_before_snapshot"] == 1  # u=980 < lastUpdateId 1000
    assert m["diffs_discarded"] == 1  # the breaking diff, u=1015 < 1020
    assert m["diffs_applied"] == 4
    assert m["non_market_trades"] == {"INSURANCE_FUND": 1}
    assert len(rows_of(s, KIND_TRADE)) == 2  # the insurance-fund trade is kept
    clears = rows_of(s, KIND_BOOK_CLEAR)
    assert clears["flags"].tolist() == [FLAG_SNAPSHOT, FLAG_RESYNC, FLAG_SNAPSHOT]
    # Futures snapshots carry E: ts_exch is the exchange time, no flag.
    assert clears["ts_exch"][0] == 1723161255371 * MS
    quotes = rows_of(s, KIND_QUOTE)
    assert quotes["ts_exch"].tolist() == [1723161255770 * MS] * 2
    assert quotes["flags"].tolist() == [0, FLAG_LAST]
    book, _, crossed = replay(s.events)
    assert crossed == 0
    assert book.bids == {1_001: 3_000} and book.asks == {1_003: 1_500}


@pytest.mark.parametrize(("name", "line"), [("spot_gap.txt", 4), ("usdm_gap.txt", 6)])
def test_strict_mode_raises_at_the_first_gap(name, line):
    with pytest.raises(DataError) as err:
        load_binance_capture(FIXTURES / name, strict=True)
    assert err.value.line == line
    assert err.value.path.endswith(name)
    assert "gap" in str(err.value)


def test_snapshot_too_old_for_the_first_diff_is_a_gap(tmp_path):
    path = tmp_path / "old_snapshot.txt"
    path.write_text(
        '1723161254000000000 {"lastUpdateId":100,"bids":[["1.0","1"]],"asks":[["2.0","1"]]}\n'
        '1723161254100000000 {"stream":"x@depth","data":{"e":"depthUpdate","E":1,"s":"X",'
        '"U":105,"u":110,"b":[],"a":[]}}\n'
    )
    s = load_binance_capture(path)
    assert s.meta["sequence_gaps"] == 1 and not s.meta["synced"]
    assert s.meta["diffs_discarded"] == 1
    with pytest.raises(DataError, match=r"U <= lastUpdateId \+ 1") as err:
        load_binance_capture(path, strict=True)
    assert err.value.line == 2


@pytest.mark.parametrize(
    ("name", "line", "match"),
    [
        ("malformed_json.txt", 3, "malformed JSON"),
        ("missing_receive_time.txt", 2, "receive time ns"),
        ("backwards_time.txt", 3, "backwards"),
    ],
)
def test_bad_lines_name_file_and_line(name, line, match):
    with pytest.raises(DataError, match=match) as err:
        load_binance_capture(FIXTURES / name)
    assert err.value.line == line
    assert err.value.path.endswith(name)
    assert f"line {line}" in str(err.value)


def test_missing_field_names_it(tmp_path):
    path = tmp_path / "no_price.txt"
    path.write_text(
        '1723161254000000000 {"stream":"x@trade","data":{"e":"trade","s":"X","t":1,"q":"1",'
        '"T":1,"m":true}}\n'
    )
    with pytest.raises(DataError) as err:
        load_binance_capture(path)
    assert (err.value.line, err.value.field) == (1, "p")


def test_truncated_gzip_is_a_format_error(tmp_path):
    lines = [
        f'{1723161254000000000 + i} {{"stream":"btcusdt@trade","data":{{"e":"trade",'
        f'"E":{1723161255270 + i},"s":"BTCUSDT","t":{i},"p":"100.{i % 100:02d}","q":"0.5",'
        f'"T":{1723161255270 + i},"m":false,"M":true}}}}\n'
        for i in range(20_000)
    ]
    whole = gzip.compress("".join(lines).encode())
    good = tmp_path / "whole.gz"
    good.write_bytes(whole)
    assert load_binance_capture(good).meta["trades"] == 20_000
    cut = tmp_path / "cut.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(FormatError, match="truncated") as err:
        load_binance_capture(cut)
    assert err.value.path == str(cut)


def test_duplicate_trades_are_counted_and_dropped():
    s = load_binance_capture(FIXTURES / "duplicate_trade.txt")
    assert s.meta["trades"] == 4
    assert s.meta["duplicate_trades"] == 1
    trades = rows_of(s, KIND_TRADE)
    assert trades["price"].tolist() == [10_003, 10_002, 10_001]
    assert trades["side"].tolist() == [SIDE_BUY, SIDE_SELL, SIDE_SELL]


def test_unknown_streams_are_counted_not_errors():
    s = load_binance_capture(FIXTURES / "unknown_stream.txt")
    assert s.meta["unknown_messages"] == {
        "(no stream)": 1,
        "btcusdt@kline_1m": 2,
        "btcusdt@depth5@100ms": 1,
    }
    assert s.meta["lines"] == 5 and len(rows_of(s, KIND_TRADE)) == 1


def test_files_split_anywhere_read_as_one(tmp_path):
    lines = (FIXTURES / "spot_small.txt").read_bytes().splitlines(keepends=True)
    a, b = tmp_path / "a.gz", tmp_path / "b.txt"
    a.write_bytes(gzip.compress(b"".join(lines[:4])))
    b.write_bytes(b"".join(lines[4:]))
    whole = load_binance_capture(FIXTURES / "spot_small.txt")
    split = load_binance_capture([a, b])
    assert split.events.tobytes() == whole.events.tobytes()
    assert split.meta["lines_per_file"] == [4, 3]
    assert split.meta["source"] == [str(a), str(b)]


def test_gap_and_backwards_time_across_the_file_boundary(tmp_path):
    lines = (FIXTURES / "spot_small.txt").read_bytes().splitlines(keepends=True)
    a = tmp_path / "a.txt"
    a.write_bytes(b"".join(lines[:4]))
    # The next file skips U=104: a gap at its line 1.
    b = tmp_path / "b.txt"
    b.write_bytes(lines[5].replace(b'"U":104,"u":104', b'"U":105,"u":105'))
    assert load_binance_capture([a, b]).meta["sequence_gaps"] == 1
    with pytest.raises(DataError) as err:
        load_binance_capture([a, b], strict=True)
    assert (err.value.path, err.value.line) == (str(b), 1)
    # A next file that starts before the previous one ended.
    with pytest.raises(DataError, match="backwards") as err:
        load_binance_capture([b, a])
    assert (err.value.path, err.value.line) == (str(a), 1)


def test_given_instrument_is_used_and_checked():
    path = FIXTURES / "spot_small.txt"
    inst = Instrument("BTCUSDT", "binance", Decimal("0.01"), Decimal("0.001"))
    s = load_binance_capture(path, instrument=inst)
    assert s.instruments[0] is inst
    assert rows_of(s, KIND_TRADE)["size"].tolist() == [500, 250]
    coarse = Instrument("BTCUSDT", "binance", Decimal("0.02"), Decimal("0.001"))
    with pytest.raises(DataError, match="tick size") as err:
        load_binance_capture(path, instrument=coarse)
    # 100.01 is off a 0.02 grid; the first such price is the bookTicker of line 3.
    assert err.value.path.endswith("spot_small.txt") and err.value.line == 3
    other = Instrument("ETHUSDT", "binance", Decimal("0.01"), Decimal("0.001"))
    with pytest.raises(DataError, match="ETHUSDT"):
        load_binance_capture(path, instrument=other)


def test_a_second_symbol_is_an_error(tmp_path):
    path = tmp_path / "two.txt"
    text = (FIXTURES / "duplicate_trade.txt").read_text().splitlines()
    text[3] = text[3].replace("BTCUSDT", "ETHUSDT")
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError) as err:
        load_binance_capture(path)
    assert (err.value.line, err.value.field) == (4, "s")


def test_agg_trades_are_trades_unless_raw_trades_exist(tmp_path):
    agg = (
        '{ts} {{"stream":"btcusdt@aggTrade","data":{{"e":"aggTrade","E":1,"a":{a},"s":"BTCUSDT",'
        '"p":"100.0","q":"1","f":1,"l":2,"T":1,"m":true}}}}\n'
    )
    only = tmp_path / "agg.txt"
    only.write_text("".join(agg.format(ts=1723161254000000000 + i, a=i) for i in (1, 2, 2)))
    s = load_binance_capture(only)
    assert len(rows_of(s, KIND_TRADE)) == 2 and s.meta["duplicate_trades"] == 1
    assert s.meta["agg_trades"] == 3
    both = tmp_path / "both.txt"
    raw = (FIXTURES / "duplicate_trade.txt").read_text()
    both.write_text(raw + agg.format(ts=1723161255000000000, a=9))
    s = load_binance_capture(both)
    assert s.meta["agg_trades_ignored"] == 1
    assert len(rows_of(s, KIND_TRADE)) == 3


def test_sniff_fixtures(tmp_path):
    assert sniff_binance_capture(FIXTURES / "spot_small.txt")
    assert sniff_binance_capture(FIXTURES / "usdm_gap.txt")
    gz = tmp_path / "spot.gz"
    gz.write_bytes(gzip.compress((FIXTURES / "spot_gap.txt").read_bytes()))
    assert sniff_binance_capture(gz)
    csv = tmp_path / "x.csv"
    csv.write_text("timestamp,price\n1,2\n")
    assert not sniff_binance_capture(csv)
    assert not sniff_binance_capture(tmp_path / "missing.gz")


def test_sniff_skips_a_subscription_reply(tmp_path):
    path = tmp_path / "ack_first.txt"
    path.write_text(
        '1723161253000000000 {"result":null,"id":1}\n'
        + (FIXTURES / "duplicate_trade.txt").read_text()
    )
    assert sniff_binance_capture(path)
    assert load_binance_capture(path).meta["unknown_messages"] == {"(no stream)": 1}


def test_futures_detected_from_tickers_without_depth(tmp_path):
    path = tmp_path / "tickers.txt"
    lines = (FIXTURES / "usdm_gap.txt").read_text().splitlines()
    path.write_text(lines[-1] + "\n")
    s = load_binance_capture(path)
    assert s.meta["format"] == "binance-ws:usdm"
    assert s.instruments[0].venue == "binance-futures"


def test_spot_and_futures_depth_in_one_capture_is_an_error(tmp_path):
    path = tmp_path / "mixed.txt"
    spot = (FIXTURES / "spot_gap.txt").read_text().splitlines()
    fut = (FIXTURES / "usdm_gap.txt").read_text().splitlines()
    path.write_text(spot[0] + "\n" + fut[3].replace("1723161254150000000", "1723161254150000001"))
    with pytest.raises(DataError, match="mixes spot and USD-M") as err:
        load_binance_capture(path)
    assert err.value.line == 2


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ("[1, 2]", None),
        (
            '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":100.5,'
            '"q":"1","T":1,"m":true}}',
            "price",
        ),
    ],
)
def test_wrong_shapes_are_data_errors_with_the_line(tmp_path, payload, field):
    path = tmp_path / "shape.txt"
    path.write_text(
        (FIXTURES / "duplicate_trade.txt").read_text() + f"1723161255000000000 {payload}\n"
    )
    with pytest.raises(DataError) as err:
        load_binance_capture(path)
    assert (err.value.line, err.value.field) == (5, field)


def test_a_buffered_diff_missing_a_field_is_reported_at_its_own_line(tmp_path):
    path = tmp_path / "no_e.txt"
    lines = (FIXTURES / "spot_small.txt").read_text().splitlines()
    lines[1] = lines[1].replace('"E":1723161255370,', "")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        load_binance_capture(path)
    assert (err.value.line, err.value.field) == (2, "E")
