"""How a replay is paced: the speed ladder, chunk sizing, and running one chunk.

Chunks are sized by the replay speed: at x N of event time the engine thread advances the
engine clock by N times the wall time since the last chunk (`BREAK_TIME`), at most
`TICK_SECONDS` apart; "as fast as possible" (speed None) runs chunks sized to take about
`MAX_CHUNK_SECONDS`. A seek (step to the next fill/alert/trade, jump to a time) runs
chunks until its breakpoint.

`ReplayPacing` is a mixin of `bridge.EngineBridge` (not used alone: the mode, speed and
clocks are the bridge's); the functions work on speeds alone.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from engine.codes import (
    BREAK_ALERT,
    BREAK_FILL,
    BREAK_TIME,
    BREAK_TRADE,
    STOP_CHUNK_DONE,
    STOP_END_OF_DATA,
    STOP_NAMES,
)

SPEEDS: Final[tuple[float, ...]] = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
)
"""Replay speeds (multiples of event time) that faster/slower step through."""
TICK_SECONDS: Final = 1 / 30
"""Wall time between chunks at a finite speed: the engine clock moves 30 times a second."""
MAX_CHUNK_SECONDS: Final = 0.02
"""Target wall time of one chunk as fast as possible: requests wait at most about this."""
PUBLISH_SECONDS: Final = 0.03
"""Least wall time between two snapshots of a running replay (the UI polls at 30 Hz);
after a request the snapshot goes out at once."""
MAX_WALL_STEP: Final = 0.25
"""Largest wall-time step credited to the replay clock (a stalled thread does not burst)."""
PACED_CHUNK_EVENTS: Final = 2_000_000
"""Most events per chunk at a finite speed; reaching it means the replay cannot keep up."""
GAP_SKIP_SECONDS: Final = 5.0
"""A quiet gap in the data longer than this in wall time at the current speed is skipped."""
IDLE_WAIT: Final = 0.2
"""How long the thread sleeps when there is nothing to do (a request wakes it earlier)."""
EPS_WINDOW: Final = 0.5
"""Wall seconds over which events per second are measured."""


class ReplayPacing:
    """Chunks of a playing or seeking replay (an EngineBridge part; engine thread only)."""

    def _start_seek(self, mask: int, stop_ts: int, what: str) -> None:
        self._mode = "seeking"
        self._seek_mask = mask
        self._seek_ts = stop_ts
        self._seek_what = what

    def _reset_pacing(self) -> None:
        """Restart the paced clock from the engine's time (after play or a speed change)."""
        self._last_wall = self._clock()
        eng = self.engine
        now = eng.now
        if eng.events_processed == 0 and eng.cursor < len(eng.events):
            now = int(eng.events["ts_local"][eng.cursor]) - 1  # the clock starts at zero
        self._replay_ts = now

    def _after_run(self, reason: int) -> None:
        self._last_stop = STOP_NAMES.get(reason, str(reason))
        if reason == STOP_END_OF_DATA:
            self._mode = "ended"
            self._seek_what = ""

    def _play_chunk(self, wall_dt: float | None = None) -> None:
        """One chunk of a running replay."""
        eng = self.engine
        if self._speed is None:
            t0 = self._clock()
            before = eng.events_processed
            reason = eng.run(max_events=self._chunk_events)
            dt = self._clock() - t0
            done = eng.events_processed - before
            if dt > 0 and done > 0:
                # Size the next chunk to take about MAX_CHUNK_SECONDS at the rate just seen.
                rate = done / dt
                self._chunk_events = int(min(max(rate * MAX_CHUNK_SECONDS, 1000), 5_000_000))
            self._after_run(reason)
            return
        now_wall = self._clock()
        if wall_dt is None:
            wall_dt = now_wall - self._last_wall
            # Sleep out the rest of the tick (a request wakes the thread early).
            if wall_dt < TICK_SECONDS:
                self._wake.wait(TICK_SECONDS - wall_dt)
                now_wall = self._clock()
                wall_dt = now_wall - self._last_wall
        self._last_wall = now_wall
        wall_dt = min(max(wall_dt, 0.0), MAX_WALL_STEP)
        target = max(self._replay_ts, eng.now) + int(wall_dt * self._speed * 1e9)
        if eng.cursor < len(eng.events):
            nxt = int(eng.events["ts_local"][eng.cursor])
            if (nxt - target) / 1e9 / self._speed > GAP_SKIP_SECONDS:
                target = nxt  # a quiet gap: skip it rather than show nothing for minutes
        reason = eng.run(max_events=PACED_CHUNK_EVENTS, break_mask=BREAK_TIME, stop_ts=target)
        # Behind (the chunk was full): do not try to catch up in a burst.
        self._replay_ts = target if reason != STOP_CHUNK_DONE else eng.now
        self._after_run(reason)

    def _seek_chunk(self, unbounded: bool = False) -> None:
        """One chunk of a seek (step to next fill/alert/trade, jump to time)."""
        eng = self.engine
        n = np.iinfo(np.int64).max if unbounded else max(self._chunk_events, 100_000)
        t0 = self._clock()
        before = eng.events_processed
        reason = eng.run(max_events=n, break_mask=self._seek_mask, stop_ts=self._seek_ts)
        dt = self._clock() - t0
        done = eng.events_processed - before
        if dt > 0 and done > 0:
            self._chunk_events = int(min(max(done / dt * MAX_CHUNK_SECONDS, 1000), 5_000_000))
        self._after_run(reason)
        if reason != STOP_CHUNK_DONE and self._mode == "seeking":
            self._mode = "ended" if reason == STOP_END_OF_DATA else "paused"
            self._seek_what = ""


def check_speed(speed: float | None) -> float | None:
    """The speed as a float (None stays None); ValueError unless finite and positive."""
    if speed is None:
        return None
    speed = float(speed)
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    return speed


def next_speed(speed: float | None, direction: int) -> float | None:
    """The neighbouring speed on the SPEEDS ladder; None (as fast as possible) is the top."""
    if speed is None:
        return None if direction > 0 else SPEEDS[-1]
    if direction > 0:
        higher = [s for s in SPEEDS if s > speed * 1.0001]
        return higher[0] if higher else None
    lower = [s for s in SPEEDS if s < speed * 0.9999]
    return lower[-1] if lower else SPEEDS[0]


def mask_name(mask: int) -> str:
    """What a seek with this break mask looks for ("fill", "alert", "trade", "break")."""
    for bit, name in ((BREAK_FILL, "fill"), (BREAK_ALERT, "alert"), (BREAK_TRADE, "trade")):
        if mask & bit:
            return name
    return "break"


def speed_label(speed: float | None) -> str:
    """x10, x0.25, or MAX."""
    if speed is None:
        return "MAX"
    return f"x{speed:g}"
