"""CMA-ES over strategy parameters: bounds, integers, parallel populations, out-of-sample.

    from engine.optimizer import OptimizeConfig, ParamSpec, optimize
    cfg = OptimizeConfig(space=[ParamSpec("threshold", 0.5, 10.0),
                                ParamSpec("max_units", 1, 5, integer=True)],
                         objective="sharpe", budget=120, seed=1, holdout=0.3)
    result = optimize(stream, Momentum, cfg, progress=print, cancel=threading.Event())
    result.best_params, result.best_score, result.best_oos_score

The search space and the searchers (CMA-ES, random) are in engine/search.py.

Scores are maximised; cma minimises -score. A failed evaluation (an exception, a strategy
fault, a score that is not finite) is recorded and told to cma as worse than the worst
evaluation of its generation, so the search moves away from it and goes on. If every
evaluation of the first generation fails, the run stops with a UsageError naming the first
message (an objective that always returns NaN is a usage error, not a search result).

Budget: `budget // popsize` generations of `popsize` candidates (the remainder is not
spent); cma may stop earlier (its own termination criteria, e.g. a step size too small to
change anything): `stop_reason` says which. Walk-forward runs one such search per window.

Determinism: cma samples from a private numpy Generator seeded with `seed` (never the
global numpy state), the evaluations are pure functions of their parameters and the data,
and each generation is told to cma in candidate order; so the same seed and data give the
same evaluations and the same best parameters with 1 worker, N workers or a cluster. Only
the timing columns differ.

Results (`out_dir`): evaluations.parquet (every evaluation, see `evaluations_table`),
best_params.json (a JSON object that `cockpit backtest --params-file` accepts: the best
parameters plus the fixed ones), optimize.json (settings, best, per-generation bests, IS
and OOS scores, per-window results, timing).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from engine import objectives
from engine.backtest import DEFAULT_CAPITAL, coerce_params
from engine.config import EngineConfig
from engine.data.stream import EventStream
from engine.errors import CockpitError, UsageError
from engine.evaluation import (
    STATUS_CANCELLED,
    SUMMARY_FIELDS,
    Cancel,
    EvalContext,
    EvalResult,
    EvalTask,
    StrategyRef,
    pool_for,
)
from engine.search import (
    DEFAULT_SIGMA0,
    Method,
    ParamSpec,
    SearchSpace,
    check_space,
    parse_param_spec,
    penalised_losses,
    searcher_for,
)
from engine.segments import Segment, holdout_split, walk_forward

__all__ = [
    "OptimizeConfig",
    "OptimizeResult",
    "ParamSpec",
    "Plan",
    "Progress",
    "SearchSpace",
    "apply_params",
    "check_space",
    "evaluations_table",
    "make_plan",
    "optimize",
    "parse_param_spec",
    "penalised_losses",
    "run_search",
]

INT_SUMMARY_FIELDS: Final = ("fills", "orders")
"""Summary figures that are counts (int64 columns)."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class OptimizeConfig:
    """What to optimize and how (every field checked by `optimize`)."""

    space: tuple[ParamSpec, ...]
    """Parameters to search, with bounds."""
    fixed: dict[str, Any] = field(default_factory=dict)
    """Parameters set to one value for every evaluation (text values are parsed)."""
    objective: str | objectives.Objective = "sharpe"
    """sharpe | pnl | calmar | python:module.func | a function of the report."""
    budget: int = 200
    """Most evaluations per window (whole generations only)."""
    popsize: int | None = None
    """Candidates per generation; None: cma's default for the dimension."""
    seed: int = 1
    sigma0: float = DEFAULT_SIGMA0
    workers: int | None = None
    """Threads; None: every core this process may use."""
    holdout: float = 0.0
    """Last fraction of the time span kept out of sample (0: none)."""
    walk_forward: int = 0
    """Windows of a rolling walk-forward (0: a single split)."""
    capital: float = DEFAULT_CAPITAL
    engine: EngineConfig = field(default_factory=EngineConfig)
    cluster: str | None = None
    """A Dask scheduler address (tcp://HOST:PORT) to evaluate on instead of local threads."""
    method: Method = "cma"
    """'random': plain random search with the same budget (for comparisons)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings."""
        return {
            "space": [asdict(s) for s in self.space],
            "fixed": self.fixed,
            "objective": objectives.name_of(self.objective),
            "budget": self.budget,
            "popsize": self.popsize,
            "seed": self.seed,
            "sigma0": self.sigma0,
            "workers": self.workers,
            "holdout": self.holdout,
            "walk_forward": self.walk_forward,
            "capital": self.capital,
            "cluster": self.cluster,
            "method": self.method,
        }


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class Progress:
    """Where a run stands: passed to the progress callback after every evaluation.

    Built in the optimizer's thread; holds only plain values, so a UI thread may read it.
    """

    method: str
    window: int
    """1-based walk-forward window (1 without walk-forward)."""
    windows: int
    generation: int
    """Generations completed in this window."""
    generations: int
    evaluations: int
    """Evaluations done, all windows."""
    budget: int
    """Evaluations planned, all windows."""
    failed: int
    evals_per_second: float
    best_score: float | None
    best_oos_score: float | None
    sigma: float | None
    best_params: dict[str, Any]
    best_per_generation: tuple[float | None, ...]
    """Best in-sample score of each completed generation of this window."""
    elapsed_s: float
    done: bool = False
    cancelled: bool = False
    stop_reason: str | None = None

    @property
    def fraction(self) -> float:
        """Share of the budget done, 0..1."""
        return min(1.0, self.evaluations / self.budget) if self.budget else 1.0


