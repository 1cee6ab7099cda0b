"""One evaluation of the optimizer: a backtest of one parameter set, scored; and the pools
that run a population of them (threads on this machine, or a Dask cluster).

Parallelism is threads sharing the event arrays, not processes: `Engine.run` is a jitted
loop compiled with nogil=True, so each thread runs its own Engine on its own core while the
events (an in-memory or memory-mapped array) are shared, never copied or pickled. What
holds the GIL is the Python around the loop (building the engine state, the report: about
5 ms of a 0.2 s evaluation on 1M events). Measured (benchmarks/bench_optimizer.py
--processes) fork-based processes gave no more throughput and cost a copy of the results
and a numba cache load per process; see ARCHITECTURE.md, "Optimizer".

On a cluster (`DaskPool`) the context (strategy source, configuration, event arrays) is
scattered to every worker once; each task then carries only (window, generation, index,
parameters) and returns an EvalResult.

Determinism: an evaluation depends only on its task and the context, and the pools return
results in task order whatever order they finish in, so the number of workers (or a
cluster) changes the speed, never the results.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from engine import objectives
from engine.backtest import BacktestReport, run_backtest
from engine.config import EngineConfig
from engine.data.stream import EventStream
from engine.errors import CockpitError, UsageError

STATUS_OK: Final = "ok"
STATUS_FAILED: Final = "failed"
STATUS_CANCELLED: Final = "cancelled"

CONNECT_TIMEOUT_S: Final = 10.0
"""How long to wait for a cluster's scheduler before giving up."""
SUMMARY_FIELDS: Final = ("total_pnl", "sharpe", "max_drawdown", "calmar", "fills", "orders", "fees")
"""Per segment figures kept for every evaluation (BacktestReport fields, calmar computed)."""


class Cancel(Protocol):
    """Anything with is_set() (a threading.Event): checked between evaluations."""

    def is_set(self) -> bool: ...


# ------------------------------------------------------------------------------ strategy


_CLASSES: dict[str, type] = {}
_CLASSES_LOCK = threading.Lock()


@dataclass(frozen=True)
class StrategyRef:
    """A strategy class by its source, so a remote worker can load the same class."""

    name: str
    path: str
    sha256: str
    source: str

    @classmethod
    def of(cls, strategy_cls: type) -> StrategyRef:
        """The reference of a class defined in a source file; registered for this process."""
        path = inspect.getsourcefile(strategy_cls)
        if not path or not Path(path).is_file():
            raise UsageError(f"strategy {strategy_cls.__name__}: its source file is not found")
        source = Path(path).read_text(encoding="utf-8")
        sha = hashlib.sha256(source.encode()).hexdigest()
        ref = cls(strategy_cls.__name__, str(Path(path).resolve()), sha, source)
        with _CLASSES_LOCK:
            _CLASSES.setdefault(ref.key, strategy_cls)
        return ref

    @property
    def key(self) -> str:
        return f"{self.sha256}:{self.name}"

    def load(self) -> type:
        """The class: the one registered in this process, else loaded from the source."""
        with _CLASSES_LOCK:
            found = _CLASSES.get(self.key)
            if found is not None:
                return found
            path = Path(self.path)
            try:
                same = hashlib.sha256(path.read_bytes()).hexdigest() == self.sha256
            except OSError:
                same = False
            if not same:  # another machine: write the source where numba can cache it
                folder = Path(tempfile.gettempdir()) / "cockpit-strategies" / self.sha256[:16]
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / Path(self.path).name
                if not path.exists():
                    path.write_text(self.source, encoding="utf-8")
            module_name = f"cockpit_remote_{self.sha256[:16]}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise UsageError(f"{path}: cannot import the strategy")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
            found = getattr(module, self.name)
            _CLASSES[self.key] = found
            return found


# ------------------------------------------------------------------------ tasks, results


@dataclass(frozen=True)
class EvalTask:
    """One parameter set to evaluate: window, generation, index in the population."""

    window: int
    generation: int
    index: int
    params: dict[str, Any]


@dataclass
class EvalResult:
    """What one evaluation gave (score None unless status is ok)."""

    window: int
    generation: int
    index: int
    params: dict[str, Any]
    status: str
    message: str = ""
    score: float | None = None
    oos_score: float | None = None
    stats_in: dict[str, float | None] = field(default_factory=dict)
    stats_out: dict[str, float | None] | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


@dataclass
class EvalContext:
    """Everything shared by the evaluations of a run (scattered once to a cluster)."""

    strategy: StrategyRef
    fixed: dict[str, Any]
    config: EngineConfig
    capital: float
    objective: str | objectives.Objective
    windows: list[tuple[EventStream, EventStream | None]]
    """Per window: (in-sample stream, out-of-sample stream or None)."""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    def strategy_class(self) -> type:
        """The strategy class (loaded once per process)."""
        cls = self._cache.get("cls")
        if cls is None:
            cls = self._cache["cls"] = self.strategy.load()
        return cls

    def objective_fn(self) -> objectives.Objective:
        """The objective function (resolved once per process)."""
        fn = self._cache.get("objective")
        if fn is None:
            fn = self._cache["objective"] = objectives.resolve(self.objective)
        return fn


def summary(report: BacktestReport) -> dict[str, float | None]:
    """The SUMMARY_FIELDS of a report."""
    out: dict[str, float | None] = {}
    for name in SUMMARY_FIELDS:
        if name == "calmar":
            out[name] = objectives.calmar(report)
        else:
            value = getattr(report, name)
            out[name] = None if value is None else float(value)
    return out


