"""`cockpit backtest` (cockpit/cli_backtest.py): parsing, running, printing, bad input."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cockpit.cli_backtest import add_parser, parse_duration, parse_pairs, run
from engine.errors import CockpitError, DataError, UsageError
from engine.strategy import StrategyError

ROOT = Path(__file__).resolve().parents[2]
MAKER = str(ROOT / "examples" / "market_maker.py")
PAIRS = str(ROOT / "examples" / "pairs_trader.py")
BTC = "binance-ws/spot_btcusdt_20240808.gz"
ETH = "binance-ws/spot_ethusdt_20240808.gz"
SMALL = "events=20000,seed=3"


class _Parser(argparse.ArgumentParser):
    """Raises like cockpit.cli's parser, so usage errors take the CockpitError path."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def parse(*argv: str) -> argparse.Namespace:
    parser = _Parser(prog="cockpit")
    add_parser(parser.add_subparsers(dest="command", parser_class=_Parser))
    return parser.parse_args(["backtest", *argv])


def backtest(*argv: str) -> str:
    """Run with these arguments (each string split on spaces); returns what was printed."""
    out = io.StringIO()
    assert run(parse(*[w for a in argv for w in a.split()]), out=out) == 0
    return out.getvalue()


# ---------------------------------------------------------------------------- runs


def test_json_report_on_the_synthetic_market():
    doc = json.loads(backtest(MAKER, f"--synthetic {SMALL} --param half_spread=0 --json"))
    assert doc["strategy"] == "MarketMaker" and doc["instances"] == 1
    assert doc["data_events"] == 20_000
    assert doc["orders"] > 0 and doc["fills"] > 0
    assert doc["total_pnl"] == pytest.approx(
        doc["realized_pnl"] + doc["unrealized_pnl"] - doc["fees"]
    )
    assert doc["files"] == {}


def test_table_report_and_files_on_real_data(shared_data, tmp_path):
    text = backtest(
        MAKER,
        f"--data {shared_data / BTC}",
        "--param half_spread=0 --param size=200 --param max_position=2000",
        "--latency entry=2ms,report=500us --fees maker=-0.0001,taker=0.0005",
        f"--queue-model proportional --capital 50000 --out {tmp_path / 'run'}",
    )
    labels = ("total PnL", "Sharpe", "max drawdown", "fill ratio", "order-to-trade", "events/s")
    for label in (*labels, "BTCUSDT"):
        assert label in text
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["capital"] == 50_000.0
    assert report["fees"] < 0  # a maker rebate and only maker fills
    fills = pq.read_table(tmp_path / "run" / "fills.parquet")
    assert fills.num_rows == report["fills"] > 0
    assert set(fills["liq_name"].to_pylist()) == {"maker"}


def test_two_data_groups_make_two_instruments(shared_data):
    doc = json.loads(
        backtest(
            PAIRS,
            f"--data {shared_data / BTC} --data {shared_data / ETH}",
            "--param value_ratio=0.1 --param size=1000 --json",
        )
    )
    assert [i["symbol"] for i in doc["instruments"]] == ["BTCUSDT", "ETHUSDT"]
    assert all(i["volume_lots"] > 0 for i in doc["instruments"])


def test_params_file_with_several_instances(tmp_path):
    path = tmp_path / "params.json"
    path.write_text(json.dumps([{"half_spread": 0}, {"half_spread": 2, "size": 50}]))
    out = tmp_path / "out"
    argv = f"--synthetic {SMALL} --params-file {path} --param skew=0 --out {out} --json"
    doc = json.loads(backtest(MAKER, argv))
    assert doc["instances"] == 2
    inst = pq.read_table(out / "instances.parquet").to_pydict()
    assert inst["half_spread"] == [0, 2] and inst["size"] == [100, 50]
    assert inst["skew"] == [0.0, 0.0]  # --param applies to every instance


