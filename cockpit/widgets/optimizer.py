"""Optimizer progress: generation, evaluations / budget, evals/s, best score, sigma, best
parameters and a sparkline of the best score per generation.

The pane draws a `cockpit.optimizer_job.JobSnapshot` (or a bare engine.optimizer.Progress
via `show_progress`). It follows the job given to `attach(job)`, else the app's
`optimizer_job` attribute when the app has one (so the app only sets that attribute, and a
pane recreated by a re-layout finds the job by itself). It polls `job.snapshot` on its own
timer, because the engine bridge publishes nothing while the replay is paused and an
optimization runs on regardless, and redraws only when the job's snapshot changed. The
engine snapshot handed to `show` is not used. One line when the pane is three rows tall
(the wide layout); with room (tab, maximized) the in-sample and holdout scores, the best
parameters, the sparkline with its first and last values, and the keys that act on the job
(after the user's keymap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Final

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.widgets import Static

from cockpit import fmt
from cockpit.bindings import first_key
from cockpit.snapshot import Snapshot

if TYPE_CHECKING:
    from cockpit.optimizer_job import JobSnapshot, OptimizerJob
    from engine.optimizer import Progress

SPARK_CHARS: Final = "▁▂▃▄▅▆▇█"
POLL_SECONDS: Final = 0.25
"""How often an attached job's snapshot is read."""
IDLE_TEXT: Final = "No optimization is running."
MIN_SPARK: Final = 12
"""Cells kept for the sparkline on one line before figures are dropped."""


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