def _backtest(ctx: EvalContext, stream: EventStream, params: dict[str, Any]) -> BacktestReport:
    result = run_backtest(stream, ctx.strategy_class(), [params], ctx.config, capital=ctx.capital)
    report = result.report
    if report.faults:
        raise RuntimeError(f"strategy fault: {report.faults[0]}")
    return report


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CockpitError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def evaluate(ctx: EvalContext, task: EvalTask) -> EvalResult:
    """Backtest `task.params` (over ctx.fixed) in sample, then out of sample; never raises.

    A failure (an exception, a strategy fault, a score that is not a finite number) gives
    status 'failed' and the message; out of sample it only blanks the out-of-sample score.
    """
    t0 = time.perf_counter()
    res = EvalResult(task.window, task.generation, task.index, dict(task.params), STATUS_OK)
    params = {**ctx.fixed, **task.params}
    stream_in, stream_out = ctx.windows[task.window]
    try:
        fn = ctx.objective_fn()
        report = _backtest(ctx, stream_in, params)
        res.stats_in = summary(report)
        res.score = objectives.score(fn, report)
    except Exception as exc:
        res.status = STATUS_FAILED
        res.score = None
        res.message = _describe(exc)
        res.seconds = time.perf_counter() - t0
        return res
    if stream_out is not None:
        try:
            report = _backtest(ctx, stream_out, params)
            res.stats_out = summary(report)
            res.oos_score = objectives.score(fn, report)
        except Exception as exc:
            res.message = f"out of sample: {_describe(exc)}"
    res.seconds = time.perf_counter() - t0
    return res


def _cancelled(task: EvalTask) -> EvalResult:
    return EvalResult(task.window, task.generation, task.index, dict(task.params), STATUS_CANCELLED)


def _evaluate_unless(ctx: EvalContext, task: EvalTask, cancel: Cancel | None) -> EvalResult:
    if cancel is not None and cancel.is_set():
        return _cancelled(task)
    return evaluate(ctx, task)


# --------------------------------------------------------------------------------- pools

OnDone = Callable[[EvalResult], None]


class ThreadPool:
    """Evaluations on `workers` threads of this process, sharing the context's arrays."""

    backend: Final = "threads"

    def __init__(self, ctx: EvalContext, workers: int) -> None:
        if workers < 1:
            raise UsageError(f"workers must be at least 1, got {workers}")
        self.ctx = ctx
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers, "optimizer") if workers > 1 else None

    def run(
        self, tasks: Sequence[EvalTask], on_done: OnDone, cancel: Cancel | None
    ) -> list[EvalResult]:
        """Evaluate `tasks`; results in task order. on_done runs in the caller's thread."""
        if self._pool is None:
            out = []
            for task in tasks:
                r = _evaluate_unless(self.ctx, task, cancel)
                on_done(r)
                out.append(r)
            return out
        futures = [self._pool.submit(_evaluate_unless, self.ctx, t, cancel) for t in tasks]
        for fut in as_completed(futures):
            on_done(fut.result())
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _remote_evaluate(task: EvalTask, ctx: EvalContext) -> EvalResult:
    """The function a Dask worker runs (module level: pickled by reference)."""
    return evaluate(ctx, task)


class DaskPool:
    """Evaluations on an existing Dask distributed cluster (scheduler address tcp://...)."""

    backend: Final = "dask"

    def __init__(self, ctx: EvalContext, address: str, timeout_s: float | None = None) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise UsageError(
                "--cluster needs Dask distributed: pip install 'cockpit[cluster]'"
            ) from None
        if not address.startswith(("tcp://", "tls://", "inproc://")):
            raise UsageError(f"cluster address {address!r}: expected tcp://HOST:PORT")
        try:
            timeout = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise UsageError(f"cluster {address}: cannot connect: {exc}") from None
        info = self.client.scheduler_info()
        self.workers = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())
        if self.workers < 1:
            self.client.close()
            raise UsageError(f"cluster {address}: no workers")
        self.address = address
        self.ctx = ctx
        # Once: every task refers to this future, so the arrays cross the network once.
        self._ctx_future = self.client.scatter(ctx, broadcast=True, hash=False)
        self._run_id = hashlib.sha256(f"{id(self)}{time.time_ns()}".encode()).hexdigest()[:12]

    def run(
        self, tasks: Sequence[EvalTask], on_done: OnDone, cancel: Cancel | None
    ) -> list[EvalResult]:
        """Evaluate `tasks` on the cluster; results in task order."""
        from distributed import as_completed as dask_completed

        keys = [f"cockpit-eval-{self._run_id}-{t.window}-{t.generation}-{t.index}" for t in tasks]
        futures = self.client.map(
            _remote_evaluate, list(tasks), ctx=self._ctx_future, key=keys, pure=False
        )
        where = {f.key: i for i, f in enumerate(futures)}
        out: list[EvalResult | None] = [None] * len(tasks)
        pending = set(range(len(tasks)))
        for fut in dask_completed(futures, loop=self.client.loop):
            i = where[fut.key]
            out[i] = fut.result()
            pending.discard(i)
            on_done(out[i])
            if cancel is not None and cancel.is_set() and pending:
                self.client.cancel([futures[j] for j in pending])
                for j in pending:
                    out[j] = _cancelled(tasks[j])
                break
        return [r for r in out if r is not None]

    def close(self) -> None:
        try:
            self.client.cancel(self._ctx_future)
        finally:
            self.client.close()


def pool_for(ctx: EvalContext, workers: int, cluster: str | None) -> ThreadPool | DaskPool:
    """A DaskPool when a cluster address is given, else a ThreadPool of `workers` threads."""
    if cluster:
        return DaskPool(ctx, cluster)
    return ThreadPool(ctx, workers)
