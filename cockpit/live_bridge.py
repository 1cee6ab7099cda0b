"""The live counterpart of EngineBridge: the same snapshots, taken on a live session's loop.

A `LiveSession` runs on its own asyncio event loop in its own thread (`SessionThread`); its
engine is stepped there between batches of messages. Nothing else touches that engine: the
UI's requests and every snapshot run *on the session's loop* (`call_soon_threadsafe` and a
future), so a snapshot is taken between two engine steps and is as consistent as a replay's
between two chunks. The panes (ladder, orders, positions, alerts, tape) draw it unchanged;
`Snapshot.venue` adds the session's `SessionStatus` for the venue bar.

The bridge's own thread (the Textual worker that runs a replay's engine) only paces: every
`PUBLISH_SECONDS`, or at once after a key, it hands the loop one callback that applies the
queued requests and builds the snapshot, and waits for it (a snapshot costs about a
millisecond of the loop's time, 30 times a second). The replay keys (play, step, jump,
speed) have no meaning here: the app hides them (`live`); a request that still arrives
says so.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

from adapters.live import event_loop
from cockpit.bridge import PUBLISH_SECONDS, EngineBridge, Request, Snapshot
from engine.commands import Command
from engine.errors import UsageError

if TYPE_CHECKING:
    from adapters.live.session import LiveSession
    from adapters.live.session_status import SessionStatus

T = TypeVar("T")

CALL_TIMEOUT: Final = 2.0
"""Seconds the bridge waits for the session's loop to run a snapshot; a loop busier than
that is skipped (the status bar then shows the data as stale)."""
LIVE_KINDS: Final = frozenset(
    {"command", "instrument", "params", "reconcile", "acknowledge_reconcile"}
)
"""Requests that mean something to a live session."""


class SessionThread:
    """An asyncio event loop on a daemon thread, for a live session and nothing else."""

    def __init__(self, name: str = "live-session") -> None:
        self.loop = event_loop.loop_factory()()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the loop and wait for its result (from another thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float | None = None) -> T:
        """Run `fn()` on the loop, between two of its callbacks, and return its result.

        Raises:
            RuntimeError: the loop is closed.
            concurrent.futures.TimeoutError: the loop did not get to it within `timeout`.
        """
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to the waiting thread
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(job)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop and its thread (stop the session first)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


class LiveBridge(EngineBridge):
    """Snapshots of a started LiveSession's engine for the cockpit's panes.

    `live` is True: the app hides the replay keys (cockpit.bindings `only="replay"`).

    Args:
        session: a started session running on `runner`'s loop.
        runner: the thread whose loop runs the session.
        clock: the wall clock of the status bar's staleness.
        strategy_name: shown in the status bar (default: the strategy class's name).
    """

    live: ClassVar[bool] = True

    def __init__(
        self,
        session: LiveSession,
        runner: SessionThread,
        *,
        clock: Callable[[], float] = time.monotonic,
        strategy_name: str = "",
    ) -> None:
        engine = session.engine
        if engine is None:
            raise UsageError("start the live session before opening the cockpit on it")
        self.session = session
        self.runner = runner
        self._venue_status: SessionStatus | None = None
        self._error_said = ""
        runner.call(
            lambda: EngineBridge.__init__(
                self, engine, speed=None, clock=clock, strategy_name=strategy_name
            )
        )
        self._mode = "live"
        self.snapshot = runner.call(self._build)

    # ------------------------------------------------------------------ bridge thread

    def serve(self) -> None:
        """Until stopped: at every key or `PUBLISH_SECONDS`, one turn on the session's loop."""
        if self._thread is None:
            self._thread = threading.current_thread()
        while not self._stop.is_set():
            self._wake.wait(PUBLISH_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.runner.call(self._turn, CALL_TIMEOUT)
            except concurrent.futures.TimeoutError:
                continue  # a busy loop: the next turn publishes
            except RuntimeError:
                break  # the session's loop is gone

    def acknowledge_reconcile(self) -> None:
        """The user read the start-up reconciliation diff: let the strategies trade."""
        self._request("acknowledge_reconcile")

    def pump(self, wall_seconds: float = 0.0) -> None:
        """One turn now, from any thread (tests)."""
        self.runner.call(self._turn, CALL_TIMEOUT)

    # ------------------------------------------------------------------ session's loop

    def _turn(self) -> Snapshot:
        """Apply the queued requests and publish a snapshot (on the session's loop)."""
        while True:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                break
            self._apply(req)
        self._publish()
        return self.snapshot

    def _handle(self, req: Request) -> None:
        if req.kind not in LIVE_KINDS:
            self._say("warning", "live session: the engine follows the venue (no replay keys)")
            return
        if req.kind == "acknowledge_reconcile":
            if self.session.acknowledge_reconcile():
                self._say("information", "reconciliation acknowledged: trading resumed")
            return
        if req.kind != "reconcile":
            super()._handle(req)
            return
        n = self.session.resolve_unknown()
        if n:
            self._say("information", f"reconcile now: asked the venue about {n} order(s)")
        else:
            self._say("warning", "reconcile now: no order with an unknown outcome to ask about")

    def _execute(self, cmd: Command) -> int:
        return self.session.command(cmd)  # wakes the session: the outbox goes to the venue

    def _build(self) -> Snapshot:
        status = self.session.status()
        self._venue_status = status
        if status.error and status.error != self._error_said:
            self._error_said = status.error
            self._say("error", f"the session stopped trading: {status.error}")
        return super()._build()

    def _venue(self) -> Any:
        return self._venue_status