def test_parse_helpers():
    assert parse_duration("1ms", "x") == 1_000_000
    assert parse_duration("250us", "x") == 250_000
    assert parse_duration("2s", "x") == 2_000_000_000
    assert parse_duration("1500", "x") == 1500
    assert parse_duration("0.5ms", "x") == 500_000
    assert parse_pairs("a=1, b=x", "x") == {"a": "1", "b": "x"}


# ------------------------------------------------------------------------ bad input


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


TWO = """
from engine.strategy import Strategy
class A(Strategy):
    params = {"x": 1}
class B(Strategy):
    params = {"x": 1}
"""
NONE = "x = 1\n"
BROKEN = "from engine.strategy import Strategy\nclass A(Strategy)\n    pass\n"
UNCOMPILABLE = """
from engine.strategy import Strategy
class Bad(Strategy):
    params = {"instrument": 0}
    def on_data(self, ctx, ev):
        d = {"a": object()}
"""


SYN = f"--synthetic {SMALL}"


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (f"{MAKER} {SYN} --param sise=3", "unknown parameter 'sise'"),
        (f"{MAKER} {SYN} --param size=abc", "'size' expects int"),
        (f"{MAKER} {SYN} --param size", "NAME=VALUE"),
        (f"{MAKER} --data /nonexistent/file.gz", "no such data file"),
        (f"/nonexistent/strategy.py {SYN}", "no such strategy"),
        (f"{MAKER} {SYN} --latency entry=fast", "not a duration"),
        (f"{MAKER} {SYN} --latency exit=1ms", "unknown key 'exit'"),
        (f"{MAKER} {SYN} --fees maker=x", "not a number"),
        (f"{MAKER} {SYN} --fees maker", "key=value"),
        (f"{MAKER} {SYN} --risk max_pos=1", "unknown limit"),
        (f"{MAKER} {SYN} --risk max_position=1.5", "whole"),
        (f"{MAKER} --synthetic events=ten", "not a whole number"),
        (f"{MAKER} --synthetic events=10", "n_events must be at least"),
        (f"{MAKER} --synthetic rows=10", "unknown key 'rows'"),
        (MAKER, "one of the arguments --data --synthetic is required"),
        (f"{MAKER} {SYN} --data x", "not allowed with"),
        (f"{MAKER} {SYN} --capital -5", "positive"),
        (f"{MAKER} {SYN} --queue-model fifo", "invalid choice"),
    ],
)
def test_bad_arguments(argv, match):
    with pytest.raises(UsageError, match=match) as info:
        backtest(argv)
    assert "\n" not in str(info.value)  # one line


def test_bad_strategy_files(tmp_path):
    for text, match in [
        (TWO, "expected one Strategy subclass, found A, B"),
        (NONE, "expected one Strategy subclass, found none"),
        (BROKEN, "importing the strategy failed"),
    ]:
        path = write(tmp_path, f"s{abs(hash(text))}.py", text)
        with pytest.raises(StrategyError, match=match):
            run(parse(path, "--synthetic", SMALL), out=io.StringIO())
    path = write(tmp_path, "bad.py", UNCOMPILABLE)
    with pytest.raises(StrategyError, match=r"strategy Bad, method on_data at .*bad\.py:6"):
        run(parse(path, "--synthetic", SMALL), out=io.StringIO())
    with pytest.raises(UsageError, match="Python file"):
        run(parse(write(tmp_path, "s.txt", NONE), "--synthetic", SMALL), out=io.StringIO())


def test_bad_params_files(tmp_path):
    cases = [
        ("missing.json", None, "no such parameters file"),
        ("bad.json", "{", "not JSON"),
        ("list.json", "[1, 2]", "expected a JSON object"),
        ("empty.json", "[]", "expected a JSON object"),
        ("unknown.json", '{"nope": 1}', "unknown parameter 'nope'"),
    ]
    for name, text, match in cases:
        if text is not None:
            write(tmp_path, name, text)
        argv = (MAKER, "--synthetic", SMALL, "--params-file", str(tmp_path / name))
        with pytest.raises(UsageError, match=match):
            run(parse(*argv), out=io.StringIO())


