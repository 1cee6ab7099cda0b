"""The `cockpit data` commands, through `cockpit.cli.main` and once as a real process."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cockpit.cli import main
from engine.data.io import open_events
from engine.data.native import open_native
from engine.events import (
    FLAG_LAST,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    KIND_NAMES,
)

SUFFIX = {"native": ".evt", "parquet": ".parquet", "csv": ".csv"}
N_EVENTS = 20_000


def run(capsys, *argv: object) -> tuple[int, str, str]:
    """Run `cockpit ARGV` in-process; returns (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(code: int, out: str, err: str, *words: str) -> None:
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cockpit: ")
    for word in words:
        assert word in lines[0]


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> Path:
    """A two-instrument synthetic market written by `cockpit data generate`."""
    path = tmp_path_factory.mktemp("cli") / "market.evt"
    assert (
        main(["data", "generate", str(path), "--events", str(N_EVENTS), "--instruments", "2"]) == 0
    )
    return path


# --- generate --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["native", "parquet", "csv"])
def test_generate_is_seeded_byte_for_byte(tmp_path: Path, capsys, fmt: str) -> None:
    suffix = SUFFIX[fmt]
    a, b, c = (tmp_path / f"{name}{suffix}" for name in "abc")
    code, out, err = run(capsys, "data", "generate", a, "--events", "5_000", "--seed", 3)
    assert (code, err) == (0, "")
    assert out == f"5,000 synthetic events (seed 3) -> {a} ({fmt})\n"
    assert run(capsys, "data", "generate", b, "--events", 5000, "--seed", 3)[0] == 0
    assert run(capsys, "data", "generate", c, "--events", 5000, "--seed", 4)[0] == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    stream = open_events(a)
    assert len(stream) == 5_000
    if fmt != "csv":  # CSV carries instruments (sidecar), not the stream's meta
        assert stream.meta["seed"] == 3
    other = open_events(c)
    assert other.events.tobytes() != stream.events.tobytes()
    assert [i.symbol for i in stream.instruments] == ["SYN0"]


def test_generate_defaults_and_format_option(tmp_path: Path, capsys) -> None:
    out_file = tmp_path / "market.data"
    code, out, _ = run(
        capsys, "data", "generate", out_file, "--events", 1_000, "--format", "parquet"
    )
    assert code == 0 and out.endswith("(parquet)\n")
    stream = open_events(out_file)
    assert len(stream) == 1_000
    assert stream.meta["seed"] == 7  # the default seed


# --- convert ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst"), list(itertools.product(["native", "parquet", "csv"], repeat=2))
)
def test_convert_between_every_pair_of_formats(
    market: Path, tmp_path: Path, capsys, src: str, dst: str
) -> None:
    original = open_native(market)
    source = tmp_path / f"source{SUFFIX[src]}"
    if src == "native":
        source = market
    else:
        assert run(capsys, "data", "convert", market, source)[0] == 0
    target = tmp_path / f"target{SUFFIX[dst]}"
    code, out, err = run(capsys, "data", "convert", source, target)
    assert (code, err) == (0, "")
    assert out.startswith(f"{N_EVENTS:,} events from 1 file(s) -> {target} ({dst}); read ")
    back = open_events(target)
    assert back.events.tobytes() == original.events.tobytes()
    assert back.instruments.to_list() == original.instruments.to_list()


def test_convert_merges_several_inputs(market: Path, tmp_path: Path, capsys) -> None:
    other = tmp_path / "other.evt"
    assert run(capsys, "data", "generate", other, "--events", 3_000, "--seed", 99)[0] == 0
    merged = tmp_path / "merged.evt"
    code, out, _ = run(capsys, "data", "convert", market, other, merged)
    assert code == 0
    assert out.startswith(f"{N_EVENTS + 3_000:,} events from 2 file(s)")
    stream = open_native(merged)
    assert np.all(np.diff(stream.events["ts_local"]) >= 0)
    # Same venue and symbol SYN0 with the same grid in both: one instrument, not two.
    assert [i.symbol for i in stream.instruments] == ["SYN0", "SYN1"]
    assert np.bincount(stream.events["instrument"]).sum() == N_EVENTS + 3_000


# --- inspect ---------------------------------------------------------------------------------