ProgressFn = Callable[[Progress], None]


# ----------------------------------------------------------------------------- results


@dataclass
class WindowResult:
    """The search of one window (the whole run without walk-forward)."""

    window: int
    segment_in: dict[str, Any]
    segment_out: dict[str, Any] | None
    best: EvalResult | None
    generations: int
    best_per_generation: list[float | None]
    sigma_per_generation: list[float | None]
    stop_reason: str


@dataclass
class OptimizeResult:
    """A finished (or cancelled) optimization."""

    config: OptimizeConfig
    strategy: str
    evaluations: list[EvalResult]
    windows: list[WindowResult]
    best_params: dict[str, Any]
    """Best parameters of the last window, fixed ones included (what to trade next)."""
    best_score: float | None
    best_oos_score: float | None
    best_stats_in: dict[str, float | None]
    best_stats_out: dict[str, float | None] | None
    cancelled: bool
    workers: int
    backend: str
    popsize: int
    seconds: float
    compile_seconds: float
    evals_per_second: float
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(1 for e in self.evaluations if e.status == "failed")

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON-able values (optimize.json)."""
        return {
            "strategy": self.strategy,
            "settings": self.config.to_dict(),
            "popsize": self.popsize,
            "evaluations": len(self.evaluations),
            "failed": self.failed,
            "cancelled": self.cancelled,
            "best_params": self.best_params,
            "best_score": self.best_score,
            "best_oos_score": self.best_oos_score,
            "best_stats_in": self.best_stats_in,
            "best_stats_out": self.best_stats_out,
            "windows": [
                {
                    "window": w.window,
                    "in_sample": w.segment_in,
                    "out_of_sample": w.segment_out,
                    "best_params": None if w.best is None else w.best.params,
                    "best_score": None if w.best is None else w.best.score,
                    "best_oos_score": None if w.best is None else w.best.oos_score,
                    "generations": w.generations,
                    "best_per_generation": w.best_per_generation,
                    "sigma_per_generation": w.sigma_per_generation,
                    "stop_reason": w.stop_reason,
                }
                for w in self.windows
            ],
            "workers": self.workers,
            "backend": self.backend,
            "seconds": self.seconds,
            "compile_seconds": self.compile_seconds,
            "evals_per_second": self.evals_per_second,
            "files": {k: str(v) for k, v in self.files.items()},
        }


# ------------------------------------------------------------------------------ search


def _better(a: EvalResult, b: EvalResult | None) -> bool:
    """a beats b: higher score; ties keep the earlier evaluation (deterministic)."""
    return a.ok and a.score is not None and (b is None or b.score is None or a.score > b.score)


@dataclass(frozen=True)
class Plan:
    """A checked OptimizeConfig: what `optimize` will do, known before loading any data."""

    fixed: dict[str, Any]
    space: SearchSpace
    popsize: int
    generations: int
    """Per window."""
    objective: objectives.Objective


def make_plan(strategy_cls: type, config: OptimizeConfig) -> Plan:
    """Check every setting against the strategy (no data needed); UsageError if wrong.

    Call it before loading data so that a typo costs nothing: unknown or repeated
    parameters, inverted bounds, an unknown objective, a budget below the population size.
    """
    _check_settings(config)
    fixed = coerce_params(strategy_cls, dict(config.fixed))
    specs = check_space(strategy_cls, config.space, fixed)
    space = SearchSpace(strategy_cls, specs)
    objective_fn = objectives.resolve(config.objective)
    searcher_cls = searcher_for(config.method)
    popsize = searcher_cls(space, config.popsize, config.seed, config.sigma0).popsize
    if config.budget < popsize:
        raise UsageError(
            f"budget {config.budget} is below the population size {popsize}: "
            f"give a budget of at least {popsize} (or a smaller population)"
        )
    return Plan(fixed, space, popsize, config.budget // popsize, objective_fn)


@dataclass
class SearchOutcome:
    """What run_search did: every evaluation in (window, generation, index) order."""

    evaluations: list[EvalResult]
    windows: list[WindowResult]
    cancelled: bool
    track: _Tracker


class Pool(Protocol):
    """Evaluates a population: engine.evaluation.ThreadPool, DaskPool, or a test's own."""

    workers: int
    backend: str

    def run(
        self, tasks: Sequence[EvalTask], on_done: Callable[[EvalResult], None], cancel: Any
    ) -> list[EvalResult]: ...


