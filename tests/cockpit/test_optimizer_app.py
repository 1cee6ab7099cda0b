"""Optimizing from the app: start (palette, key, dialog), watch, cancel, load the best.

The app runs Quoter over the small synthetic market on a synchronous bridge (conftest), so a
parameter load has reached the engine's rows when `pilot.press` returns. The optimization
itself runs in its own thread (OptimizerJob): tests wait for it with `job.wait`, then make
the pane and the app look at it at once instead of waiting for their timers.

Pilot's `press` waits until the process is idle (Textual compares CPU and wall time), so a
busy optimization holds every key press until it ends. Tests that need a job still running
use a gated objective: each evaluation waits for a permit (`PERMITS`) after its backtest, so
the job is running but the process idle, and the test lets evaluations through one by one.

Searches here are two-dimensional: with cma 4.5 a one-dimensional CMA-ES search fails inside
`tell` after a few generations (IndexError in `_stds_into_limits`, CMA-ES/pycma#302), which
engine/search.py does not work around yet.
"""

from __future__ import annotations

import threading
import time

import pytest
from textual.widgets import Input, Static

from cockpit.bridge import EngineBridge
from cockpit.optimizer_job import OptimizerJob
from cockpit.screens.optimize import OptimizeScreen
from cockpit.widgets.optimizer import OptimizerPane
from engine.runner import Engine
from tests.cockpit.quoting import Quoter
from tests.cockpit.test_bindings import covers

SEARCH = (
    "--param size=60:100:int --param inside=0:1:int --objective pnl --budget 6 --popsize 3 "
    "--holdout 0.3"
)
"""Two generations of three: a couple of seconds with the compile cached."""
PERMITS = threading.Semaphore(0)
"""One permit per evaluation of a GATED search."""
GATED = (
    "--param size=60:100:int --param inside=0:1:int --budget 600 --popsize 3 "
    "--objective python:tests.cockpit.test_optimizer_app.gated_pnl"
)


def gated_pnl(report) -> float:
    """The pnl objective, once the test hands out a permit (60 s at most)."""
    PERMITS.acquire(timeout=60)
    return float(report.total_pnl)


@pytest.fixture
def gate():
    """PERMITS with none handed out; afterwards plenty, so no evaluation stays blocked."""
    while PERMITS.acquire(blocking=False):
        pass
    yield PERMITS
    PERMITS.release(10_000)


def wait_for(predicate, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def record_notifications(app) -> list[str]:
    """Every notification text the app shows from now on."""
    seen: list[str] = []
    notify = app.notify

    def recording(message, *a, **kw):
        seen.append(str(message))
        return notify(message, *a, **kw)

    app.notify = recording
    return seen


async def start(app, pilot, text: str) -> OptimizerJob:
    """Open the dialog with the key, type the options, press Enter; the started job."""
    await pilot.press("o")
    assert isinstance(app.screen, OptimizeScreen)
    app.screen.query_one("#options", Input).value = text
    await pilot.press("enter")
    assert not isinstance(app.screen, OptimizeScreen)
    job = app.optimizer_job
    assert job is not None and job.snapshot.state != "idle"
    return job


def pane_text(app) -> str:
    """What the optimizer pane shows now (at 98x6 while its tab is hidden)."""
    pane = app.query_one(OptimizerPane)
    pane.poll()
    return str(pane.render_text(pane.size.width or 98, pane.size.height or 6))


async def test_start_from_the_palette_and_watch_it_finish(make_app) -> None:
    app = make_app(steps=10)
    async with app.run_test(size=(100, 30)) as pilot:
        notes = record_notifications(app)
        assert pane_text(app).startswith("No optimization is running. Press o to start one")
        await pilot.press("ctrl+p")
        await pilot.press(*"Start optim")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, OptimizeScreen)
        options = screen.query_one("#options", Input)
        # Prefilled from the running strategy: Quoter's numeric parameters, size=50, inside=1.
        assert options.value == (
            "--param size=25:100:int --param inside=0:4:int --objective sharpe --budget 60 "
            "--popsize 6 --holdout 0.3"
        )
        options.value = SEARCH
        await pilot.press("enter")
        job = app.optimizer_job
        assert job is not None and job.stream is app.bridge.engine.stream
        assert job.strategy_cls is app.bridge.engine.strategy_cls
        assert "optimization started: 6 evaluations at most; ^o cancels" in notes
        assert app.current_tab == "optimizer"  # the pane came forward
        assert job.wait(120)
        app.watch_optimizer()
        snap = job.snapshot
        assert snap.state == "done" and snap.progress.evaluations == 6
        text = pane_text(app)
        assert text.startswith("done  gen 2/2  evals 6/6")
        assert f"best in-sample {snap.progress.best_score:.4g}" in text
        assert f"holdout {snap.progress.best_oos_score:.4g}" in text
        best = job.result.best_params
        assert f"best params size={best['size']}  inside={best['inside']}" in text
        assert "l loads these parameters · o starts another" in text
        assert notes[-1].startswith("optimization done: 6 evaluations, best pnl ")
        assert notes[-1].endswith("; l loads them into the strategy")


