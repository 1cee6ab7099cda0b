"""An optimization running beside the app: a thread, a progress snapshot, a cancel flag.

The app starts one from the command palette and the optimizer pane polls it:

    job = OptimizerJob.from_text(stream, strategy_cls, "--param threshold=0.5:20 --budget 100")
    job.start()                  # returns at once; optimize() runs in a daemon thread
    job.snapshot                 # the newest JobSnapshot (immutable), read on a UI timer
    job.cancel()                 # stops after the evaluations in flight
    job.result.best_params       # once job.snapshot.state == "done"

Same contract as the engine bridge (house style rule 5): the job's thread never touches a
widget; it swaps one attribute (`snapshot`) after every evaluation, and the UI reads it on
its own timer. Loading the best parameters into the running strategy is the engine
thread's business: the bridge applies `engine.optimizer.apply_params(engine, params)`
between two chunks (see that function).
"""

from __future__ import annotations

import argparse
import re
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from engine import objectives
from engine.data.stream import EventStream
from engine.errors import CockpitError, UsageError
from engine.optimizer import (
    OptimizeConfig,
    OptimizeResult,
    Progress,
    default_workers,
    make_plan,
    optimize,
)

JobState = Literal["idle", "running", "done", "cancelled", "failed"]

DEFAULT_SEARCHED: Final = 2
"""Parameters searched by the default palette text (the first numeric ones)."""
DEFAULT_TAIL: Final = "--objective sharpe --budget 60 --popsize 6 --holdout 0.3"
"""The rest of the default palette text: ten generations of six, scored out of sample too."""


@dataclass(frozen=True)
class JobSnapshot:
    """What the pane draws: the job's state and the optimizer's newest progress."""

    state: JobState
    progress: Progress | None = None
    error: str | None = None
    """The one-line message of a failure (state 'failed')."""
    seq: int = 0
    """Increases with every new snapshot (the pane redraws only when it changed)."""


class _JobParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"optimize: {message}")


def config_from_text(text: str, strategy_cls: type, workers: int | None = None) -> OptimizeConfig:
    """An OptimizeConfig from `cockpit optimize` options typed in the palette.

    The same grammar as the command line without the strategy file and the data (the app
    has them): --param, --objective, --budget, --popsize, --seed, --workers, --holdout,
    --walk-forward, --method, --cluster, and the engine options.
    """
    from cockpit.cli_optimize import add_search_options, config_from

    parser = _JobParser(prog="optimize", add_help=False)
    add_search_options(parser)
    try:
        args = parser.parse_args(shlex.split(text))
    except ValueError as exc:  # shlex: unbalanced quotes
        raise UsageError(f"optimize: {exc}") from None
    if workers is not None and args.workers is None:
        args.workers = workers
    return config_from(args, strategy_cls)


def app_workers() -> int:
    """Evaluation threads of an optimization started from the app: every core but one,
    which is left to the replay and the UI (at least one)."""
    return max(1, default_workers() - 1)


def tunable_params(strategy_cls: type) -> dict[str, int | float]:
    """The parameters a search can vary, with their defaults: ints and floats, not bools,
    arrays or instrument fields (those cannot change on a running engine)."""
    out: dict[str, int | float] = {}
    for name, value in (getattr(strategy_cls, "params", {}) or {}).items():
        if isinstance(value, bool) or re.fullmatch(r"instrument\d*", name):
            continue
        if isinstance(value, int | float):
            out[name] = value
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def _range(value: int | float) -> str:
    """LOW:HIGH[:int] around a current value: about half to twice it, signs kept."""
    if isinstance(value, int):
        if value >= 0:
            return f"{max(0, value - max(value // 2, 2))}:{value + max(value, 3)}:int"
        mag = -value
        return f"{value - max(mag, 3)}:{min(0, value + max(mag // 2, 2))}:int"
    if value == 0:
        return "0:1"
    lo, hi = sorted((value / 2, value * 2))
    return f"{_text(lo)}:{_text(hi)}"


def default_options(strategy_cls: type, current: dict[str, Any] | None = None) -> str:
    """Palette text for a first search of a running strategy.

    Searches the first `DEFAULT_SEARCHED` numeric parameters from about half to twice their
    current value, fixes every other parameter whose current value differs from the class
    default (so the search runs the strategy as it is running), then `DEFAULT_TAIL`.

    Args:
        current: the running instance's parameter values (defaults when absent).
    """
    defaults = dict(getattr(strategy_cls, "params", {}) or {})
    now = {k: (current or {}).get(k, v) for k, v in defaults.items()}
    searched = list(tunable_params(strategy_cls))[:DEFAULT_SEARCHED]
    parts = []
    for name in searched:
        value = now[name]
        kind = type(defaults[name])
        parts.append(f"--param {name}={_range(kind(value))}")
    for name, value in now.items():
        scalar = isinstance(defaults[name], bool | int | float)  # not an array field
        if scalar and name not in searched and value != defaults[name]:
            parts.append(f"--param {name}={_text(value)}")
    return " ".join([*parts, DEFAULT_TAIL])


