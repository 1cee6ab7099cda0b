"""Stop signals over the whole life of `cockpit live --ui`, not only while the app runs.

The cockpit installs its own handlers on its event loop when it mounts (`CockpitApp
(stop_signals=...)`), but a live session exists before that (connecting, reconciling with
the venue) and after it (halting, cancelling, waiting). `StopGuard` holds process-level
handlers for that whole time, so a SIGTERM, SIGHUP or SIGINT never takes the default
action (kill the process, or a KeyboardInterrupt in whatever line was running):

- before the start (`cockpit live` installs the guard before its first line), there is
  no start at all;
- during the start-up (`run`), the signal cancels the start on the session's loop: the
  session closes its connections and its journal as a failed start does; nothing was traded
  (the strategy runs only once the start is complete);
- between the start and the app's own handlers, or after the app removed them, it is
  noted (`received`), and the app leaves at once on mount (`pending`), or the stop that is
  already under way goes on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cockpit.live_bridge import SessionThread


class StopGuard:
    """Process-level handlers for `signals` while the `with` block runs.

    Handlers run in the main thread between two bytecodes (also while it waits on a lock),
    so the handler only notes the signal and hands the loop thread one callback.
    """

    def __init__(self, signals: tuple[signal.Signals, ...]) -> None:
        self.signals = signals
        self.received: signal.Signals | None = None
        """The first stop signal that reached this guard's handler."""
        self._previous: dict[signal.Signals, Any] = {}
        self._on_stop: Callable[[], object] | None = None

    def install(self) -> StopGuard:
        """Put this guard's handlers in place (main thread only)."""
        for sig in self.signals:
            self._previous.setdefault(sig, signal.signal(sig, self._handler))
        return self

    def restore(self) -> None:
        """Give the signals back to the handlers found at `install` (idempotent)."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def __enter__(self) -> StopGuard:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)
        if self._on_stop is not None:
            self._on_stop()

    def pending(self) -> signal.Signals | None:
        """The signal received so far, if any (for `CockpitApp(stop_pending=...)`)."""
        return self.received

    def run(self, runner: SessionThread, coro: Coroutine[Any, Any, object]) -> bool:
        """Run `coro` on the session's loop unless a stop signal comes first.

        Returns:
            True when `coro` completed, False when a signal (now or before) cancelled it;
            the coroutine's own cleanup has run by then.

        Raises:
            Whatever `coro` raised.
        """
        stop = asyncio.Event()

        async def race() -> bool:
            task = asyncio.ensure_future(coro)
            waiter = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                waiter.cancel()
                task.result()
                return True
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            return False

        self._on_stop = lambda: runner.loop.call_soon_threadsafe(stop.set)
        try:
            if self.received is not None:  # checked after _on_stop is set: none is missed
                coro.close()
                return False
            return _wait_awake(asyncio.run_coroutine_threadsafe(race(), runner.loop))
        finally:
            self._on_stop = None


def _wait_awake(fut: concurrent.futures.Future[bool]) -> bool:
    """`fut.result()`, waking every 50 ms: Python runs a signal's handler in the main thread
    only when that thread runs bytecode, and a signal the kernel gave to another thread
    does not interrupt a lock wait here (seen with uvloop's threads: the start-up then
    waited for ever for the stop that the handler was to trigger)."""
    while True:
        try:
            return fut.result(timeout=0.05)
        except concurrent.futures.TimeoutError:
            continue