@covers("optimize")
async def test_bad_options_are_shown_in_the_dialog_and_start_nothing(make_app) -> None:
    app = make_app(steps=10)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("o")
        screen = app.screen
        assert isinstance(screen, OptimizeScreen)
        options = screen.query_one("#options", Input)
        error = screen.query_one("#error", Static)
        plan = screen.query_one("#plan", Static)
        # What the prefilled options will do, before anything starts.
        assert str(plan.render()).startswith(
            "searches size 25:100:int, inside 0:4:int · cma on sharpe: 10 generations of 6 = "
            "60 evaluations · last 30% of the time held out · seed 1, "
        )
        options.value = SEARCH  # checked as it changes
        await pilot.pause()
        assert str(plan.render()).startswith(
            "searches size 60:100:int, inside 0:1:int · cma on pnl: 2 generations of 3 = "
            "6 evaluations"
        )
        assert str(error.render()) == ""
        for text, message in (
            (SEARCH + " --bogus", "optimize: unrecognized arguments: --bogus"),
            ("--param size=100:60:int", "inverted"),
            ("--param size=60:100:int --budget 2 --popsize 3", "budget 2 is below"),
            ("--param nope=1:2", "unknown parameter 'nope'"),
            ("--objective 'pnl", "No closing quotation"),
        ):
            options.value = text
            await pilot.press("enter")
            assert app.screen is screen  # still open, showing why
            assert message in str(error.render()), text
            assert str(plan.render()) == ""
            assert app.optimizer_job is None
        await pilot.press("escape")
        assert not isinstance(app.screen, OptimizeScreen)
        assert app.optimizer_job is None


async def test_one_optimization_at_a_time(make_app, gate) -> None:
    app = make_app(steps=10)
    async with app.run_test(size=(100, 30)) as pilot:
        notes = record_notifications(app)
        job = await start(app, pilot, GATED)
        assert job.running
        await pilot.press("o")
        assert not isinstance(app.screen, OptimizeScreen)
        assert notes[-1] == "an optimization is already running: one at a time; ^o cancels it"
        assert app.optimizer_job is job
        job.cancel()
        gate.release(10)
        assert job.wait(120)


@covers("optimize_cancel")
async def test_cancel_stops_the_run_and_says_so(make_app, gate) -> None:
    app = make_app(steps=10)
    async with app.run_test(size=(100, 30)) as pilot:
        notes = record_notifications(app)
        await pilot.press("ctrl+o")
        assert notes[-1] == "no optimization is running"
        job = await start(app, pilot, GATED)
        gate.release(3)  # the first generation
        wait_for(lambda: job.snapshot.progress and job.snapshot.progress.generation == 1)
        assert job.running
        await pilot.press("ctrl+o")
        assert notes[-1] == "cancelling the optimization: it stops after the evaluations in flight"
        gate.release(10)  # the evaluations in flight finish; no new one starts
        assert job.wait(120)
        app.watch_optimizer()
        assert job.snapshot.state == "cancelled" and job.result.cancelled
        assert 3 <= len(job.result.evaluations) <= 6
        assert notes[-1].startswith("optimization cancelled after ")
        assert "best python:tests.cockpit.test_optimizer_app.gated_pnl " in notes[-1]
        assert pane_text(app).startswith("cancelled")


@covers("optimize_load")
async def test_load_best_writes_the_values_into_the_strategy(make_app) -> None:
    app = make_app(steps=10)
    async with app.run_test(size=(100, 30)) as pilot:
        notes = record_notifications(app)
        await pilot.press("l")
        assert notes[-1] == "no optimization to load from: o starts one"
        eng = app.bridge.engine
        assert eng.rows["size"].tolist() == [50]
        job = await start(app, pilot, SEARCH)
        assert job.wait(120)
        app.watch_optimizer()  # its "done" now, not between the next notifications
        best = job.result.best_params
        assert 60 <= best["size"] <= 100 and best["inside"] in (0, 1)
        await pilot.press("l")
        assert eng.rows["size"].tolist() == [best["size"]]
        assert eng.rows["inside"].tolist() == [best["inside"]]
        assert notes[-1] == (
            f"parameters loaded into the strategy: size={best['size']}, inside={best['inside']}"
        )
        before = eng.events_processed
        await pilot.press("s")  # the engine runs on with them
        assert eng.events_processed == before + 1
        assert app.bridge.snapshot.failure is None


