"""The event loop of the live path: uvloop where it is installed, else asyncio's own.

uvloop runs the same asyncio code with its loop and sockets in C (libuv): on the tick-to-
order path over loopback it halves the time from a market data frame leaving the venue to
its bytes reaching the adapter (benchmarks/bench_live.py). `COCKPIT_EVENT_LOOP=asyncio`
chooses the standard loop (to compare, or to rule uvloop out when chasing a bug).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new event loop for the live path (uvloop's when available)."""
    if os.environ.get("COCKPIT_EVENT_LOOP", "").strip().lower() != "asyncio":
        try:
            import uvloop
        except ImportError:  # not installed on this platform (Windows): asyncio's loop
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def loop_name() -> str:
    """Which loop `loop_factory` makes: "uvloop" or "asyncio" (for reports)."""
    return "asyncio" if loop_factory() is asyncio.new_event_loop else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on the live path's event loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel every task (None: none), then wait for each; how they ended is ignored."""
    pending = [t for t in tasks if t is not None]
    for task in pending:
        task.cancel()
    for task in pending:
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
