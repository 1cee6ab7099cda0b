"""LiveSession's stepping cycle: wake-ups, the engine step, the outbox to the journal and
the venue, and stopping on a failure.

`SessionStepping` is a mixin of `session.LiveSession` (it is not used alone): the state it
works on is created by `LiveSession.__init__` (`engine`, `orders`, `journal`, `execution`,
`options`, `timings`, `error`, `_records`, `_wake`, `_timer`, `_tasks`, `_last_now`,
`_pushed_at`, `_step_failed`, `_journal_failed`). Every part of the session logs under the
name `adapters.live.session` (`LOGGER_NAME`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from time import perf_counter_ns
from typing import Any

from adapters.live.session_orders import Prepared
from engine.commands import CMD_HALT, Command
from engine.errors import CockpitError
from engine.state import H_TS, N_HEAP

LOGGER_NAME = "adapters.live.session"
"""The logger of every part of the live session."""

log = logging.getLogger(LOGGER_NAME)


async def busy_poll() -> None:
    """Yield to the event loop forever: it then polls with a zero timeout, never sleeps."""
    while True:
        await asyncio.sleep(0)


class SessionStepping:
    """Step the engine and send what it asks for (a LiveSession part)."""

    async def _step_loop(self) -> None:
        while not self._step_failed:
            await self._wake.wait()
            self._wake.clear()
            self._step()

    def _step(self) -> None:
        """A cycle, then the timer for the next; an engine failure stops the stepping."""
        if self._step_failed:
            return
        try:
            self._cycle()
        except Exception as exc:  # the engine itself failed: stop trading, say why
            log.exception("live session: the engine step failed")
            self._step_failed = True
            self._fail(f"engine: {exc}")
            self._wake.set()  # the stepping task sees the flag and ends
            return
        self._arm_timer(asyncio.get_running_loop())

    def _arm_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake at the engine's next scheduled event (a timer, a report), or soon."""
        assert self.engine is not None
        st = self.engine.state
        delay = self.options.step_interval
        if st.ctl[N_HEAP] > 0:
            due = (int(st.hp[0, H_TS]) - time.time_ns()) / 1e9
            delay = min(delay, max(due, 0.0))
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(delay, self._wake.set)

    def _cycle(self) -> None:
        """One step: journal pending venue facts, run the engine to now, send its requests."""
        engine = self.engine
        assert engine is not None
        t0 = perf_counter_ns()
        market = self._pushed_at != 0  # a tick-to-order cycle: time it
        if market:
            self.timings.add("wake", t0 - self._pushed_at)
            self._pushed_at = 0
        self._flush_records()
        now = max(time.time_ns(), self._last_now)
        self._last_now = now
        engine.step_until(now)
        out = engine.take_outbox()
        t1 = perf_counter_ns()
        if market:
            self.timings.add("engine", t1 - t0)
        if out:
            self._dispatch(out, now, t1)

    def _dispatch(self, out: list, now: int, t1: int) -> None:
        orders, journal = self.orders, self.journal
        assert orders is not None and journal is not None
        prepared = [p for p in (orders.prepare(o, now) for o in out) if p is not None]
        t2 = perf_counter_ns()
        self.timings.add("encode", t2 - t1)
        if len(prepared) < len(out):
            self._wake.set()  # refusals were reported to the engine: apply them soon
        if not prepared:
            return
        try:
            journal.append_batch([p.intent for p in prepared])
        except CockpitError as exc:
            # Not journaled, so not sent: the engine hears they failed, and trading stops.
            for p in prepared:
                orders.not_sent(p, "the order journal failed", now)
            self._journal_failed = True
            self._fail(f"order journal: {exc}")
            return
        t3 = perf_counter_ns()
        self.timings.add("journal", t3 - t2)
        for p in prepared:
            self._send(p)
        self.timings.add("send", perf_counter_ns() - t3)

    def _send(self, p: Prepared) -> None:
        assert self.orders is not None
        counts = self.orders.counts
        counts.sent += 1
        ex, req = self.execution, p.request
        try:
            if req.kind == "new":
                counts.orders += 1
                answer = ex.place_now(req)  # written now when the connection is free
            elif req.kind == "cancel":
                answer = ex.cancel(req)
            else:
                answer = ex.amend(req)
        except Exception as exc:  # refused before sending (e.g. no signer)
            self._not_sent(p, exc)
            return
        task = asyncio.create_task(answer, name=f"live-session:{req.client_id}")
        self._tasks.add(task)
        task.add_done_callback(partial(self._answered, p))

    def _answered(self, p: Prepared, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._not_sent(p, task.exception())  # raised before sending (checked first)

    def _not_sent(self, p: Prepared, exc: Exception) -> None:
        req = p.request
        log.error("live session: %s %s not sent: %s", req.kind, req.client_id, exc)
        if self.orders is not None and p.oid >= 0:
            self.orders.not_sent(p, str(exc), time.time_ns())
            self._wake.set()

    def _flush_records(self) -> None:
        """Journal the venue's answers received since the last step (not synced: the next
        intents' fsync covers them)."""
        if not self._records or self.journal is None or self._journal_failed:
            return
        records, self._records = self._records, []
        try:
            self.journal.append_batch(records, sync=False)
        except CockpitError as exc:  # the intents that follow fail too: nothing is sent
            self._journal_failed = True
            self._fail(f"order journal: {exc}")

    def _fail(self, why: str) -> None:
        """Stop trading on our own: halt the engine and say why."""
        self.error = why
        log.error("live session: trading halted: %s", why)
        if self.engine is not None:
            try:
                self.engine.command(Command(CMD_HALT))
            except Exception:
                log.exception("live session: halting the engine failed")