def run_search(
    space: SearchSpace,
    pool: Pool,
    *,
    windows: int = 1,
    popsize: int | None = None,
    generations: int,
    method: Method = "cma",
    seed: int = 1,
    sigma0: float = DEFAULT_SIGMA0,
    progress: ProgressFn | None = None,
    cancel: Cancel | None = None,
    first: Any = None,
) -> SearchOutcome:
    """The search loop: ask a population, evaluate it on `pool`, tell the scores; per window.

    Knows nothing of backtests (the pool does), so it also drives tests' analytic problems.
    `first` is the searcher of window 1 when the caller already built it.
    """
    searcher_cls = searcher_for(method)
    first = first or searcher_cls(space, popsize, seed, sigma0)
    popsize = first.popsize
    evaluations: list[EvalResult] = []
    results_by_window: list[WindowResult] = []
    track = _Tracker(windows, generations, generations * popsize * windows, method)
    cancelled = False
    for w in range(windows):
        searcher = first if w == 0 else searcher_cls(space, popsize, seed, sigma0)
        track.new_window(w)
        stop_reason = "budget"
        for g in range(generations):
            xs = searcher.ask()
            tasks = [EvalTask(w, g, i, space.decode(x)) for i, x in enumerate(xs)]

            def on_done(r: EvalResult, sigma=searcher.sigma) -> None:
                if r.status != STATUS_CANCELLED:
                    track.finished_one(r)
                    if progress is not None:
                        progress(track.progress(sigma))

            results = pool.run(tasks, on_done, cancel)
            done = [r for r in results if r.status != STATUS_CANCELLED]
            evaluations.extend(done)
            if len(done) < len(results):
                cancelled, stop_reason = True, "cancelled"
                break
            if g == 0 and w == 0 and not any(r.ok for r in results):
                raise UsageError(
                    f"every evaluation of the first generation failed ({len(results)}); "
                    f"the first: {results[0].message}"
                )
            searcher.tell(xs, penalised_losses(results))
            track.end_generation(results, searcher.sigma)
            if progress is not None:
                progress(track.progress(searcher.sigma))
            if cancel is not None and cancel.is_set():
                cancelled, stop_reason = True, "cancelled"
                break
            reason = searcher.stop()
            if reason is not None:
                stop_reason = f"cma: {reason}"
                break
        results_by_window.append(
            WindowResult(
                window=w + 1,
                segment_in={},
                segment_out=None,
                best=track.best,
                generations=len(track.best_per_generation),
                best_per_generation=list(track.best_per_generation),
                sigma_per_generation=list(track.sigma_per_generation),
                stop_reason=stop_reason,
            )
        )
        if cancelled:
            break
    return SearchOutcome(evaluations, results_by_window, cancelled, track)


