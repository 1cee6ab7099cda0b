"""`cockpit optimize`: CMA-ES over a strategy's parameters, headless (engine/optimizer.py).

    cockpit optimize examples/momentum.py --synthetic 1000000 \
        --param threshold=0.5:20 --param stop_ticks=0:200:int --param size=100 \
        --objective sharpe --budget 200 --seed 1 --holdout 0.3 --out opt/

`--param NAME=LOW:HIGH[:int]` searches a parameter between bounds (integer parameters are
integral whatever the suffix); `--param NAME=VALUE` fixes one. Data options are those of
`cockpit backtest` (`--data` groups, or `--synthetic N` / `--synthetic events=N,seed=S`),
and so are the engine options (--latency, --fees, --queue-model, --risk, --capital,
--equity-interval). Writes evaluations.parquet, best_params.json (accepted by
`cockpit backtest --params-file`) and optimize.json into --out (default
optimize-<strategy>/). A progress bar shows on a terminal; the first Ctrl-C stops after the
evaluations in flight and still writes what was done, a second one aborts.

Bad input (unknown parameter, inverted bounds, budget below the population size, an
unparsable spec, an objective that returns NaN for a whole first generation) raises
engine.errors.UsageError with a one-line message: cockpit.cli exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from engine.errors import UsageError

OBJECTIVE_HELP = "sharpe (default), pnl, calmar, or python:module.func (a function of the report)"


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {low}")
        return value

    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a fraction in [0, 1)")
    return value


def add_search_options(p: argparse.ArgumentParser) -> None:
    """The options of a search (all but the strategy, the data and the output): shared by
    the command line and the app's palette (cockpit/optimizer_job.py)."""
    from cockpit.cli_backtest import add_engine_options

    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH[:int]",
        help="search NAME between LOW and HIGH (':int' for integers); NAME=VALUE fixes it",
    )
    p.add_argument("--objective", default="sharpe", help=OBJECTIVE_HELP)
    p.add_argument("--budget", type=_int_at_least(1), default=200, help="evaluations (default 200)")
    p.add_argument(
        "--popsize",
        type=_int_at_least(2),
        help="candidates per generation (default: CMA-ES's for the dimension)",
    )
    p.add_argument("--seed", type=_int_at_least(0), default=1, help="random seed (default 1)")
    p.add_argument(
        "--workers", type=_int_at_least(1), help="threads (default: every core available)"
    )
    p.add_argument(
        "--holdout",
        type=_fraction,
        default=0.0,
        help="last fraction of the time span kept out of sample, e.g. 0.3",
    )
    p.add_argument(
        "--walk-forward",
        type=_int_at_least(1),
        metavar="K",
        help="K rolling windows, each optimized on its first part and scored on the rest "
        "(needs --holdout)",
    )
    p.add_argument(
        "--method",
        choices=["cma", "random"],
        default="cma",
        help="cma (default) or random: plain random search with the same budget, to compare",
    )
    p.add_argument(
        "--cluster",
        metavar="tcp://HOST:PORT",
        help="evaluate on this Dask scheduler instead of local threads",
    )
    # The engine options of `cockpit backtest` (same names, parsed by the same code).
    add_engine_options(p)


