"""`cockpit backtest`: run a strategy file over data files, print the report, write Parquet.

    cockpit backtest examples/market_maker.py --data spot_btcusdt_20240808.gz \
        --param half_spread=0 --param size=200 --latency entry=1ms,report=1ms \
        --fees maker=0.0002,taker=0.0005 --out out/

Each `--data` option is one group of files loaded together (consecutive files of one
market, e.g. two days of one capture); several `--data` options are merged by local time
into one multi-instrument stream, numbered in the order given (`--data BTC.gz --data ETH.gz`:
BTC is instrument 0, ETH instrument 1). `--synthetic events=1000000,instruments=2,seed=7`
runs on the seeded synthetic market instead.

Bad input raises engine.errors.UsageError or engine.strategy.StrategyError with a one-line
message; cockpit.cli turns them into exit code 2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, TextIO

from engine.errors import UsageError

_DURATION = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9]*)?)\s*(ns|us|µs|ms|s)?\s*$")
_UNIT_NS = {None: 1, "ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
LATENCY_KEYS = {
    "entry": "entry_latency_ns",
    "report": "report_latency_ns",
    "cancel": "cancel_latency_ns",
}
FEE_KEYS = {"maker": "maker_fee", "taker": "taker_fee"}


def parse_duration(text: str, what: str) -> int:
    """'1ms', '250us', '2s', '1500' (ns) -> integer ns; UsageError naming `what`."""
    m = _DURATION.match(text)
    if not m:
        raise UsageError(f"{what}: {text!r} is not a duration (e.g. 500us, 1ms, 2s, 1500ns)")
    value = float(m.group(1).replace("_", "")) * _UNIT_NS[m.group(2)]
    if value != int(value):
        raise UsageError(f"{what}: {text!r} is not a whole number of ns")
    return int(value)


def parse_pairs(text: str, what: str) -> dict[str, str]:
    """'a=1,b=2' -> {'a': '1', 'b': '2'}; UsageError on a malformed or repeated pair."""
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise UsageError(f"{what}: expected key=value[,key=value...], got {text!r}")
        if key in out:
            raise UsageError(f"{what}: {key!r} given twice")
        out[key] = value
    return out


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise UsageError(f"{what}: {text!r} is not a finite number")
    return value


def _capital(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def add_source_options(
    p: argparse.ArgumentParser, *, synthetic_metavar: str, synthetic_help: str
) -> None:
    """The strategy file and where its data comes from: shared with `cockpit optimize`."""
    p.add_argument("strategy", metavar="STRATEGY.py", help="file holding one Strategy subclass")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--data",
        action="append",
        nargs="+",
        metavar="FILE",
        help="data files loaded together as one market; repeat to merge several markets "
        "(instrument ids follow the order)",
    )
    src.add_argument(
        "--synthetic",
        metavar=synthetic_metavar,
        help=synthetic_help,
    )


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """Venue, risk and accounting options (parsed by `config_from`): shared with optimize."""
    p.add_argument(
        "--latency",
        metavar="SPEC",
        help="order entry / acknowledgement / cancel latency, e.g. entry=1ms,report=1ms,"
        "cancel=500us (default 1ms each; bare numbers are ns)",
    )
    p.add_argument(
        "--fees",
        metavar="SPEC",
        help="fee rates on notional, e.g. maker=0.0002,taker=0.0005 (negative: rebate)",
    )
    p.add_argument(
        "--queue-model",
        choices=["trades_only", "proportional"],
        help="queue position model of resting orders (default trades_only)",
    )
    p.add_argument(
        "--risk",
        metavar="SPEC",
        help="pre-trade limits (engine.config.RiskLimits fields), e.g. "
        "max_position=5000,max_order_qty=1000,price_band=0.05",
    )
    p.add_argument(
        "--risk-rule",
        metavar="FILE.py:FUNCTION",
        help="add your own pre-trade rule, a numba-compatible function of (strat, inst, "
        "side, price, qty, position, mid_x2, now, params) returning 0 or a denial code",
    )
    p.add_argument(
        "--risk-rule-params",
        metavar="X,Y,...",
        help="the rule's params vector (up to 16 numbers)",
    )
    p.add_argument(
        "--capital",
        type=_capital,
        default=None,
        help="notional capital for the return and the Sharpe ratio (default 100000)",
    )
    p.add_argument(
        "--equity-interval",
        metavar="DURATION",
        help="equity curve sampling, also the Sharpe ratio's period (default 1s)",
    )


def add_parser(subparsers: Any) -> None:
    """Add the `backtest` subcommand to `subparsers` (from ArgumentParser.add_subparsers)."""
    p = subparsers.add_parser(
        "backtest",
        help="run a strategy over data files and report PnL, risk and execution figures",
        description=(
            "Run a strategy file (one Strategy subclass) over recorded or synthetic data "
            "headless, print the report and optionally write the journal, fills, equity "
            "curve and alerts as Parquet."
        ),
    )
    add_source_options(
        p,
        synthetic_metavar="SPEC",
        synthetic_help="the seeded synthetic market instead of files: "
        "events=N[,instruments=K][,seed=S]",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a strategy parameter (repeatable; applies to every instance)",
    )
    p.add_argument(
        "--params-file",
        metavar="FILE.json",
        help="parameters as a JSON object, or a list of objects: one strategy instance each",
    )
    add_engine_options(p)
    p.add_argument("--out", metavar="DIR", help="write Parquet files and report.json here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


# ------------------------------------------------------------------------- building


def instances_from(args: argparse.Namespace, cls: type) -> list[dict[str, Any]]:
    """Parameter dicts, one per instance: --params-file, then --param on top of each."""
    from engine.backtest import coerce_params

    base: list[dict[str, Any]] = [{}]
    if args.params_file:
        path = Path(args.params_file)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"{path}: no such parameters file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}: not JSON: {exc.msg} at line {exc.lineno}") from None
        if isinstance(loaded, dict):
            base = [loaded]
        elif isinstance(loaded, list) and loaded and all(isinstance(x, dict) for x in loaded):
            base = loaded
        else:
            raise UsageError(
                f"{path}: expected a JSON object of parameters or a non-empty list of them"
            )
    overrides: dict[str, str] = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param: expected NAME=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    return [coerce_params(cls, {**b, **overrides}) for b in base]


def config_from(args: argparse.Namespace):
    """The EngineConfig the options describe (defaults where an option is absent)."""
    from engine.config import EngineConfig, RiskLimits

    kw: dict[str, Any] = {}
    if args.latency:
        for key, value in parse_pairs(args.latency, "--latency").items():
            if key not in LATENCY_KEYS:
                raise UsageError(
                    f"--latency: unknown key {key!r} (known: {', '.join(LATENCY_KEYS)})"
                )
            kw[LATENCY_KEYS[key]] = parse_duration(value, f"--latency {key}")
    if args.fees:
        for key, value in parse_pairs(args.fees, "--fees").items():
            if key not in FEE_KEYS:
                raise UsageError(f"--fees: unknown key {key!r} (known: {', '.join(FEE_KEYS)})")
            kw[FEE_KEYS[key]] = _float(value, f"--fees {key}")
    if args.queue_model:
        kw["queue_model"] = args.queue_model
    if args.equity_interval:
        kw["equity_interval_ns"] = parse_duration(args.equity_interval, "--equity-interval")
    if args.risk:
        kinds = {f.name: f.type for f in fields(RiskLimits)}
        risk: dict[str, Any] = {}
        for key, value in parse_pairs(args.risk, "--risk").items():
            if key not in kinds:
                raise UsageError(f"--risk: unknown limit {key!r} (known: {', '.join(kinds)})")
            kind = str(kinds[key])
            what = f"--risk {key}"
            if key.endswith("_ns"):
                risk[key] = parse_duration(value, what)
            elif kind == "int":
                try:
                    risk[key] = int(value.replace("_", ""))
                except ValueError:
                    raise UsageError(f"{what}: {value!r} is not a whole number") from None
            elif kind == "float":
                risk[key] = _float(value, what)
            else:
                risk[key] = value
        kw["risk"] = RiskLimits(**risk)
    if getattr(args, "risk_rule", None):
        from engine.risk_rules import compile_rule, load_rule

        kw["risk_rule"] = load_rule(args.risk_rule)
        compile_rule(kw["risk_rule"])  # a rule numba cannot compile fails here, named
    if getattr(args, "risk_rule_params", None):
        values = [v for v in args.risk_rule_params.split(",") if v.strip()]
        kw["risk_rule_params"] = tuple(
            _float(v, f"--risk-rule-params value {i + 1}") for i, v in enumerate(values)
        )
    return EngineConfig(**kw)


def stream_from(args: argparse.Namespace):
    """The event stream: each --data group loaded, the groups merged; or the synthetic one."""
    if args.synthetic:
        from engine.synthetic import SyntheticConfig, generate

        spec = parse_pairs(args.synthetic, "--synthetic")
        names = {"events": "n_events", "instruments": "n_instruments", "seed": "seed"}
        kw = {}
        for key, value in spec.items():
            if key not in names:
                raise UsageError(f"--synthetic: unknown key {key!r} (known: {', '.join(names)})")
            try:
                kw[names[key]] = int(value.replace("_", ""))
            except ValueError:
                raise UsageError(f"--synthetic {key}: {value!r} is not a whole number") from None
        return generate(SyntheticConfig(**kw))
    from adapters.formats import load
    from engine.data.merge import merge_streams

    for group in args.data:
        for path in group:
            if not Path(path).is_file():
                raise UsageError(f"{path}: no such data file")
    return merge_streams([load(group) for group in args.data])


# -------------------------------------------------------------------------- output


def _money(x: float) -> str:
    """Two decimals, or four significant digits below 1 (small backtests make small PnL)."""
    if x == 0:
        return "0"
    return f"{x:,.2f}" if abs(x) >= 1 else f"{x:.4g}"


def _opt(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def print_report(report, files: dict[str, Path], out: TextIO) -> None:
    """The report as rich tables (falls back to plain text when not a terminal)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    r = report
    console = Console(file=out, highlight=False)
    t = Table(
        title=f"backtest: {r.strategy} x {r.instances}", title_justify="left", box=box.SIMPLE_HEAD
    )
    t.add_column("figure")
    t.add_column("value", justify="right")
    rows = [
        ("span", f"{r.duration_s:,.1f} s of engine time"),
        ("realized PnL", _money(r.realized_pnl)),
        ("unrealized PnL", _money(r.unrealized_pnl)),
        ("fees", _money(r.fees)),
        ("total PnL (net)", _money(r.total_pnl)),
        ("return", f"{r.return_frac:+.4%} of {r.capital:,.0f}"),
        ("Sharpe (annualised)", _opt(r.sharpe, ".2f") + f"  [{r.sharpe_sample_ns / 1e9:g} s]"),
        ("max drawdown", f"{_money(r.max_drawdown)} ({r.max_drawdown_frac:.4%})"),
        ("orders sent", f"{r.orders:,}"),
        ("orders denied / rejected", f"{r.orders_denied:,} / {r.orders_rejected:,}"),
        ("cancels", f"{r.cancels:,}"),
        ("fills (maker / taker)", f"{r.fills:,} ({r.maker_fills:,} / {r.taker_fills:,})"),
        ("fill ratio (orders)", _opt(r.fill_ratio, ".2%")),
        ("fill ratio (lots)", _opt(r.lots_fill_ratio, ".2%")),
        ("order-to-trade", _opt(r.order_to_trade, ".2f")),
        ("alerts", ", ".join(f"{k} {v}" for k, v in r.alerts.items()) or "none"),
        ("invalid transitions", f"{r.invalid_transitions:,}"),
        ("events", f"{r.events:,} ({r.data_events:,} data)"),
        ("events/s (loop)", _opt(r.events_per_second, ",.0f")),
        ("loop / compile", f"{r.wall_seconds:.3f} s / {r.compile_seconds:.2f} s"),
    ]
    for name, value in rows:
        t.add_row(name, value)
    console.print(t)
    inst = Table(title="per instrument (volume in lots)", title_justify="left", box=box.SIMPLE_HEAD)
    inst.add_column("instrument", no_wrap=True)
    for name in ("position", "volume", "mark", "realized", "unreal.", "fees"):
        inst.add_column(name, justify="right", no_wrap=True)
    for i in r.instruments:
        inst.add_row(
            i["symbol"],
            i["position"],
            f"{i['volume_lots']:,}",
            "n/a" if i["mark"] is None else f"{i['mark']:,.6g}",
            _money(i["realized_pnl"]),
            _money(i["unrealized_pnl"]),
            _money(i["fees"]),
        )
    console.print(inst)
    if r.rejections:
        console.print("ended unfilled: " + ", ".join(f"{k} {v:,}" for k, v in r.rejections.items()))
    for fault in r.faults:
        console.print(f"[bold]strategy fault[/]: {fault}")
    if files:
        console.print("wrote " + ", ".join(str(p) for p in files.values()))


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run `cockpit backtest` with parsed arguments; returns the exit code (0).

    Raises:
        UsageError, StrategyError, DataError: bad input (the CLI maps them to exit code 2).
    """
    from engine.backtest import DEFAULT_CAPITAL, run_backtest
    from engine.strategy import load_strategy_class

    out = out or sys.stdout
    if not str(args.strategy).endswith(".py"):
        raise UsageError(f"{args.strategy}: a strategy is a Python file (.py)")
    cls = load_strategy_class(args.strategy)
    instances = instances_from(args, cls)
    config = config_from(args)
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a directory")
    stream = stream_from(args)
    result = run_backtest(
        stream,
        cls,
        instances,
        config,
        capital=args.capital or DEFAULT_CAPITAL,
        out_dir=args.out,
    )
    if args.json:
        doc = result.report.to_dict()
        doc["files"] = {k: str(v) for k, v in result.files.items()}
        out.write(json.dumps(doc, indent=1) + "\n")
    else:
        print_report(result.report, result.files, out)
    return 0
