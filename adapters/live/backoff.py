"""When to try connecting again: exponential backoff with full jitter, under an attempt budget.

Full jitter (delay drawn uniformly in [0, min(cap, initial * factor**n)], after the AWS
architecture blog's comparison of jitter schemes) spreads the reconnections of many clients
dropped at once by a venue restart, instead of having them all return in lock step.

The budget is the venue's own limit on connection attempts (Binance: 300 per 5 minutes per
IP; Bybit: 500 per 5 minutes). However the backoff draws, an attempt that would exceed it
waits until the oldest attempt leaves the window.
"""

from __future__ import annotations

import random
import time

from adapters.live.rate_limit import Clock, Limit, SlidingWindow
from engine.errors import UsageError


class Backoff:
    """Delays for successive reconnection attempts; `reset()` after a healthy connection.

    Args:
        initial: ceiling of the first delay, seconds.
        factor: growth of the ceiling per attempt.
        cap: largest ceiling, seconds.
        rng: source of the jitter; pass `random.Random(seed)` for a reproducible sequence.
    """

    def __init__(
        self,
        initial: float = 0.5,
        factor: float = 2.0,
        cap: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or factor < 1 or cap < initial:
            raise UsageError(
                f"backoff needs initial > 0, factor >= 1 and cap >= initial "
                f"(got {initial}, {factor}, {cap})"
            )
        self.initial = initial
        self.factor = factor
        self.cap = cap
        self._rng = rng or random.Random()
        self.attempt = 0
        """Delays drawn since the last reset."""

    def ceiling(self, attempt: int) -> float:
        """The largest delay of the `attempt`-th retry (0-based)."""
        # Compare exponents rather than computing factor**attempt, which overflows.
        if attempt > 64 or self.initial * self.factor**attempt >= self.cap:
            return self.cap
        return self.initial * self.factor**attempt

    def next_delay(self) -> float:
        """The next delay, uniform in [0, ceiling(attempt)]; advances the attempt count."""
        delay = self._rng.uniform(0.0, self.ceiling(self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start again from the first delay (after a connection proved healthy)."""
        self.attempt = 0


class AttemptBudget:
    """At most `attempts` connection attempts in any `window` seconds."""

    def __init__(self, attempts: int, window: float, *, clock: Clock = time.monotonic) -> None:
        self._window = SlidingWindow(Limit("CONNECTIONS", attempts, window))
        self._clock = clock

    def wait_time(self) -> float:
        """Seconds before another attempt is within budget (0: now)."""
        return self._window.wait_time(1, self._clock())

    def record(self) -> None:
        """Count one attempt, now."""
        self._window.add(1, self._clock())

    def used(self) -> int:
        """Attempts in the current window."""
        return self._window.used(self._clock())
