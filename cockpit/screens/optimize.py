"""Start an optimization: one line of `cockpit optimize` options, checked before it starts."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from cockpit.optimizer_job import OptimizerJob, plan_text
from engine.errors import CockpitError

GRAMMAR = (
    "--param NAME=LOW:HIGH[:int] searches, NAME=VALUE fixes · --objective sharpe|pnl|calmar "
    "· --budget N · --popsize N · --holdout F · --walk-forward K · --seed N · --workers N "
    "· --method cma|random · engine options as in `cockpit optimize`"
)


class OptimizeScreen(ModalScreen[OptimizerJob | None]):
    """An input prefilled with a default search; Enter builds the job, Esc cancels.

    `build(text)` makes the job (OptimizerJob.from_text with the app's data and strategy;
    it checks the settings without touching the data, in milliseconds). It runs as the
    text changes: the line under the input says what the job would do, or why the options
    are wrong (an unknown option, bad bounds, a budget below the population), and Enter on
    wrong options starts nothing. The screen only builds the job; the app starts it.
    """

    DEFAULT_CSS = """
    OptimizeScreen { align: center middle; background: $background 60%; }
    OptimizeScreen > Vertical {
        width: 100; max-width: 95%; height: auto; border: thick $primary;
        background: $panel; padding: 0 1;
    }
    OptimizeScreen .optimize--title { text-style: bold; width: 1fr; }
    OptimizeScreen .optimize--params { color: $text; width: 1fr; margin-bottom: 1; }
    OptimizeScreen .optimize--plan { color: $text; width: 1fr; }
    OptimizeScreen .optimize--error { color: $error; width: 1fr; }
    OptimizeScreen .optimize--keys { color: $text-muted; width: 1fr; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="optimize_dialog_cancel")]

    def __init__(
        self, title: str, params: str, text: str, build: Callable[[str], OptimizerJob]
    ) -> None:
        """
        Args:
            title: what will be optimized over which data.
            params: the strategy's parameters and current values, as a hint.
            text: the prefilled options.
            build: makes the job from the options; raises CockpitError when they are wrong.
        """
        super().__init__()
        self.title_text = title
        self.params_text = params
        self.default_text = text
        self.build = build
        self._built: tuple[str, OptimizerJob] | None = None

    def compose(self) -> ComposeResult:
        """Title, parameters, input, error, grammar and keys."""
        with Vertical():
            yield Label(self.title_text, classes="optimize--title")
            yield Static(self.params_text, classes="optimize--params")
            yield Input(self.default_text, id="options", placeholder="--param NAME=LOW:HIGH")
            yield Static("", id="plan", classes="optimize--plan")
            yield Static("", id="error", classes="optimize--error")
            yield Static(GRAMMAR, classes="optimize--keys")
            yield Label("Enter starts · Esc cancels", classes="optimize--keys")

    def on_mount(self) -> None:
        """Say what the prefilled options will do."""
        self._check(self.default_text)

    def _check(self, text: str) -> OptimizerJob | None:
        """Build the job for the text and say what it will do, or why it cannot."""
        if self._built is not None and self._built[0] == text:
            return self._built[1]
        plan, error = self.query_one("#plan", Static), self.query_one("#error", Static)
        try:
            job = self.build(text)
        except CockpitError as exc:
            self._built = None
            plan.update("")
            error.update(str(exc))
            return None
        self._built = (text, job)
        plan.update(plan_text(job))
        error.update("")
        return job

    def on_input_changed(self, event: Input.Changed) -> None:
        """Check the options as they are typed."""
        self._check(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Start with good options; stay open, saying why, with wrong ones."""
        job = self._check(event.value)
        if job is not None:
            self.dismiss(job)

    def action_cancel(self) -> None:
        """Start nothing."""
        self.dismiss(None)
