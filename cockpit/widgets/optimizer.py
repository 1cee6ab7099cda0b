"""Optimizer progress: generation, evaluations / budget, evals/s, best score, sigma, best
parameters and a sparkline of the best score per generation.

The pane draws a `cockpit.optimizer_job.JobSnapshot` (or a bare engine.optimizer.Progress
via `show_progress`). It follows the job given to `attach(job)`, else the app's
`optimizer_job` attribute when the app has one (so the app only sets that attribute, and a
pane recreated by a re-layout finds the job by itself). It polls `job.snapshot` on its own
timer, because the engine bridge publishes nothing while the replay is paused and an
optimization runs on regardless, and redraws only when the job's snapshot changed. The
engine snapshot handed to `show` is not used. One line when the pane is three rows tall
(the wide layout), every figure on its own line when it has room (tab, maximized).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Final

from rich.text import Text
from textual.widgets import Static

from cockpit.bridge import Snapshot

if TYPE_CHECKING:
    from cockpit.optimizer_job import JobSnapshot, OptimizerJob
    from engine.optimizer import Progress

SPARK_CHARS: Final = "▁▂▃▄▅▆▇█"
POLL_SECONDS: Final = 0.25
"""How often an attached job's snapshot is read."""
IDLE_TEXT: Final = "No optimization is running."


def sparkline(values: tuple[float | None, ...] | list[float | None], width: int) -> str:
    """The last `width` values as block characters, low to high (a gap for None)."""
    vals = list(values)[-width:] if width > 0 else []
    finite = [v for v in vals if v is not None]
    if not finite:
        return ""
    lo, hi = min(finite), max(finite)
    top = len(SPARK_CHARS) - 1
    out = []
    for v in vals:
        if v is None:
            out.append(" ")
        elif hi == lo:
            out.append(SPARK_CHARS[top // 2])
        else:
            out.append(SPARK_CHARS[round((v - lo) / (hi - lo) * top)])
    return "".join(out)


def _num(x: float | None, spec: str = ".4g") -> str:
    return "n/a" if x is None else format(x, spec)


def _param(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return format(value, ".4g")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


class OptimizerPane(Static, can_focus=True):
    """Progress of the optimization attached to it (see the module docstring)."""

    ALLOW_MAXIMIZE = True
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "optimizer--label",
        "optimizer--value",
        "optimizer--spark",
        "optimizer--failed",
    }
    DEFAULT_CSS = """
    OptimizerPane { background: $surface; color: $text-muted; padding: 0 1; height: 1fr; }
    OptimizerPane > .optimizer--label { color: $text-muted; }
    OptimizerPane > .optimizer--value { color: $text; text-style: bold; }
    OptimizerPane > .optimizer--spark { color: $gain; }
    OptimizerPane > .optimizer--failed { color: $loss; text-style: bold; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(IDLE_TEXT, **kw)
        self.job: OptimizerJob | None = None
        self._snapshot: JobSnapshot | None = None
        self._progress: Progress | None = None
        self._seen_seq = -1
        self._following: OptimizerJob | None = None

    # ---------------------------------------------------------------------- inputs

    def show(self, snap: Snapshot) -> None:
        """The engine snapshot (the pane interface of the main screen): not used here."""

    def attach(self, job: OptimizerJob | None) -> None:
        """Follow `job` (None: forget it and show the idle text)."""
        self.job = job
        self._seen_seq = -1
        if job is None:
            self._snapshot = None
            self._progress = None
            self._redraw()
        else:
            self.poll()

    def on_mount(self) -> None:
        """Poll the attached job."""
        self.set_interval(POLL_SECONDS, self.poll)

    def poll(self) -> None:
        """Read the job's newest snapshot; redraw if it changed."""
        job = self.job or getattr(self.app, "optimizer_job", None)
        if job is None:
            return
        if job is not self._following:  # a new job: draw it even if its seq looks seen
            self._following = job
            self._seen_seq = -1
        snap = job.snapshot
        if snap.seq != self._seen_seq:
            self._seen_seq = snap.seq
            self.show_job(snap)

    def show_job(self, snap: JobSnapshot) -> None:
        """Draw a job snapshot."""
        self._snapshot = snap
        self._progress = snap.progress
        self._redraw()

    def show_progress(self, progress: Progress | None) -> None:
        """Draw a bare progress record (no job)."""
        self._snapshot = None
        self._progress = progress
        self._redraw()

    def on_resize(self) -> None:
        """One line or several, by the room there is."""
        self._redraw()

    # -------------------------------------------------------------------- drawing

    def _redraw(self) -> None:
        self.update(self.render_text(self.size.width or 80, self.size.height or 1))

    def render_text(self, width: int, height: int) -> Text:
        """The pane's text for a content area of width x height cells."""
        style = self.get_component_rich_style
        label, value = style("optimizer--label"), style("optimizer--value")
        snap, p = self._snapshot, self._progress
        state = snap.state if snap is not None else ("running" if p is not None else "idle")
        if p is None and state in ("idle", "running"):
            return Text("Optimization starting…" if state == "running" else IDLE_TEXT)
        if state == "failed":
            text = Text("optimization failed: ", style=style("optimizer--failed"))
            text.append((snap.error if snap is not None else None) or "unknown error")
            return text
        assert p is not None
        status = {"done": "done", "cancelled": "cancelled"}.get(state, "")
        fields: list[tuple[str, str]] = [
            ("gen", f"{p.generation}/{p.generations}"),
            ("evals", f"{p.evaluations:,}/{p.budget:,}"),
            ("/s", f"{p.evals_per_second:.2f}"),
            ("best", _num(p.best_score)),
            ("σ", _num(p.sigma, ".3g")),
        ]
        if p.windows > 1:
            fields.insert(0, ("window", f"{p.window}/{p.windows}"))
        if p.failed:
            fields.append(("failed", f"{p.failed:,}"))
        if p.best_oos_score is not None:
            fields.append(("oos", _num(p.best_oos_score)))
        if status:
            fields.append(("", status))
        params = "  ".join(f"{k}={_param(v)}" for k, v in p.best_params.items())
        text = Text(no_wrap=height <= 1, overflow="ellipsis")
        if height <= 1:
            for name, v in fields:
                if name:
                    text.append(f"{name} ", style=label)
                text.append(f"{v}  ", style=value)
            spark = sparkline(p.best_per_generation, max(0, width - text.cell_len - 1))
            text.append(spark, style=style("optimizer--spark"))
            return text
        for i, (name, v) in enumerate(fields):
            text.append(f"{name} " if name else "", style=label)
            text.append(v, style=value)
            text.append("  " if i < len(fields) - 1 else "\n")
        text.append("best params ", style=label)
        text.append((params or "n/a") + "\n", style=value)
        text.append("best / generation ", style=label)
        spark = sparkline(p.best_per_generation, max(1, width - 20))
        text.append(spark or "n/a", style=style("optimizer--spark"))
        return text