def test_bad_data_file(tmp_path):
    path = write(tmp_path, "junk.csv", "hello,world\n1,2\n")
    with pytest.raises(DataError):
        run(parse(MAKER, "--data", path), out=io.StringIO())


# ---------------------------------------------------------------------- subprocess

_RUNNER = """
import argparse, sys
from cockpit.cli_backtest import add_parser, run
from engine.errors import CockpitError, UsageError
class P(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)
p = P(prog="cockpit")
add_parser(p.add_subparsers(dest="command", parser_class=P))
try:
    sys.exit(run(p.parse_args(sys.argv[1:])))
except CockpitError as exc:
    print(f"cockpit: {exc}", file=sys.stderr)
    sys.exit(2)
"""


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def test_subprocess_module_entry(tmp_path):
    cmd = [sys.executable, "-c", _RUNNER, "backtest", MAKER, "--synthetic", SMALL]
    ok = _run([*cmd, "--json"])
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["data_events"] == 20_000
    bad = _run([*cmd, "--param", "q=1"])
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "unknown parameter 'q'" in bad.stderr


def test_subprocess_cockpit_backtest(tmp_path):
    """Through the real `cockpit` entry point, once cockpit.cli wires the subcommand."""
    from cockpit.cli import build_parser

    sub = next(
        (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)), None
    )
    if sub is None or "backtest" not in sub.choices:
        pytest.skip("cockpit.cli does not wire `backtest` yet (cli_backtest.add_parser/run)")
    cmd = [sys.executable, "-m", "cockpit", "backtest", MAKER, "--synthetic", SMALL]
    ok = _run([*cmd, "--json"])
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["strategy"] == "MarketMaker"
    bad = _run([*cmd, "--param", "size=abc"])
    assert bad.returncode == 2 and "'size' expects int" in bad.stderr
    missing = _run([sys.executable, "-m", "cockpit", "backtest", MAKER])
    assert missing.returncode == 2


def test_errors_are_cockpit_errors():
    assert issubclass(StrategyError, CockpitError) and issubclass(UsageError, CockpitError)


def test_a_user_risk_rule_from_the_command_line(tmp_path):
    rule = tmp_path / "my_rules.py"
    rule.write_text(
        "def no_orders_above(strat, inst, side, price, qty, position, mid_x2, now, params):\n"
        "    return 7 if qty > params[0] else 0\n"
    )
    base = json.loads(backtest(MAKER, SYN, "--param size=2 --json"))
    doc = json.loads(
        backtest(MAKER, SYN, f"--param size=2 --risk-rule {rule}:no_orders_above", "--json")
    )
    assert base["orders_denied"] == 0 and base["orders"] > 0
    assert doc["orders"] == 0 and doc["orders_denied"] > 0
    assert doc["alerts"] == {"user_rule": doc["orders_denied"]}
    loose = json.loads(
        backtest(
            MAKER,
            SYN,
            f"--param size=2 --risk-rule {rule}:no_orders_above --risk-rule-params 2",
            "--json",
        )
    )
    assert loose["orders_denied"] == 0 and loose["orders"] == base["orders"]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("nofile.py", "expected FILE.py:FUNCTION"),
        ("/nonexistent/r.py:f", "no such risk rule file"),
        ("RULE:missing", "has no function 'missing'"),
    ],
)
def test_bad_risk_rules(tmp_path, spec, match):
    rule = tmp_path / "r.py"
    rule.write_text("def f(a, b, c, d, e, f, g, h, i):\n    return 0\n")
    with pytest.raises(UsageError, match=match):
        backtest(MAKER, SYN, f"--risk-rule {spec.replace('RULE', str(rule))}")
    with pytest.raises(UsageError, match="--risk-rule-params value 2"):
        backtest(MAKER, SYN, f"--risk-rule {rule}:f --risk-rule-params 1,x")