def test_inspect_json_numbers(market: Path, capsys) -> None:
    code, out, err = run(capsys, "data", "inspect", market, "--json")
    assert (code, err) == (0, "")
    summary = json.loads(out)
    ev = open_native(market).events
    kinds = np.bincount(ev["kind"], minlength=256)
    assert summary["events"] == N_EVENTS
    assert summary["bytes"] == N_EVENTS * 40
    assert summary["kinds"] == {KIND_NAMES[k]: int(kinds[k]) for k in KIND_NAMES if kinds[k]}
    assert summary["kinds"]["book_clear"] == 2  # one initial snapshot per instrument
    assert summary["kinds"]["book_snapshot"] == 2 * 40
    assert summary["messages"] == int(np.count_nonzero(ev["flags"] & FLAG_LAST))
    assert summary["time_span"]["monotone"] is True
    per_instrument = np.bincount(ev["instrument"]).tolist()
    assert [
        (i["id"], i["symbol"], i["tick_size"], i["lot_size"], i["events"])
        for i in summary["instruments"]
    ] == [
        (0, "SYN0", "0.01", "0.001", per_instrument[0]),
        (1, "SYN1", "0.01", "0.001", per_instrument[1]),
    ]
    book_kind = np.isin(ev["kind"], [KIND_BOOK_DELTA, KIND_BOOK_SNAPSHOT, KIND_BOOK_CLEAR])
    for iid, book in enumerate(summary["book"]):
        ends = book_kind & (ev["instrument"] == iid) & ((ev["flags"] & FLAG_LAST) != 0)
        assert book["instrument"] == f"synthetic:SYN{iid}"
        assert book["book_messages"] == int(ends.sum()) > 1_000
        assert book["crossed_messages"] == 0
        assert book["levels_dropped_capacity"] == 0
        assert float(book["final_best_bid"]) < float(book["final_best_ask"])


def test_inspect_table_and_no_book(market: Path, capsys) -> None:
    code, out, _ = run(capsys, "data", "inspect", market)
    assert code == 0
    assert out.startswith(f"{N_EVENTS:,} events ({N_EVENTS * 40:,} bytes in memory)")
    assert "book sanity (replayed)" in out and "SYN1" in out
    code, out, _ = run(capsys, "data", "inspect", market, "--json", "--no-book")
    assert code == 0 and "book" not in json.loads(out)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["frobnicate"], ["usage error", "invalid choice: 'frobnicate'"]),
        (["data"], ["usage error", "choose inspect, convert or generate"]),
        (["data", "explode"], ["usage error", "invalid choice: 'explode'"]),
        (["data", "inspect"], ["usage error", "required: files"]),
        (["data", "inspect", "{tmp}/missing.evt"], ["usage error", "missing.evt: no such file"]),
        (["data", "inspect", "{tmp}"], ["usage error", "is a directory"]),
        (["data", "convert", "{market}", "{tmp}/out.txt"], ["usage error", "suffix '.txt'"]),
        (["data", "convert", "{market}", "{tmp}/out.csv", "--format", "xml"], ["invalid choice"]),
        (
            ["data", "inspect", "{market}", "--tick-size", "0.01"],
            ["usage error", "--tick-size and --lot-size go together"],
        ),
        (["data", "inspect", "{market}", "--tick-size", "-1", "--lot-size", "1"], ["positive"]),
        (["data", "inspect", "{market}", "--repair", "shuffle"], ["invalid choice: 'shuffle'"]),
        (["data", "generate", "{tmp}/x.evt", "--events", "abc"], ["'abc' is not a whole number"]),
        (["data", "generate", "{tmp}/x.evt", "--events", "0"], ["'0' must be positive"]),
        (["data", "generate", "{tmp}/x.evt", "--events", "10"], ["n_events must be at least 43"]),
        (["data", "generate", "{tmp}/x.evt", "--seed", "-1"], ["seed must be between 0"]),
        (["data", "generate", "{tmp}/x.bin"], ["suffix '.bin'"]),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    market: Path, tmp_path: Path, capsys, argv: list[str], words: list[str]
) -> None:
    argv = [a.format(tmp=tmp_path, market=market) for a in argv]
    assert_usage_error(*run(capsys, *argv), *words)
    assert not (tmp_path / "out.txt").exists()  # refused before anything was written
    assert not (tmp_path / "x.evt").exists()


def test_bad_data_file_names_file_and_line(market: Path, tmp_path: Path, capsys) -> None:
    csv = tmp_path / "bad.csv"
    assert run(capsys, "data", "convert", market, csv)[0] == 0
    lines = csv.read_text().splitlines()
    cells = lines[1_234].split(",")
    cells[4] = '"bock_delta"'  # the kind column
    lines[1_234] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "data", "inspect", csv)
    assert_usage_error(code, out, err, "bad input data", f"{csv}, line 1235, field 'kind'")
    assert "unknown kind 'bock_delta'" in err


def test_bad_vendor_file_names_file_and_line(tmp_path: Path, capsys) -> None:
    tardis = tmp_path / "trades.csv"
    tardis.write_text(
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "binance-futures,BTCUSDT,1582329602111000,1582329602418379,1,buy,9682,0.132\n"
        "binance-futures,BTCUSDT,1582329602116000,1582329602419000,2,sell,96x1.9,0.4\n"
    )
    code, out, err = run(capsys, "data", "convert", tardis, tmp_path / "out.evt")
    assert_usage_error(code, out, err, "bad input data", f"{tardis}, line 3, field 'price'")
    assert not (tmp_path / "out.evt").exists()


