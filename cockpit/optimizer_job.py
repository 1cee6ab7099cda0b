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
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine.data.stream import EventStream
from engine.errors import CockpitError, UsageError
from engine.optimizer import OptimizeConfig, OptimizeResult, Progress, make_plan, optimize

JobState = Literal["idle", "running", "done", "cancelled", "failed"]


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


class OptimizerJob:
    """One optimization in a background thread (start once; cancel any time)."""

    def __init__(
        self,
        stream: EventStream,
        strategy_cls: type,
        config: OptimizeConfig,
        out_dir: str | Path | None = None,
    ) -> None:
        make_plan(strategy_cls, config)  # bad settings fail here, in the caller's thread
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