def optimize(
    stream: EventStream,
    strategy_cls: type,
    config: OptimizeConfig,
    *,
    out_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
    cancel: Cancel | None = None,
) -> OptimizeResult:
    """Search `config.space` for the parameters of `strategy_cls` that maximise the objective.

    Args:
        stream: the events (shared by every evaluation, never copied per evaluation).
        progress: called in this thread after every evaluation with a Progress.
        cancel: checked between evaluations; once set, the run stops after the evaluations
            in flight and returns what it has (result.cancelled).
        out_dir: write evaluations.parquet, best_params.json and optimize.json there.

    Raises:
        UsageError: bad settings, or every evaluation of the first generation failed.
        StrategyError: the strategy does not compile.
    """
    t_start = time.perf_counter()
    plan = make_plan(strategy_cls, config)
    fixed, space, popsize, generations = plan.fixed, plan.space, plan.popsize, plan.generations
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise UsageError(f"{out_dir}: exists and is not a directory")
    if config.walk_forward:
        pairs: list[tuple[Segment, Segment | None]] = list(
            walk_forward(stream, config.walk_forward, config.holdout)
        )
    else:
        pairs = [holdout_split(stream, config.holdout)]
    searcher_cls = searcher_for(config.method)
    probe = searcher_cls(space, popsize, config.seed, config.sigma0)

    ctx = EvalContext(
        strategy=StrategyRef.of(strategy_cls),
        fixed=fixed,
        config=config.engine,
        capital=config.capital,
        objective=config.objective,
        windows=[(a.stream, None if b is None else b.stream) for a, b in pairs],
    )
    ctx._cache["cls"] = strategy_cls
    ctx._cache["objective"] = plan.objective
    compile_seconds = _warm_up(ctx, space)

    workers = config.workers or default_workers()
    pool = pool_for(ctx, workers, config.cluster)
    try:
        outcome = run_search(
            space,
            pool,
            windows=len(pairs),
            popsize=popsize,
            generations=generations,
            method=config.method,
            seed=config.seed,
            sigma0=config.sigma0,
            progress=progress,
            cancel=cancel,
            first=probe,
        )
    finally:
        pool.close()
    windows = outcome.windows
    for wr, (seg_in, seg_out) in zip(windows, pairs, strict=False):
        wr.segment_in = seg_in.describe()
        wr.segment_out = None if seg_out is None else seg_out.describe()
    evaluations, cancelled, track = outcome.evaluations, outcome.cancelled, outcome.track

    seconds_eval = time.perf_counter() - track.t0
    last_best = windows[-1].best if windows else None
    result = OptimizeResult(
        config=config,
        strategy=strategy_cls.__name__,
        evaluations=evaluations,
        windows=windows,
        best_params={**fixed, **last_best.params} if last_best else dict(fixed),
        best_score=None if last_best is None else last_best.score,
        best_oos_score=None if last_best is None else last_best.oos_score,
        best_stats_in={} if last_best is None else last_best.stats_in,
        best_stats_out=None if last_best is None else last_best.stats_out,
        cancelled=cancelled,
        workers=pool.workers,
        backend=pool.backend,
        popsize=popsize,
        seconds=time.perf_counter() - t_start,
        compile_seconds=compile_seconds,
        evals_per_second=len(evaluations) / seconds_eval if seconds_eval > 0 else 0.0,
    )
    if out_dir is not None:
        result.files = write_results(result, out_dir, space)
    if progress is not None:
        last = windows[-1] if windows else None
        progress(
            track.progress(
                last.sigma_per_generation[-1] if last and last.sigma_per_generation else None,
                done=True,
                cancelled=cancelled,
                stop_reason=None if last is None else last.stop_reason,
            )
        )
    return result