class _Flow:
    """Appends `label value` items to a Text, a new line before an item that would not fit
    in the width (items are never cut in two)."""

    def __init__(self, text: Text, width: int, label: Style, value: Style) -> None:
        self.text, self.width, self.label, self.value = text, max(1, width), label, value

    def line(
        self,
        items: list[tuple[str, str]],
        sep: str = "  ",
        style: Style | None = None,
        end: str = "\n",
    ) -> None:
        col = 0
        for name, v in items:
            cells = (len(name) + 1 if name else 0) + len(v)
            if col and col + len(sep) + cells > self.width:
                self.text.append("\n")
                col = 0
            elif col:
                self.text.append(sep, style=self.label)
                col += len(sep)
            if name:
                self.text.append(f"{name} ", style=self.label)
            self.text.append(v, style=style or self.value)
            col += cells
        self.text.append(end)


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
        self._bounds: dict[str, tuple[float, float]] = {}
        """Search bounds of the followed job's parameters (to mark a best value on one)."""

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
            plan = getattr(job, "plan", None)
            specs = plan.space.specs if plan is not None else ()
            self._bounds = {s.name: (s.low, s.high) for s in specs}
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

    def _one_line(
        self, state: str, running: bool, head: list[tuple[str, str]], p: Progress, width: int
    ) -> Text:
        """The figures that fit in `width` cells (the least important go first) and a
        sparkline of up to `MIN_SPARK` cells in what is left; in a very narrow pane the
        state, the best score and the evaluations go before the sparkline does."""
        style = self.get_component_rich_style
        label, value = style("optimizer--label"), style("optimizer--value")
        items: list[tuple[str, str]] = [("", state)] + head + [("best", _num(p.best_score))]
        if p.best_oos_score is not None:
            items.append(("oos", _num(p.best_oos_score)))
        items.append(("σ", _num(p.sigma, ".3g")))
        # Most important first; "" is the state word: done / cancelled matter more than any
        # figure, "running" less than all of them.
        keep_first = ["best", "evals", "oos", "failed", "gen", "window", "eta", "took", "/s", "σ"]
        keep_first.insert(len(keep_first) if running else 0, "")
        essential = {"", "best", "evals"} if not running else {"best", "evals"}
        present = {name for name, _ in items}
        drop = [name for name in reversed(keep_first) if name in present]
        spark_room = min(MIN_SPARK, len(p.best_per_generation))

        def cells(its: list[tuple[str, str]]) -> int:
            return sum(len(n) + 1 + len(v) + 2 if n else len(v) + 2 for n, v in its)

        while items and cells(items) + spark_room > width and drop:
            if drop[0] in essential and spark_room:
                spark_room = 0  # the sparkline goes before the essentials do
                continue
            gone = drop.pop(0)
            items = [(n, v) for n, v in items if n != gone]
        text = Text(no_wrap=True, overflow="ellipsis")
        for name, v in items:
            if name:
                text.append(f"{name} ", style=label)
            text.append(f"{v}  ", style=value)
        spark = sparkline(p.best_per_generation, max(0, width - text.cell_len))
        text.append(spark, style=style("optimizer--spark"))
        return text

    def _param_item(self, name: str, value: object) -> str:
        """name=value, saying when the value is on a bound of the search (widen it?)."""
        text = f"{name}={_param(value)}"
        low, high = self._bounds.get(name, (None, None))
        if isinstance(value, int | float) and not isinstance(value, bool) and low is not None:
            if value <= low:
                text += " (low bound)"
            elif value >= high:
                text += " (high bound)"
        return text

    def _key(self, ident: str) -> str:
        label = getattr(self.app, "key_label", None)  # CockpitApp: after the user's keymap
        return label(ident) if label is not None else first_key(ident, {})

    def render_text(self, width: int, height: int) -> Text:
        """The pane's text for a content area of width x height cells."""
        style = self.get_component_rich_style
        label, value = style("optimizer--label"), style("optimizer--value")
        snap, p = self._snapshot, self._progress
        state = snap.state if snap is not None else ("running" if p is not None else "idle")
        if state == "idle":
            palette = self.app.get_key_display(Binding(self.app.COMMAND_PALETTE_BINDING, ""))
            text = IDLE_TEXT
            for hint in (f" Press {self._key('optimize')} to start one.", f" ({palette}: palette)"):
                if len(text) + len(hint) <= width * max(1, height):
                    text += hint
            return Text(text)
        if state == "failed":
            text = Text("optimization failed: ", style=style("optimizer--failed"))
            text.append((snap.error if snap is not None else None) or "unknown error")
            return text
        if p is None:
            if state == "running":
                return Text("Optimization starting: compiling, then the first generation…")
            return Text(f"Optimization {state} before any evaluation finished.")
        running = state == "running" and not p.done
        head: list[tuple[str, str]] = []
        if p.windows > 1:
            head.append(("window", f"{p.window}/{p.windows}"))
        head += [
            ("gen", f"{p.generation}/{p.generations}"),
            ("evals", f"{p.evaluations:,}/{p.budget:,}"),
            ("/s", f"{p.evals_per_second:.2f}"),
        ]
        if running and p.evals_per_second > 0:
            head.append(("eta", fmt.duration((p.budget - p.evaluations) / p.evals_per_second)))
        else:
            head.append(("took", fmt.duration(p.elapsed_s)))
        if p.failed:
            head.append(("failed", f"{p.failed:,}"))
        if height <= 1:
            return self._one_line(state, running, head, p, width)
        text = Text(no_wrap=True, overflow="ellipsis")
        flow = _Flow(text, width, label, value)
        flow.line([("", state), *head])
        scores = [("best in-sample", _num(p.best_score))]
        if p.best_oos_score is not None:
            scores.append(("holdout", _num(p.best_oos_score)))
        flow.line([*scores, ("σ", _num(p.sigma, ".3g"))])
        params = [self._param_item(k, v) for k, v in p.best_params.items()] or ["n/a"]
        flow.line([("best params", params[0]), *(("", item) for item in params[1:])])
        scored = [v for v in p.best_per_generation if v is not None]
        head_text = "best / generation " if width >= 60 else "best/gen "
        ends = f"  {_num(scored[0])} → {_num(scored[-1])}" if scored else ""
        room = width - len(head_text) - len(ends)
        if room < MIN_SPARK // 2:  # narrow: the sparkline before its first and last values
            ends, room = "", width - len(head_text)
        text.append(head_text, style=label)
        spark = sparkline(p.best_per_generation, max(1, room))
        text.append(spark or "n/a", style=style("optimizer--spark"))
        text.append(ends, style=label)
        if p.best_score is not None:
            load = self._key("optimize_load")
            keys = (
                [f"{load} loads the best so far", f"{self._key('optimize_cancel')} cancels"]
                if running
                else [f"{load} loads these parameters", f"{self._key('optimize')} starts another"]
            )
            text.append("\n")
            flow.line([("", k) for k in keys], sep=" · ", style=label, end="")
        return text