def test_unknown_format_is_reported(tmp_path: Path, capsys) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello,world\n1,2\n")
    code, out, err = run(capsys, "data", "inspect", path)
    assert_usage_error(code, out, err, "unreadable file", str(path), "unknown format")


def test_repair_sort_reports_the_count(tmp_path: Path, capsys) -> None:
    tardis = tmp_path / "trades.csv"
    rows = [(1, 10), (2, 30), (3, 20), (4, 40), (5, 25), (6, 50)]  # (id, local µs offset)
    tardis.write_text(
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        + "".join(
            f"binance-futures,BTCUSDT,{1_582_329_602_000_000 + i},{1_582_329_602_000_000 + t},"
            f"{i},buy,9682.{i},0.1\n"
            for i, t in rows
        )
    )
    code, out, err = run(capsys, "data", "inspect", tardis)
    assert_usage_error(code, out, err, f"{tardis}, line 4, field 'local_timestamp'", "backwards")
    out_file = tmp_path / "sorted.csv"
    code, out, err = run(capsys, "data", "convert", tardis, out_file, "--repair", "sort")
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == 'repairs: {"sorted_rows": 4}'
    stream = open_events(out_file)
    # Sorted stably by local time: ids 1, 3, 5, 2, 4, 6 (prices 9682.1, 9682.3, ... in the
    # inferred tick of 0.1).
    assert stream.events["price"].tolist() == [96_821, 96_823, 96_825, 96_822, 96_824, 96_826]

    # The engine's own CSV takes the same repair (the rows just written, shuffled back).
    lines = out_file.read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    out_file.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "data", "inspect", out_file, "--json", "--repair", "sort")
    assert code == 0
    assert json.loads(out)["meta"]["repairs"] == {"sorted_rows": 2}


# --- a real process --------------------------------------------------------------------------


def cockpit_command() -> list[str]:
    """The installed console script beside this interpreter, else `python -m cockpit`."""
    script = Path(sys.executable).parent / "cockpit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cockpit"]


def test_as_a_real_process(tmp_path: Path) -> None:
    env = {**os.environ, "COCKPIT_DEBUG": ""}
    path = tmp_path / "m.evt"

    def cockpit(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*cockpit_command(), *argv], capture_output=True, text=True, env=env, timeout=300
        )

    done = cockpit("data", "generate", str(path), "--events", "3000", "--seed", "5")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"3,000 synthetic events (seed 5) -> {path} (native)\n"
    done = cockpit("data", "inspect", str(path), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["events"] == 3_000
    assert summary["book"][0]["crossed_messages"] == 0
    done = cockpit("data", "inspect", str(tmp_path / "nope.evt"))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"cockpit: usage error: {tmp_path / 'nope.evt'}: no such file\n"


# --- several vendor files at once --------------------------------------------------------------

FIXTURES = Path(__file__).parent / "adapters" / "fixtures"


def test_vendor_files_of_different_markets_are_merged(tmp_path: Path, capsys) -> None:
    # Spot and USD-M captures of one symbol over the same seconds: two markets, one stream.
    spot, usdm = (
        FIXTURES / "binance_ws" / "spot_small.txt",
        FIXTURES / "binance_ws" / "usdm_gap.txt",
    )
    out_file = tmp_path / "both.evt"
    code, out, err = run(capsys, "data", "convert", spot, usdm, out_file)
    assert (code, err) == (0, ""), err
    merged = open_native(out_file)
    assert [i.key for i in merged.instruments] == [
        ("binance", "BTCUSDT"),
        ("binance-futures", "BTCUSDT"),
    ]
    assert np.all(np.diff(merged.events["ts_local"]) >= 0)
    for path, iid in ((spot, 0), (usdm, 1)):
        code, out, _ = run(capsys, "data", "inspect", path, "--json", "--no-book")
        assert json.loads(out)["events"] == np.count_nonzero(merged.events["instrument"] == iid)


def test_tardis_trades_and_quotes_convert_together(tmp_path: Path, capsys) -> None:
    base = "binance-futures,BTCUSDT,1582329602{:06d},1582329602{:06d}"
    trades = tmp_path / "trades.csv"
    trades.write_text(
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        + "".join(base.format(t, t + 5) + f",{t},buy,9682.5,0.1\n" for t in (10, 30, 50))
    )
    quotes = tmp_path / "quotes.csv"
    quotes.write_text(
        "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n"
        + "".join(base.format(t, t + 5) + ",1.5,9682.6,9682.4,2\n" for t in (20, 40))
    )
    code, out, err = run(capsys, "data", "inspect", trades, quotes, "--json")
    assert (code, err) == (0, ""), err
    summary = json.loads(out)
    assert summary["kinds"] == {"trade": 3, "quote": 4}
    assert [(i["venue"], i["symbol"], i["tick_size"]) for i in summary["instruments"]] == [
        ("binance-futures", "BTCUSDT", "0.1")
    ]
    assert summary["time_span"]["monotone"] is True