async def test_load_the_best_so_far_while_it_runs(make_app, gate) -> None:
    app = make_app(steps=10)
    async with app.run_test(size=(100, 30)) as pilot:
        notes = record_notifications(app)
        job = await start(app, pilot, GATED)
        gate.release(3)  # the first generation; the second waits
        wait_for(lambda: job.snapshot.progress and job.snapshot.progress.generation == 1)
        best = job.best_params
        assert set(best) == {"size", "inside"}
        await pilot.press("l")
        assert notes[-2].startswith("loading the best so far (generation 1/200): size=")
        assert notes[-2].endswith("; the optimization goes on")
        assert notes[-1] == (
            f"parameters loaded into the strategy: size={best['size']}, inside={best['inside']}"
        )
        assert app.bridge.engine.rows["size"].tolist() == [best["size"]]
        text = pane_text(app)
        assert text.startswith("running  gen 1/200  evals 3/600")
        assert "l loads the best so far · ^o cancels" in text
        job.cancel()
        gate.release(10)
        assert job.wait(120)


async def test_loading_before_any_scored_generation_loads_nothing(make_app) -> None:
    app = make_app(steps=10)
    async with app.run_test(size=(100, 30)) as pilot:
        notes = record_notifications(app)
        eng = app.bridge.engine
        app.optimizer_job = OptimizerJob.from_text(eng.stream, eng.strategy_cls, SEARCH)
        await pilot.press("l")  # not started: no progress, no best
        assert notes[-1] == "the optimization has no best parameters yet"
        assert eng.rows["size"].tolist() == [50]


async def test_the_prefill_fixes_what_differs_from_the_defaults(make_app, market2, clock):
    bridge = EngineBridge(
        Engine(market2, Quoter, [{"instrument": 1, "size": 70}]), threaded=False, clock=clock
    )
    app = make_app(bridge=bridge)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("o")
        options = app.screen.query_one("#options", Input)
        # size searched around its current 70; instrument fixed at the running one.
        assert options.value.startswith(
            "--param size=35:140:int --param inside=0:4:int --param instrument=1 --objective"
        )
        options.value = SEARCH + " --param instrument=1"
        await pilot.press("enter")
        job = app.optimizer_job
        assert job.wait(120) and job.snapshot.state == "done"
        assert job.best_params["instrument"] == 1
        await pilot.press("l")
        assert bridge.engine.rows["size"].tolist() == [job.best_params["size"]]
        assert bridge.engine.rows["instrument"].tolist() == [1]


async def test_wide_layout_one_line_and_every_figure_when_maximized(make_app) -> None:
    app = make_app(steps=10)
    async with app.run_test(size=(160, 48)) as pilot:
        job = await start(app, pilot, SEARCH)
        assert job.wait(120)
        pane = app.query_one(OptimizerPane)
        await pilot.pause()
        assert pane.size.height == 1
        assert pane_text(app).startswith("done  gen 2/2  evals 6/6")
        await pilot.press("6", "m")
        assert app.screen.maximized is pane
        assert pane.size.height > 5  # the wide layout's height: 3 gives way
        assert pane_text(app).count("\n") >= 4


async def test_without_a_strategy_there_is_nothing_to_optimize(make_app, market, clock) -> None:
    bridge = EngineBridge(Engine(market, None), threaded=False, clock=clock)
    app = make_app(bridge=bridge)
    async with app.run_test(size=(100, 30)) as pilot:
        notes = record_notifications(app)
        await pilot.press("o")
        assert not isinstance(app.screen, OptimizeScreen)
        assert notes[-1].startswith("nothing to optimize: the app runs no strategy")
        assert app.optimizer_job is None


async def test_quitting_cancels_the_optimization(make_app, gate) -> None:
    app = make_app(steps=10)
    async with app.run_test(size=(100, 30)) as pilot:
        job = await start(app, pilot, GATED)
        await pilot.press("q")
    gate.release(10)  # the evaluations in flight end; no other starts
    assert job.wait(120)
    assert job.snapshot.state == "cancelled"