class OptimizerJob:
    """One optimization in a background thread (start once; cancel any time)."""

    def __init__(
        self,
        stream: EventStream,
        strategy_cls: type,
        config: OptimizeConfig,
        out_dir: str | Path | None = None,
    ) -> None:
        self.plan = make_plan(strategy_cls, config)  # bad settings fail here, not in the thread
        """The checked settings: the search space, fixed values, population, generations."""
        self.stream = stream
        self.strategy_cls = strategy_cls
        self.config = config
        self.out_dir = out_dir
        self.result: OptimizeResult | None = None
        self.snapshot = JobSnapshot("idle")
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0

    @classmethod
    def from_text(
        cls,
        stream: EventStream,
        strategy_cls: type,
        text: str,
        *,
        workers: int | None = None,
        out_dir: str | Path | None = None,
    ) -> OptimizerJob:
        """A job from palette text (see config_from_text); UsageError on bad text."""
        return cls(stream, strategy_cls, config_from_text(text, strategy_cls, workers), out_dir)

    # ------------------------------------------------------------------------ control

    def start(self) -> None:
        """Run the optimization in a daemon thread; returns at once."""
        if self._thread is not None:
            raise UsageError("this optimization was already started")
        self._publish("running")
        self._thread = threading.Thread(target=self._run, name="optimizer-job", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Ask the run to stop after the evaluations in flight (returns at once)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ended (tests, shutdown); True if it did."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self.snapshot.state == "running"

    @property
    def best_params(self) -> dict:
        """Best parameters so far (fixed ones included once the run ended)."""
        if self.result is not None:
            return dict(self.result.best_params)
        p = self.snapshot.progress
        return {**self.config.fixed, **(p.best_params if p else {})}

    # ------------------------------------------------------------------------- thread

    def _publish(self, state: JobState, progress: Progress | None = None, error=None) -> None:
        self._seq += 1
        keep = progress if progress is not None else self.snapshot.progress
        self.snapshot = JobSnapshot(state, keep, error, self._seq)  # one attribute swap

    def _on_progress(self, p: Progress) -> None:
        self._publish("running", p)

    def _run(self) -> None:
        try:
            self.result = optimize(
                self.stream,
                self.strategy_cls,
                self.config,
                out_dir=self.out_dir,
                progress=self._on_progress,
                cancel=self._cancel,
            )
        except CockpitError as exc:
            self._publish("failed", error=str(exc))
            return
        except Exception as exc:  # a bug: shown in the pane rather than lost in a thread
            self._publish("failed", error=f"internal error: {type(exc).__name__}: {exc}")
            return
        self._publish("cancelled" if self.result.cancelled else "done")


def params_text(values: dict[str, Any]) -> str:
    """name=value pairs, as the pane and the notifications show them."""
    return ", ".join(f"{k}={_text(v)}" for k, v in values.items())


def plan_text(job: OptimizerJob) -> str:
    """What a job will do, in one line (the start dialog shows it as the options change)."""
    plan, cfg = job.plan, job.config
    search = ", ".join(s.describe().replace("=", " ", 1) for s in plan.space.specs)
    parts = [f"searches {search}"]
    if plan.fixed:
        parts.append(f"fixes {params_text(plan.fixed)}")
    gens, pop = plan.generations, plan.popsize
    evals = f"{_count(gens, 'generation')} of {pop} = {_count(gens * pop, 'evaluation')}"
    if cfg.walk_forward:
        evals += f" in each of {cfg.walk_forward} walk-forward windows"
    parts.append(f"{cfg.method} on {objectives.name_of(cfg.objective)}: {evals}")
    if cfg.holdout:
        parts.append(f"last {cfg.holdout * 100:.3g}% of the time held out")
    where = (
        f"on the Dask cluster at {cfg.cluster}"
        if cfg.cluster
        else _count(cfg.workers or default_workers(), "thread")
    )
    parts.append(f"seed {cfg.seed}, {where}")
    return " · ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def summary(job: OptimizerJob) -> str:
    """One line on how a job ended (or stands), for a notification."""
    snap = job.snapshot
    if snap.state == "failed":
        return f"optimization failed: {snap.error}"
    p = snap.progress
    objective = objectives.name_of(job.config.objective)
    if p is None:
        return f"optimization {snap.state}: no evaluation finished"
    if snap.state == "cancelled":
        head = f"optimization cancelled after {p.evaluations:,} of {p.budget:,} evaluations"
    elif snap.state == "done":
        head = f"optimization done: {p.evaluations:,} evaluations"
    else:
        head = f"optimization {snap.state}: {p.evaluations:,} of {p.budget:,} evaluations"
    if p.best_score is None:
        return f"{head}, no complete generation scored"
    best = f"best {objective} {p.best_score:.4g}"
    if p.best_oos_score is not None:
        best += f" (holdout {p.best_oos_score:.4g})"
    return f"{head}, {best} with {params_text(p.best_params)}"
