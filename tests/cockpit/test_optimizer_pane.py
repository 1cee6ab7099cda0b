"""The optimizer pane and the job it follows (cockpit/widgets/optimizer.py, optimizer_job.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from textual.app import App, ComposeResult

from cockpit.optimizer_job import JobSnapshot, OptimizerJob, config_from_text
from cockpit.widgets.optimizer import IDLE_TEXT, OptimizerPane, sparkline
from engine.errors import UsageError
from engine.optimizer import Progress
from engine.search import ParamSpec
from engine.strategy import load_strategy_class
from engine.synthetic import SyntheticConfig, generate
from themes import VARIABLE_DEFAULTS

MOMENTUM = str(Path(__file__).resolve().parents[2] / "examples" / "momentum.py")
SEARCH = (
    "--param threshold=0.5:4 --param stop_ticks=0:40:int --param fast_ns=300000000 "
    "--param slow_ns=3000000000 --param warmup_ns=3000000000 --budget 8 --popsize 4 "
    "--objective pnl --holdout 0.3 --seed 2"
)


def _progress(**kw) -> Progress:
    base = dict(
        method="cma", window=1, windows=1, generation=3, generations=10, evaluations=24,
        budget=80, failed=1, evals_per_second=6.5, best_score=12.5, best_oos_score=3.25,
        sigma=0.21, best_params={"threshold": 2.5, "stop_ticks": 17},
        best_per_generation=(1.0, 5.0, 12.5), elapsed_s=3.7,
    )  # fmt: skip
    return Progress(**{**base, **kw})


class PaneApp(App):
    def __init__(self, height: int) -> None:
        super().__init__()
        self.pane_height = height

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(VARIABLE_DEFAULTS)  # $gain, $loss: what the cockpit app declares

    def compose(self) -> ComposeResult:
        pane = OptimizerPane(id="optimizer")
        pane.styles.height = self.pane_height
        yield pane


def test_sparkline_scales_low_to_high():
    assert sparkline([1.0, 5.0, 9.0], 10) == "▁▅█"
    assert sparkline([2.0, 2.0], 10) == "▄▄"
    assert sparkline([None, 1.0, 3.0], 10) == " ▁█"
    assert sparkline([1.0, 2.0, 3.0, 4.0], 2) == "▁█"  # the newest generations
    assert sparkline([], 5) == "" and sparkline([None], 5) == ""


async def test_the_pane_shows_every_figure_when_it_has_room():
    app = PaneApp(height=6)
    async with app.run_test(size=(100, 10)):
        pane = app.query_one(OptimizerPane)
        idle = str(pane.render_text(98, 6))
        assert idle.startswith(IDLE_TEXT) and "Press o to start one" in idle
        pane.show_progress(_progress())
        text = str(pane.render_text(98, 6))
        for words in (
            "running", "gen 3/10", "evals 24/80", "/s 6.50", "eta 9s", "failed 1",
            "best in-sample 12.5", "holdout 3.25", "σ 0.21",
            "best params threshold=2.5  stop_ticks=17", "▁▃█  1 → 12.5",
            "l loads the best so far · ctrl+o cancels",
        ):  # fmt: skip
            assert words in text, words
        pane.show_job(JobSnapshot("done", _progress(done=True), None, 2))
        text = str(pane.render_text(98, 6))
        assert text.startswith("done") and "took 4s" in text and "eta" not in text
        assert "l loads these parameters · o starts another" in text


async def test_a_narrow_tab_breaks_lines_between_figures_never_inside_one():
    app = PaneApp(height=10)
    async with app.run_test(size=(100, 12)):
        pane = app.query_one(OptimizerPane)
        pane.show_progress(_progress(best_params={"threshold": 2.5, "stop_ticks": 17, "x": 3}))
        lines = str(pane.render_text(38, 10)).split("\n")
        assert lines == [
            "running  gen 3/10  evals 24/80",
            "/s 6.50  eta 9s  failed 1",
            "best in-sample 12.5  holdout 3.25",
            "σ 0.21",
            "best params threshold=2.5",
            "stop_ticks=17  x=3",
            "best/gen ▁▃█  1 → 12.5",
            "l loads the best so far",
            "ctrl+o cancels",
        ]


async def test_one_line_when_the_pane_is_three_rows_tall():
    app = PaneApp(height=1)
    async with app.run_test(size=(100, 5)):
        pane = app.query_one(OptimizerPane)
        pane.show_progress(_progress(windows=3, window=2))
        text = str(pane.render_text(120, 1))
        assert "\n" not in text
        assert text.startswith("running  window 2/3") and "best 12.5" in text
        assert "oos 3.25" in text and text.endswith("▁▃█")
        assert str(pane.render_text(98, 1)).startswith("window 2/3")  # "running" goes first
        # Narrow (the wide layout at 120 columns): the least important figures go first.
        text = str(pane.render_text(40, 1))
        assert text == "evals 24/80  best 12.5  oos 3.25  ▁▃█"
        pane.show_job(JobSnapshot("cancelled", _progress(), None, 3))
        text = str(pane.render_text(40, 1))
        assert text.startswith("cancelled  evals 24/80  best 12.5") and text.endswith("▁▃█")
        # Very narrow (the wide layout just above its breakpoint): state and best first.
        pane.show_job(JobSnapshot("done", _progress(done=True), None, 4))
        assert str(pane.render_text(22, 1)) == "done  best 12.5  ▁▃█"


async def test_a_failed_job_shows_its_message():
    app = PaneApp(height=4)
    async with app.run_test(size=(100, 6)):
        pane = app.query_one(OptimizerPane)
        pane.show_job(JobSnapshot("failed", None, "budget 2 is below the population size 4"))
        assert "optimization failed: budget 2" in str(pane.render_text(98, 4))


@pytest.fixture(scope="module")
def stream():
    return generate(SyntheticConfig(n_events=20_000, seed=3, jump_rate=0.2, jump_size=0.003))


@pytest.fixture(scope="module")
def momentum():
    return load_strategy_class(MOMENTUM)


def test_palette_text_uses_the_command_line_grammar(momentum):
    cfg = config_from_text(SEARCH, momentum, workers=2)
    assert [s.name for s in cfg.space] == ["threshold", "stop_ticks"]
    assert cfg.budget == 8 and cfg.holdout == 0.3 and cfg.workers == 2
    assert cfg.fixed["slow_ns"] == "3000000000"
    with pytest.raises(UsageError, match="unrecognized arguments"):
        config_from_text("--param threshold=0:1 --bogus", momentum)
    with pytest.raises(UsageError, match="No closing quotation"):
        config_from_text("--objective 'pnl", momentum)


def test_a_job_with_bad_settings_fails_when_created(stream, momentum):
    with pytest.raises(UsageError, match="inverted"):
        OptimizerJob.from_text(stream, momentum, "--param threshold=4:1")


async def test_the_pane_follows_a_job_to_its_end(stream, momentum, tmp_path):
    job = OptimizerJob.from_text(stream, momentum, SEARCH, workers=2, out_dir=tmp_path)
    assert job.snapshot.state == "idle"
    app = PaneApp(height=6)
    async with app.run_test(size=(100, 10)) as pilot:
        pane = app.query_one(OptimizerPane)
        pane.attach(job)
        job.start()
        assert job.wait(120)
        await pilot.pause()
        pane.poll()
        snap = job.snapshot
        assert snap.state == "done" and snap.progress.done
        assert snap.progress.evaluations == 8
        text = str(pane.render_text(98, 6))
        assert "evals 8/8" in text and "done" in text
        assert job.best_params == job.result.best_params
        assert (tmp_path / "best_params.json").exists()
        pane.attach(None)
        assert str(pane.render_text(98, 6)).startswith(IDLE_TEXT)


def test_a_job_can_be_cancelled(stream, momentum):
    job = OptimizerJob.from_text(stream, momentum, SEARCH.replace("--budget 8", "--budget 400"))
    job.start()
    job.cancel()
    assert job.wait(120)
    assert job.snapshot.state == "cancelled" and job.result.cancelled
    assert len(job.result.evaluations) < 400
    with pytest.raises(UsageError, match="already started"):
        job.start()


async def test_without_an_attached_job_the_pane_follows_the_apps_job():
    class FakeJob:
        snapshot = JobSnapshot("running", _progress(), None, 1)
        plan = SimpleNamespace(
            space=SimpleNamespace(
                specs=(ParamSpec("threshold", 0.5, 4.0), ParamSpec("stop_ticks", 17, 40, True))
            )
        )

    app = PaneApp(height=6)
    async with app.run_test(size=(100, 10)):
        pane = app.query_one(OptimizerPane)
        pane.poll()
        assert str(pane.render_text(98, 6)).startswith(IDLE_TEXT)
        app.optimizer_job = FakeJob()
        pane.poll()
        text = str(pane.render_text(98, 6))
        assert "evals 24/80" in text
        # A best value on a bound of the search says so (the range may be too narrow).
        assert "best params threshold=2.5  stop_ticks=17 (low bound)" in text