def add_parser(subparsers: Any) -> None:
    """Add the `optimize` subcommand to `subparsers` (from ArgumentParser.add_subparsers)."""
    from cockpit.cli_backtest import add_source_options

    p = subparsers.add_parser(
        "optimize",
        help="search strategy parameters with CMA-ES (parallel, out-of-sample check)",
        description=(
            "Search the parameters of a strategy file with CMA-ES: every evaluation is a "
            "backtest, run in parallel on all cores (or a Dask cluster); the best "
            "parameters are written as JSON for `cockpit backtest --params-file`."
        ),
    )
    add_source_options(
        p,
        synthetic_metavar="N|SPEC",
        synthetic_help="the seeded synthetic market: N events, or "
        "events=N[,instruments=K][,seed=S]",
    )
    p.add_argument("--out", metavar="DIR", help="output directory (default optimize-<strategy>)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_search_options(p)


# ------------------------------------------------------------------------- building


def split_params(items: list[str]) -> tuple[list, dict[str, str]]:
    """--param values -> (ParamSpecs to search, {name: text} to fix)."""
    from engine.optimizer import parse_param_spec

    specs, fixed = [], {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageError(f"--param {item!r}: expected NAME=LOW:HIGH[:int] or NAME=VALUE")
        if ":" in value:
            specs.append(parse_param_spec(item))
        else:
            if name.strip() in fixed:
                raise UsageError(f"--param: {name.strip()!r} given twice")
            fixed[name.strip()] = value.strip()
    return specs, fixed


def _synthetic_spec(text: str) -> str:
    """'1000000' or '1_000_000' -> 'events=1000000'; a key=value spec passes unchanged."""
    plain = text.strip().replace("_", "")
    return f"events={plain}" if plain.isdigit() else text


def config_from(args: argparse.Namespace, cls: type):
    """The OptimizeConfig the options describe (checked by make_plan)."""
    from cockpit.cli_backtest import config_from as engine_config_from
    from engine.backtest import DEFAULT_CAPITAL
    from engine.optimizer import OptimizeConfig

    specs, fixed = split_params(args.param)
    if args.walk_forward and not args.holdout:
        raise UsageError("--walk-forward needs --holdout (the out-of-sample part of each window)")
    return OptimizeConfig(
        space=tuple(specs),
        fixed=fixed,
        objective=args.objective,
        budget=args.budget,
        popsize=args.popsize,
        seed=args.seed,
        workers=args.workers,
        holdout=args.holdout,
        walk_forward=args.walk_forward or 0,
        capital=args.capital or DEFAULT_CAPITAL,
        engine=engine_config_from(args),
        cluster=args.cluster,
        method=args.method,
    )


# -------------------------------------------------------------------------- output


def _fmt(x: Any, spec: str = ",.4g") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def print_result(result, out: TextIO) -> None:
    """Best parameters, in-sample vs out-of-sample figures, windows, files."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from engine.evaluation import SUMMARY_FIELDS

    console = Console(file=out, highlight=False)
    cfg = result.config
    objective = cfg.to_dict()["objective"]
    title = f"optimize: {result.strategy}, {objective}, {cfg.method}"
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    t.add_column("parameter")
    t.add_column("best", justify="right")
    t.add_column("range", justify="right")
    ranges = {s.name: s for s in cfg.space}
    for name, value in result.best_params.items():
        s = ranges.get(name)
        t.add_row(name, _fmt(value, ".6g"), s.describe().split("=", 1)[1] if s else "fixed")
    console.print(t)
    has_oos = any(w.segment_out for w in result.windows)
    s = Table(box=box.SIMPLE_HEAD)
    s.add_column("figure")
    s.add_column("in sample", justify="right")
    if has_oos:
        s.add_column("out of sample", justify="right")
    s.add_row(
        f"score ({objective})",
        _fmt(result.best_score),
        *([_fmt(result.best_oos_score)] if has_oos else []),
    )
    out_stats = result.best_stats_out or {}
    for name in SUMMARY_FIELDS:
        row = [_fmt(result.best_stats_in.get(name))]
        if has_oos:
            row.append(_fmt(out_stats.get(name)))
        s.add_row(name, *row)
    console.print(s)
    if len(result.windows) > 1:
        w = Table(title="walk-forward windows", title_justify="left", box=box.SIMPLE_HEAD)
        for col in ("window", "in-sample rows", "score", "out-of-sample score", "stop"):
            w.add_column(col, justify="right")
        for wr in result.windows:
            rows = wr.segment_in["rows"]
            w.add_row(
                str(wr.window),
                f"{rows[0]:,}..{rows[1]:,}",
                _fmt(None if wr.best is None else wr.best.score),
                _fmt(None if wr.best is None else wr.best.oos_score),
                wr.stop_reason,
            )
        console.print(w)
    last = result.windows[-1] if result.windows else None
    console.print(
        f"{len(result.evaluations):,} evaluations ({result.failed} failed) in "
        f"{result.seconds:.1f} s: {result.evals_per_second:.2f}/s on {result.workers} "
        f"{'threads' if result.backend == 'threads' else 'cluster threads'}"
        f"; compile {result.compile_seconds:.1f} s; popsize {result.popsize}; "
        f"stop: {'cancelled' if result.cancelled else (last.stop_reason if last else 'n/a')}"
    )
    failed = [e for e in result.evaluations if e.status == "failed"]
    if failed:
        console.print(f"first failure: {failed[0].message}")
    if result.files:
        console.print("wrote " + ", ".join(str(p) for p in result.files.values()))


class _Bar:
    """A rich progress bar fed by the optimizer's progress callback (stderr, terminals only)."""

    def __init__(self, budget: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self.console = Console(stderr=True)
        self.enabled = self.console.is_terminal
        self.bar = RichProgress(
            TextColumn("gen {task.fields[gen]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}/s"),
            TextColumn("best {task.fields[best]}"),
            TextColumn("σ {task.fields[sigma]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.bar.add_task(
            "optimize", total=budget, gen=0, rate="-", best="-", sigma="-"
        )

    def __enter__(self) -> _Bar:
        if self.enabled:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        self.bar.update(
            self.task,
            completed=p.evaluations,
            total=p.budget,
            gen=f"{p.generation}/{p.generations}"
            + (f" w{p.window}/{p.windows}" if p.windows > 1 else ""),
            rate=f"{p.evals_per_second:.2f}",
            best=_fmt(p.best_score),
            sigma=_fmt(p.sigma, ".3g"),
        )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run `cockpit optimize` with parsed arguments; returns the exit code (0).

    Raises:
        UsageError, StrategyError, DataError: bad input (the CLI maps them to exit code 2).
    """
    from cockpit.cli_backtest import stream_from
    from engine.optimizer import make_plan, optimize
    from engine.strategy import load_strategy_class

    out = out or sys.stdout
    if not str(args.strategy).endswith(".py"):
        raise UsageError(f"{args.strategy}: a strategy is a Python file (.py)")
    cls = load_strategy_class(args.strategy)
    config = config_from(args, cls)
    plan = make_plan(cls, config)  # every check that needs no data, before loading it
    out_dir = Path(args.out or f"optimize-{Path(args.strategy).stem}")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: exists and is not a directory")
    if args.synthetic:
        args = argparse.Namespace(**{**vars(args), "synthetic": _synthetic_spec(args.synthetic)})
    stream = stream_from(args)

    cancel = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():

        def on_sigint(signum, frame):  # first Ctrl-C: stop cleanly; second: abort
            if cancel.is_set():
                raise KeyboardInterrupt
            cancel.set()

        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        budget = plan.generations * plan.popsize * max(1, config.walk_forward)
        with _Bar(budget) as bar:
            result = optimize(
                stream,
                cls,
                config,
                out_dir=out_dir,
                progress=bar if bar.enabled else None,
                cancel=cancel,
            )
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if args.json:
        out.write(json.dumps(result.to_dict(), indent=1, default=str) + "\n")
    else:
        print_result(result, out)
    return 0