def _check_settings(config: OptimizeConfig) -> None:
    if config.budget < 1:
        raise UsageError(f"budget must be at least 1 evaluation, got {config.budget}")
    if config.popsize is not None and config.popsize < 2:
        raise UsageError(f"popsize must be at least 2, got {config.popsize}")
    if config.workers is not None and config.workers < 1:
        raise UsageError(f"workers must be at least 1, got {config.workers}")
    if not (0.0 < config.sigma0 <= 1.0):
        raise UsageError(f"sigma0 must be in (0, 1], got {config.sigma0}")
    if config.method not in ("cma", "random"):
        raise UsageError(f"method must be cma or random, got {config.method!r}")
    if not 0.0 <= config.holdout < 1.0:
        raise UsageError(f"holdout must be a fraction in [0, 1), got {config.holdout}")
    if config.walk_forward < 0:
        raise UsageError(f"walk-forward windows must be >= 0, got {config.walk_forward}")
    if not (config.capital > 0 and math.isfinite(config.capital)):
        raise UsageError(f"capital must be a positive number, got {config.capital}")


def _warm_up(ctx: EvalContext, space: SearchSpace) -> float:
    """Compile the strategy and the loop once before the workers start; seconds taken.

    Done once here rather than by the first evaluation of every worker thread at once.
    Compile errors and bad fixed parameters are the caller's errors and propagate.
    """
    from engine.runner import Engine

    t0 = time.perf_counter()
    params = {**ctx.fixed, **space.decode(space.x0)}
    stream = ctx.windows[0][0]
    try:
        eng = Engine(stream, ctx.strategy_class(), [params], ctx.config)
        eng.start()
        eng.run(max_events=1)
    except CockpitError:
        raise
    except Exception:
        pass  # a strategy that raises is the evaluations' business: they record it
    return time.perf_counter() - t0


class _Tracker:
    """Running figures of a run, turned into Progress snapshots (optimizer thread only)."""

    def __init__(self, windows: int, generations: int, budget: int, method: str) -> None:
        self.windows, self.generations, self.budget, self.method = (
            windows,
            generations,
            budget,
            method,
        )
        self.t0 = time.perf_counter()
        self.finished = 0
        self.failed = 0
        self.new_window(0)

    def new_window(self, window: int) -> None:
        self.window = window
        self.best: EvalResult | None = None
        self.best_per_generation: list[float | None] = []
        self.sigma_per_generation: list[float | None] = []

    def finished_one(self, r: EvalResult) -> None:
        """An evaluation finished (in finishing order: counts only)."""
        self.finished += 1
        if r.status == "failed":
            self.failed += 1

    def end_generation(self, results: list[EvalResult], sigma: float | None) -> None:
        """A whole generation, in candidate order: the bests (ties go to the lower index)."""
        gen_best: EvalResult | None = None
        for r in results:
            if _better(r, gen_best):
                gen_best = r
            if _better(r, self.best):
                self.best = r
        self.best_per_generation.append(None if gen_best is None else gen_best.score)
        self.sigma_per_generation.append(sigma)

    def progress(self, sigma: float | None, **final: Any) -> Progress:
        elapsed = time.perf_counter() - self.t0
        best = self.best
        return Progress(
            method=self.method,
            window=self.window + 1,
            windows=self.windows,
            generation=len(self.best_per_generation),
            generations=self.generations,
            evaluations=self.finished,
            budget=self.budget,
            failed=self.failed,
            evals_per_second=self.finished / elapsed if elapsed > 0 else 0.0,
            best_score=None if best is None else best.score,
            best_oos_score=None if best is None else best.oos_score,
            sigma=sigma,
            best_params={} if best is None else dict(best.params),
            best_per_generation=tuple(self.best_per_generation),
            elapsed_s=elapsed,
            **final,
        )


