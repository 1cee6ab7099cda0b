"""The optimizer pane and the job it follows (cockpit/widgets/optimizer.py, optimizer_job.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from cockpit.optimizer_job import JobSnapshot, OptimizerJob, config_from_text
from cockpit.widgets.optimizer import IDLE_TEXT, OptimizerPane, sparkline
from engine.errors import UsageError
from engine.optimizer import Progress
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
        assert str(pane.render_text(98, 6)) == IDLE_TEXT
        pane.show_progress(_progress())
        text = str(pane.render_text(98, 6))
        for words in (
            "gen 3/10", "evals 24/80", "/s 6.50", "best 12.5", "σ 0.21", "failed 1",
            "oos 3.25", "threshold=2.5", "stop_ticks=17", "▁▃█",
        ):  # fmt: skip
            assert words in text, words


async def test_one_line_when_the_pane_is_three_rows_tall():
    app = PaneApp(height=1)
    async with app.run_test(size=(100, 5)):
        pane = app.query_one(OptimizerPane)
        pane.show_progress(_progress(windows=3, window=2))
        text = str(pane.render_text(98, 1))
        assert "\n" not in text
        assert text.startswith("window 2/3") and "best 12.5" in text and text.endswith("▁▃█")


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
        assert str(pane.render_text(98, 6)) == IDLE_TEXT


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

    app = PaneApp(height=6)
    async with app.run_test(size=(100, 10)):
        pane = app.query_one(OptimizerPane)
        pane.poll()
        assert str(pane.render_text(98, 6)) == IDLE_TEXT
        app.optimizer_job = FakeJob()
        pane.poll()
        assert "evals 24/80" in str(pane.render_text(98, 6))
