"""Stop signals over the whole life of `cockpit live --ui` (cockpit/live_signals.py, and
the app's `stop_pending`). The end-to-end tests (a signal during the start-up, and while the
cockpit runs, against a subprocess) are in test_cli_live.py."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable

import pytest

from cockpit.app import CockpitApp
from cockpit.live_bridge import SessionThread
from cockpit.live_signals import StopGuard


def test_a_signal_cancels_the_start_and_its_cleanup_runs() -> None:
    runner = SessionThread()
    started, cleaned = threading.Event(), threading.Event()

    async def start() -> None:  # a start-up that waits on a venue that never answers
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.set()

    before = signal.getsignal(signal.SIGTERM)
    try:
        with StopGuard((signal.SIGTERM,)) as guard:
            killer = threading.Thread(
                target=lambda: started.wait(10) and os.kill(os.getpid(), signal.SIGTERM)
            )
            killer.start()
            assert guard.run(runner, start()) is False
            killer.join()
            assert cleaned.is_set() and guard.received == signal.SIGTERM
            assert guard.pending() == signal.SIGTERM
            # A later signal is only noted: the stop is already under way.
            os.kill(os.getpid(), signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        runner.close()


def test_a_start_that_completes_or_fails_is_not_touched() -> None:
    runner = SessionThread()

    async def ok() -> None:
        await asyncio.sleep(0)

    async def fails() -> None:
        raise RuntimeError("venue said no")

    try:
        with StopGuard((signal.SIGTERM,)) as guard:
            assert guard.run(runner, ok()) is True
            with pytest.raises(RuntimeError, match="venue said no"):
                guard.run(runner, fails())
            assert guard.received is None
    finally:
        runner.close()


def test_a_signal_before_the_start_means_no_start() -> None:
    runner = SessionThread()
    ran = False

    async def start() -> None:
        nonlocal ran
        ran = True

    try:
        with StopGuard((signal.SIGHUP,)) as guard:
            os.kill(os.getpid(), signal.SIGHUP)
            assert guard.run(runner, start()) is False
        assert not ran
    finally:
        runner.close()


async def test_a_signal_noted_before_the_app_mounted_quits_it_at_once(
    make_app: Callable[..., CockpitApp],
) -> None:
    app = make_app(stop_signals=(signal.SIGTERM,), stop_pending=lambda: signal.SIGTERM)
    async with app.run_test() as pilot:
        await pilot.pause()
    assert app.stopped_by == signal.SIGTERM and app.return_code == 0
    assert app.bridge._stop.is_set()


async def test_the_app_gives_the_signals_back_to_the_handler_it_found(
    make_app: Callable[..., CockpitApp],
) -> None:
    # asyncio's remove_signal_handler would restore the default action (kill): a signal
    # while `cockpit live --ui` cancels after the app must reach the guard instead.
    def outer(signum: int, frame: object) -> None:
        pass

    before = signal.signal(signal.SIGHUP, outer)
    try:
        app = make_app(stop_signals=(signal.SIGHUP,))
        async with app.run_test() as pilot:
            await pilot.pause()
            assert signal.getsignal(signal.SIGHUP) is not outer  # the app's, on its loop
        assert signal.getsignal(signal.SIGHUP) is outer
    finally:
        signal.signal(signal.SIGHUP, before)
