"""`cockpit optimize` (cockpit/cli_optimize.py): bad input, a tiny run end to end."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cockpit import cli
from cockpit.cli_optimize import add_parser, run, split_params
from engine.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
MOMENTUM = str(ROOT / "examples" / "momentum.py")
FAST = [
    "--param", "fast_ns=300000000", "--param", "slow_ns=3000000000",
    "--param", "warmup_ns=3000000000",
]  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """Raises like cockpit.cli's parser, so usage errors take the CockpitError path."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def parse(*argv: str) -> argparse.Namespace:
    parser = _Parser(prog="cockpit")
    add_parser(parser.add_subparsers(dest="command", parser_class=_Parser))
    return parser.parse_args(["optimize", *argv])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--param", "nope=1:2"], "unknown parameter 'nope'"),
        (["--param", "threshold=5:1"], "bounds 5:1 are inverted"),
        (["--param", "threshold=1:5", "--budget", "3"], "budget 3 is below the population size"),
        (["--param", "threshold=1:5:real"], "the third field may only be 'int'"),
        (["--param", "threshold=a:b"], "bounds must be numbers"),
        (["--param", "threshold"], "expected NAME=LOW:HIGH"),
        (["--param", "max_units=1.5:3"], "must be whole"),
        (["--param", "threshold=1:5", "--objective", "sortino"], "objective 'sortino' unknown"),
        (["--param", "threshold=1:5", "--walk-forward", "2"], "--walk-forward needs --holdout"),
        ([], "nothing to optimize"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(argv, message, tmp_path):
    args = parse(MOMENTUM, "--synthetic", "20000", "--out", str(tmp_path / "o"), *argv)
    with pytest.raises(UsageError, match=message) as info:
        run(args, io.StringIO())
    assert "\n" not in str(info.value)
    assert not (tmp_path / "o").exists()  # nothing loaded or written before the checks


def test_argument_errors_come_from_the_parser():
    with pytest.raises(UsageError, match="budget"):
        parse(MOMENTUM, "--synthetic", "1000", "--budget", "0")
    with pytest.raises(UsageError, match="holdout"):
        parse(MOMENTUM, "--synthetic", "1000", "--holdout", "1.5")


def test_params_split_into_searched_and_fixed():
    specs, fixed = split_params(["threshold=1:5", "stop_ticks=0:9:int", "size=200"])
    assert [s.name for s in specs] == ["threshold", "stop_ticks"] and specs[1].integer
    assert fixed == {"size": "200"}
    with pytest.raises(UsageError, match="given twice"):
        split_params(["size=1", "size=2"])


def test_an_objective_that_returns_nan_is_a_usage_error(tmp_path, monkeypatch):
    (tmp_path / "nan_objective.py").write_text("def score(report):\n    return float('nan')\n")
    monkeypatch.chdir(tmp_path)
    args = parse(
        MOMENTUM, "--synthetic", "events=20000,seed=3", *FAST, "--param", "threshold=0.5:4",
        "--objective", "python:nan_objective.score", "--budget", "8", "--popsize", "4",
    )  # fmt: skip
    with pytest.raises(UsageError, match="objective returned nan"):
        run(args, io.StringIO())


def test_a_tiny_run_end_to_end_writes_what_backtest_reads(tmp_path):
    out_dir = tmp_path / "opt"
    args = parse(
        MOMENTUM, "--synthetic", "20000", *FAST,
        "--param", "threshold=0.5:4", "--param", "stop_ticks=0:40:int",
        "--budget", "8", "--popsize", "4", "--seed", "3", "--workers", "2",
        "--holdout", "0.3", "--objective", "pnl", "--out", str(out_dir), "--json",
    )  # fmt: skip
    buf = io.StringIO()
    assert run(args, buf) == 0
    doc = json.loads(buf.getvalue())
    assert doc["evaluations"] == 8 and doc["workers"] == 2 and doc["popsize"] == 4
    assert doc["windows"][0]["out_of_sample"] is not None
    assert doc["best_score"] is not None
    best = json.loads((out_dir / "best_params.json").read_text())
    assert best == doc["best_params"] and isinstance(best["stop_ticks"], int)
    assert pq.read_table(out_dir / "evaluations.parquet").num_rows == 8

    from cockpit.cli_backtest import add_parser as add_backtest
    from cockpit.cli_backtest import run as run_backtest

    parser = _Parser(prog="cockpit")
    add_backtest(parser.add_subparsers(dest="command", parser_class=_Parser))
    bt = parser.parse_args(
        ["backtest", MOMENTUM, "--synthetic", "events=20000", "--params-file",
         str(out_dir / "best_params.json"), "--json"]
    )  # fmt: skip
    text = io.StringIO()
    assert run_backtest(bt, text) == 0
    assert json.loads(text.getvalue())["strategy"] == "Momentum"


def test_the_table_report_shows_in_and_out_of_sample(tmp_path):
    args = parse(
        MOMENTUM, "--synthetic", "20000", *FAST, "--param", "threshold=0.5:4",
        "--budget", "4", "--popsize", "4", "--holdout", "0.3", "--out", str(tmp_path),
    )  # fmt: skip
    buf = io.StringIO()
    assert run(args, buf) == 0
    text = buf.getvalue()
    for words in ("threshold", "in sample", "out of sample", "total_pnl", "4 evaluations"):
        assert words in text


def test_usage_errors_exit_2_through_the_cockpit_command(capsys):
    code = cli.main(["optimize", MOMENTUM, "--synthetic", "20000", "--param", "threshold=5:1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "usage error" in err and "inverted" in err and err.count("\n") == 1