# ------------------------------------------------------------------------------- files


def evaluations_table(evaluations: Sequence[EvalResult], space: SearchSpace):
    """Every evaluation as a pyarrow Table, in (window, generation, index) order.

    Columns: window (1-based), generation, index, status, message, score (in-sample
    objective), oos_score, param_<name> per optimized parameter, in_<figure> and
    out_<figure> for each of SUMMARY_FIELDS (null where not evaluated), seconds (wall time,
    the only column that differs between runs).
    """
    import pyarrow as pa

    rows = sorted(evaluations, key=lambda r: (r.window, r.generation, r.index))
    cols: dict[str, Any] = {
        "window": pa.array([r.window + 1 for r in rows], pa.int32()),
        "generation": pa.array([r.generation for r in rows], pa.int32()),
        "index": pa.array([r.index for r in rows], pa.int32()),
        "status": pa.array([r.status for r in rows], pa.string()).dictionary_encode(),
        "message": pa.array([r.message for r in rows], pa.string()),
        "score": pa.array([r.score for r in rows], pa.float64()),
        "oos_score": pa.array([r.oos_score for r in rows], pa.float64()),
    }
    for s, is_bool in zip(space.specs, space._bool, strict=True):
        kind = pa.bool_() if is_bool else (pa.int64() if s.integer else pa.float64())
        cols[f"param_{s.name}"] = pa.array([r.params.get(s.name) for r in rows], kind)
    for prefix, attr in (("in", "stats_in"), ("out", "stats_out")):
        for name in SUMMARY_FIELDS:
            values = [(getattr(r, attr) or {}).get(name) for r in rows]
            if name in INT_SUMMARY_FIELDS:
                values = [None if v is None else int(v) for v in values]
            kind = pa.int64() if name in INT_SUMMARY_FIELDS else pa.float64()
            cols[f"{prefix}_{name}"] = pa.array(values, kind)
    cols["seconds"] = pa.array([r.seconds for r in rows], pa.float64())
    return pa.table(cols)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def write_results(result: OptimizeResult, out_dir: str | Path, space: SearchSpace) -> dict:
    """evaluations.parquet, best_params.json, optimize.json into `out_dir`; name -> path."""
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "evaluations": out / "evaluations.parquet",
        "best_params": out / "best_params.json",
        "report": out / "optimize.json",
    }
    pq.write_table(evaluations_table(result.evaluations, space), files["evaluations"])
    files["best_params"].write_text(
        json.dumps(result.best_params, indent=1, default=_json_default) + "\n", encoding="utf-8"
    )
    result.files = files
    files["report"].write_text(
        json.dumps(result.to_dict(), indent=1, default=_json_default) + "\n", encoding="utf-8"
    )
    return files


# ------------------------------------------------------------------- live parameters


def apply_params(engine: Any, params: dict[str, Any], instances: Sequence[int] | None = None):
    """Write parameter values into a running engine's strategy rows (all instances default).

    For the cockpit's "load the best parameters": call it from the engine's own thread
    between two chunks (the jitted loop reads the rows; nothing else may write them while it
    runs). It goes through the engine's journaled set-parameter command
    (engine.runner.Engine.set_params), so a recorded session replays it. Values are checked
    like `cockpit backtest --params-file` values; instrument fields cannot change on a
    running engine (its subscriptions and orders refer to them). Returns the values written.

    Raises:
        UsageError: an unknown parameter, a bad value, an instance out of range.
    """
    if instances is None:
        return engine.set_params(params)
    values: dict[str, Any] = {}
    for j in list(instances):
        values = engine.set_params(params, j)
    return values
