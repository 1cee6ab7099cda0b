"""Every recorded file in ../shared/data through the whole pipeline.

The adapter tests check each loader's vendor rules in detail; here every file goes through the
format-agnostic entry point (`adapters.formats.load`), its event count is checked against a
figure computed independently from the raw file, and the stream goes through the engine's own
formats (native, Parquet, CSV) and back byte for byte, through the book sanity replay, and
into merges with other sources.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from adapters.binance_ws import sniff_capture_market
from adapters.formats import detect_format, load
from engine.data.io import open_events, save_events
from engine.data.native import open_native
from engine.data.stream import EventStream
from engine.data.summary import summarize
from engine.errors import DataError
from engine.events import (
    FLAG_LAST,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    KIND_QUOTE,
    KIND_TRADE,
)
from engine.instruments import Instrument

BOOK_KINDS = [KIND_BOOK_DELTA, KIND_BOOK_SNAPSHOT, KIND_BOOK_CLEAR]


# --- independent counts from the raw files ---------------------------------------------------


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def count_tardis(path: Path) -> dict[str, int]:
    """Expected rows per event kind of a Tardis CSV, from the rules of its data type."""
    rows = csv_rows(path)
    header = list(rows[0])
    if "id" in header:  # trades: one event a row
        return {"trade": len(rows)}
    if "ask_amount" in header:  # quotes: bid and ask rows
        return {"quote": 2 * len(rows)}
    if "is_snapshot" in header:  # incremental_book_L2: a clear before each snapshot start
        snap = [r["is_snapshot"] == "true" for r in rows]
        starts = sum(s and (i == 0 or not snap[i - 1]) for i, s in enumerate(snap))
        deltas = sum(not s for s in snap)
        out = {"book_snapshot": sum(snap), "book_clear": starts, "book_delta": deltas}
        return {k: v for k, v in out.items() if v}
    # book_snapshot_N: a clear per row, then every level whose price is present.
    levels = sum(1 for r in rows for k, v in r.items() if k.endswith(".price") and v)
    return {"book_clear": len(rows), "book_snapshot": levels}


def count_binance_depth_csv(path: Path) -> dict[str, int]:
    rows = csv_rows(path)
    snap_ids = {r["last_update_id"] for r in rows if r["update_type"] == "snap"}
    out = {
        "book_clear": len(snap_ids),
        "book_snapshot": sum(r["update_type"] == "snap" for r in rows),
        "book_delta": sum(r["update_type"] == "set" for r in rows),
    }
    return {k: v for k, v in out.items() if v}


def count_vendor_parquet(path: Path) -> dict[str, int]:
    meta = pq.read_metadata(path)
    names = set(meta.schema.names)
    return {"trade": meta.num_rows} if "trade_id" in names else {"quote": 2 * meta.num_rows}


def count_binance_capture(*paths: Path) -> dict[str, int]:
    """Expected rows of consecutive captures of one market (stdlib json, not the loader's).

    Book rows exist only from the snapshot on: a clear, one row per snapshot level, then one
    per level update of every diff the snapshot does not already hold (spot u > lastUpdateId,
    futures u >= lastUpdateId). The recorded files have no sequence gap (adapter tests).
    """
    trade_ids: set[int] = set()
    tickers = 0
    diffs: list[tuple[int, int]] = []  # (u, level updates) of every diff, in order
    snapshot: tuple[int, int] | None = None  # (lastUpdateId, levels)
    futures = False
    for path in paths:
        with gzip.open(path, "rb") as f:
            for line in f:
                msg = json.loads(line[line.index(b" ") + 1 :])
                if "lastUpdateId" in msg:
                    assert snapshot is None, "one snapshot per market in the recorded data"
                    snapshot = (msg["lastUpdateId"], len(msg["bids"]) + len(msg["asks"]))
                    futures = "E" in msg
                    continue
                stream, data = msg["stream"], msg["data"]
                if stream.endswith("@trade"):
                    trade_ids.add(data["t"])
                elif stream.endswith("@bookTicker"):
                    tickers += 1
                elif "@depth" in stream:
                    diffs.append((data["u"], len(data["b"]) + len(data["a"])))
                else:
                    raise AssertionError(f"unexpected stream {stream}")
    out = {"trade": len(trade_ids), "quote": 2 * tickers}
    if snapshot is not None:
        last_id, levels = snapshot
        held = (lambda u: u < last_id) if futures else (lambda u: u <= last_id)
        out["book_clear"] = 1
        out["book_snapshot"] = levels
        out["book_delta"] = sum(n for u, n in diffs if not held(u))
    return out


# --- the recorded files ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Files read together (consecutive files of one market) and their one instrument."""

    files: tuple[str, ...]
    instrument: tuple[str, str]  # (venue, symbol)

    @property
    def id(self) -> str:
        return "+".join(Path(f).name for f in self.files)

    @property
    def count(self) -> Callable[..., dict[str, int]]:
        """The independent counter for the files' format."""
        first = self.files[0]
        if first.startswith("tardis/"):
            return count_tardis
        if first.startswith("binance-ws/"):
            return count_binance_capture
        return count_vendor_parquet if first.endswith(".parquet") else count_binance_depth_csv


FUTURES_BTC = ("binance-futures", "BTCUSDT")
SPOT_BTC = ("binance", "BTCUSDT")
CASES = [
    Case(("tardis/binance-futures_trades_BTCUSDT.csv",), FUTURES_BTC),
    Case(("tardis/binance-futures_quotes_BTCUSDT.csv",), FUTURES_BTC),
    Case(("tardis/deribit_incremental_book_L2_BTC-PERPETUAL.csv",), ("deribit", "BTC-PERPETUAL")),
    Case(("tardis/binance-futures_book_snapshot_25_BTCUSDT.csv",), FUTURES_BTC),
    Case(("tardis/binance-futures_book_snapshot_5_BTCUSDT.csv",), FUTURES_BTC),
    Case(("tardis/bitmex_trades_XBTUSD.csv",), ("bitmex", "XBTUSD")),
    Case(("tardis/huobi-dm-swap_quotes_BTC-USD.csv",), ("huobi-dm-swap", "BTC-USD")),
    # The two depth samples are not contiguous (README): each is read on its own.
    Case(("binance-csv/btcusdt-depth-snap.csv",), SPOT_BTC),
    Case(("binance-csv/btcusdt-depth-update.csv",), SPOT_BTC),
    Case(("binance-csv/btcusdt-trades.parquet",), SPOT_BTC),
    Case(("binance-csv/btcusdt-quotes.parquet",), SPOT_BTC),
    # The 20240809 spot file continues the 20240808 one: one market, one stream. Alone it
    # has no snapshot and cannot build a book (trades and quotes only).
    Case(("binance-ws/spot_btcusdt_20240808.gz", "binance-ws/spot_btcusdt_20240809.gz"), SPOT_BTC),
    Case(("binance-ws/spot_btcusdt_20240809.gz",), SPOT_BTC),
    Case(("binance-ws/spot_ethusdt_20240808.gz",), ("binance", "ETHUSDT")),
    Case(("binance-ws/usdm_btcusdt_20240808.gz",), FUTURES_BTC),
]
CASE_IDS = [c.id for c in CASES]


def case_of(name: str) -> Case:
    """The case of one recorded file read alone."""
    (case,) = [c for c in CASES if c.files[0].endswith(name) and len(c.files) == 1]
    return case


# The README's figures, to check the independent counts themselves against.
README_ROWS = {
    "binance-futures_trades_BTCUSDT.csv": {"trade": 9_999},
    "binance-futures_quotes_BTCUSDT.csv": {"quote": 2 * 9_999},
    "deribit_incremental_book_L2_BTC-PERPETUAL.csv": {"book_snapshot": 15, "book_clear": 1},
    "btcusdt-trades.parquet": {"trade": 2_001},
    "btcusdt-quotes.parquet": {"quote": 2 * 451},
    "spot_ethusdt_20240808.gz": {"trade": 6_106, "quote": 2 * 24_077},
    "usdm_btcusdt_20240808.gz": {"trade": 21_313, "quote": 2 * 66_089},
    "spot_btcusdt_20240809.gz": {"trade": 10_147, "quote": 2 * 45_134},
    "spot_btcusdt_20240808.gz+spot_btcusdt_20240809.gz": {
        "trade": 9_757 + 10_147,
        "quote": 2 * (28_040 + 45_134),
    },
}


@pytest.fixture(scope="module")
def streams(shared_data: Path) -> Callable[[Case], EventStream]:
    """Each case loaded once for the module, through the format-detecting entry point."""
    cache: dict[str, EventStream] = {}

    def get(case: Case) -> EventStream:
        if case.id not in cache:
            cache[case.id] = load([shared_data / f for f in case.files])
        return cache[case.id]

    return get


def kind_counts(events: np.ndarray) -> dict[str, int]:
    names = {
        KIND_BOOK_DELTA: "book_delta",
        KIND_BOOK_SNAPSHOT: "book_snapshot",
        KIND_BOOK_CLEAR: "book_clear",
        KIND_TRADE: "trade",
        KIND_QUOTE: "quote",
    }
    counts = np.bincount(events["kind"], minlength=256)
    assert counts.sum() == sum(counts[k] for k in names)  # no other kind
    return {name: int(counts[k]) for k, name in names.items() if counts[k]}


def test_every_recorded_file_is_covered(shared_data: Path) -> None:
    on_disk = {
        str(p.relative_to(shared_data))
        for p in shared_data.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    covered = {f for case in CASES for f in case.files}
    assert covered == on_disk
    assert len(on_disk) == 15


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_loads_with_the_expected_counts(shared_data: Path, streams, case: Case) -> None:
    stream = streams(case)
    expected = case.count(*(shared_data / f for f in case.files))
    if case.id in README_ROWS:
        for kind, n in README_ROWS[case.id].items():
            assert expected[kind] == n, kind
    assert kind_counts(stream.events) == expected
    assert len(stream) == sum(expected.values())
    assert [i.key for i in stream.instruments] == [case.instrument]
    ev = stream.events
    assert np.all(np.diff(ev["ts_local"]) >= 0)
    assert (ev["instrument"] == 0).all()
    assert ev["flags"][-1] & FLAG_LAST  # the stream ends on a whole message


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_formats_are_detected_by_content(shared_data: Path, case: Case) -> None:
    want = {
        "tardis": "tardis",
        "binance-ws": "binance-ws",
        "binance-csv": "binance-depth-csv",
    }[case.files[0].split("/")[0]]
    if case.files[0].endswith(".parquet"):
        want = "vendor-parquet"
    assert {detect_format(shared_data / f) for f in case.files} == {want}


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_engine_formats_round_trip_byte_identical(tmp_path: Path, streams, case: Case) -> None:
    stream = streams(case)
    native = tmp_path / "data.evt"
    save_events(stream, native)
    back = open_native(native)
    assert isinstance(back.events, np.memmap)
    assert back.events.tobytes() == stream.events.tobytes()
    assert back.instruments.to_list() == stream.instruments.to_list()
    assert back.meta == json.loads(json.dumps(stream.meta, default=str))
    # The native file reads back through the same entry point as the vendor file did.
    assert load(native).events.tobytes() == stream.events.tobytes()
    # And onward: Parquet and CSV made from the native file are the same events again.
    for name in ("data.parquet", "data.csv"):
        save_events(back, tmp_path / name)
        again = open_events(tmp_path / name)
        assert again.events.tobytes() == stream.events.tobytes(), name
        assert again.instruments.to_list() == stream.instruments.to_list(), name


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_loading_is_deterministic(shared_data: Path, streams, case: Case) -> None:
    again = load([shared_data / f for f in case.files])
    assert again.events.tobytes() == streams(case).events.tobytes()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_book_sanity(streams, case: Case) -> None:
    stream = streams(case)
    summary = summarize(stream)
    (book,) = summary["book"]
    ev = stream.events
    book_rows = np.isin(ev["kind"], BOOK_KINDS)
    assert book["book_messages"] == int(
        np.count_nonzero(book_rows & (ev["flags"] & FLAG_LAST != 0))
    )
    assert book["crossed_messages"] == 0
    assert book["levels_dropped_capacity"] == 0
    if book_rows.any():
        assert book["book_messages"] > 0
        assert book["final_bid_levels"] + book["final_ask_levels"] > 0
        bid, ask = book["final_best_bid"], book["final_best_ask"]
        if bid is not None and ask is not None:
            assert Decimal(bid) < Decimal(ask)
    else:
        assert book["final_bid_levels"] == book["final_ask_levels"] == 0


def test_the_deepest_book_fits_the_default_capacity(streams) -> None:
    # The USD-M capture grows to over 5,000 bid levels: the reason for 8,192 slots a side.
    (book,) = summarize(streams(case_of("usdm_btcusdt_20240808.gz")))["book"]
    assert book["instrument"] == "binance-futures:BTCUSDT"
    assert book["final_bid_levels"] == 5_018
    assert book["levels_dropped_capacity"] == 0


# --- merging sources -------------------------------------------------------------------------


def instrument_rows(stream: EventStream, key: tuple[str, str]) -> np.ndarray:
    """The rows of one instrument, with its id set to 0 (to compare with a lone stream)."""
    iid = [i.key for i in stream.instruments].index(key)
    rows = stream.events[stream.events["instrument"] == iid].copy()
    rows["instrument"] = 0
    return rows


def test_tardis_and_binance_capture_merge_into_one_stream(shared_data: Path, streams) -> None:
    tardis = case_of("binance-futures_trades_BTCUSDT.csv")  # 2020
    capture = case_of("spot_ethusdt_20240808.gz")  # 2024
    files = [shared_data / tardis.files[0], shared_data / capture.files[0]]
    merged = load(files)
    assert [i.key for i in merged.instruments] == [tardis.instrument, capture.instrument]
    assert len(merged) == len(streams(tardis)) + len(streams(capture))
    assert np.all(np.diff(merged.events["ts_local"]) >= 0)
    for case in (tardis, capture):
        assert instrument_rows(merged, case.instrument).tobytes() == streams(case).events.tobytes()
    assert merged.meta["source"] == [str(f) for f in files]
    # The other way round: the same order of rows (no time is shared), the ids swapped.
    flipped = load(files[::-1])
    assert [i.key for i in flipped.instruments] == [capture.instrument, tardis.instrument]
    assert (flipped.events["instrument"] == 1 - merged.events["instrument"]).all()
    unmapped = merged.events.copy()
    unmapped["instrument"] = flipped.events["instrument"]
    assert unmapped.tobytes() == flipped.events.tobytes()
    summary = summarize(merged)
    assert [b["crossed_messages"] for b in summary["book"]] == [0, 0]


def test_two_captures_of_one_day_interleave(shared_data: Path, streams, tmp_path: Path) -> None:
    eth, usdm = case_of("spot_ethusdt_20240808.gz"), case_of("usdm_btcusdt_20240808.gz")
    merged = load([shared_data / eth.files[0], shared_data / usdm.files[0]])
    ts = merged.events["ts_local"]
    assert np.all(np.diff(ts) >= 0)
    inst = merged.events["instrument"]
    assert np.count_nonzero(np.diff(inst.astype(np.int64))) > 10_000  # truly interleaved
    for case in (eth, usdm):
        assert instrument_rows(merged, case.instrument).tobytes() == streams(case).events.tobytes()
    # Each capture's messages stay whole: between a row and its message's FLAG_LAST row
    # there is no row of the other instrument.
    flags = merged.events["flags"]
    open_msg = -1
    for i, f in zip(inst.tolist(), flags.tolist(), strict=True):
        assert open_msg in (-1, i)
        open_msg = -1 if f & FLAG_LAST else i
    books = summarize(merged)["book"]
    assert [(b["instrument"], b["crossed_messages"]) for b in books] == [
        ("binance:ETHUSDT", 0),
        ("binance-futures:BTCUSDT", 0),
    ]
    path = tmp_path / "day.evt"
    save_events(merged, path)
    assert load(path).events.tobytes() == merged.events.tobytes()


def test_one_instrument_from_two_sources_needs_one_grid(shared_data: Path) -> None:
    # Tardis' binance-futures BTCUSDT of 2020 traded in 0.01, the 2024 capture quotes in 0.1:
    # the inferred grids differ, so the two cannot be one instrument as they are...
    files = [
        shared_data / "tardis/binance-futures_trades_BTCUSDT.csv",
        shared_data / "binance-ws/usdm_btcusdt_20240808.gz",
    ]
    with pytest.raises(DataError, match="binance-futures:BTCUSDT registered twice"):
        load(files)
    # ...but with the instrument given, both convert to its grid and merge into one.
    inst = Instrument("BTCUSDT", "binance-futures", Decimal("0.01"), Decimal("0.001"), "perpetual")
    merged = load(files, instrument=inst)
    assert merged.instruments.to_list() == [inst.to_dict()]
    assert len(merged) == 9_999 + len(load(files[1]))
    assert np.all(np.diff(merged.events["ts_local"]) >= 0)


def test_files_are_grouped_by_market_wherever_they_are_listed(shared_data: Path, streams) -> None:
    ws = shared_data / "binance-ws"
    day1, day2 = ws / "spot_btcusdt_20240808.gz", ws / "spot_btcusdt_20240809.gz"
    eth = ws / "spot_ethusdt_20240808.gz"
    # The second BTC day is listed after the ETH capture: it still continues the first day.
    mixed = load([day1, eth, day2])
    assert [i.key for i in mixed.instruments] == [SPOT_BTC, ("binance", "ETHUSDT")]
    (btc_case,) = [c for c in CASES if len(c.files) == 2]
    btc = streams(btc_case)
    assert instrument_rows(mixed, SPOT_BTC).tobytes() == btc.events.tobytes()
    assert mixed.events.tobytes() == load([day1, day2, eth]).events.tobytes()
    (btc_meta,) = [m for m in mixed.meta["merged_from"] if m["symbol"] == "BTCUSDT"]
    assert btc_meta["lines_per_file"] == [41_249, 58_325]
    assert btc_meta["sequence_gaps"] == 0


def test_spot_and_futures_of_one_symbol_are_two_markets(shared_data: Path) -> None:
    ws = shared_data / "binance-ws"
    merged = load([ws / "spot_btcusdt_20240808.gz", ws / "usdm_btcusdt_20240808.gz"])
    assert [i.key for i in merged.instruments] == [SPOT_BTC, FUTURES_BTC]
    assert np.all(np.diff(merged.events["ts_local"]) >= 0)
    assert [b["crossed_messages"] for b in summarize(merged)["book"]] == [0, 0]


def test_tardis_trades_and_quotes_of_one_market_merge(shared_data: Path) -> None:
    trades = shared_data / "tardis/binance-futures_trades_BTCUSDT.csv"
    quotes = shared_data / "tardis/binance-futures_quotes_BTCUSDT.csv"
    merged = load([trades, quotes])
    assert [i.key for i in merged.instruments] == [FUTURES_BTC]  # same grid: one instrument
    assert kind_counts(merged.events) == {"trade": 9_999, "quote": 2 * 9_999}
    assert np.all(np.diff(merged.events["ts_local"]) >= 0)


@pytest.mark.parametrize(
    ("name", "market"),
    [
        ("spot_btcusdt_20240808.gz", ("BTCUSDT", False)),
        ("spot_btcusdt_20240809.gz", ("BTCUSDT", False)),
        ("spot_ethusdt_20240808.gz", ("ETHUSDT", False)),
        ("usdm_btcusdt_20240808.gz", ("BTCUSDT", True)),
    ],
)
def test_capture_market_is_sniffed(shared_data: Path, name: str, market: tuple) -> None:
    assert sniff_capture_market(shared_data / "binance-ws" / name) == market
