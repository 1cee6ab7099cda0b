"""Local rate limiting: sliding-window weight buckets fed by a venue's published limits.

A venue publishes limits as "at most N weight per interval" (Binance: REQUEST_WEIGHT 6000 a
minute, RAW_REQUESTS 61000 per 5 minutes, 5 WebSocket messages a second per connection; 300
connection attempts per 5 minutes per IP). The limiter keeps, per limit, a log of what was
spent in the last window and makes a caller wait until its cost fits.

Why sliding windows and not token buckets: a token bucket of capacity N refilled at N per
window lets a full bucket be spent at the start of a window and refilled during it, so up to
2N can go out within one of the venue's fixed windows. A sliding window never holds more
than N in *any* interval of that length, so it never exceeds a fixed-window limit either.

The venue has the last word: an HTTP 429 (too many requests) or 418 (IP banned after
ignoring 429s) pauses every caller for `Retry-After` seconds (or a default), and a usage
figure the venue reports (Binance's `X-MBX-USED-WEIGHT-1M`) raises our count when it is
higher than ours (another process on the same IP spends the same budget).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from engine.errors import UsageError

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

DEFAULT_PAUSE_429: float = 60.0
"""Pause after a 429 that carried no Retry-After (seconds)."""
DEFAULT_PAUSE_418: float = 120.0
"""Pause after a 418 that carried no Retry-After (Binance bans for 2 minutes to 3 days)."""


@dataclass(frozen=True)
class Limit:
    """At most `capacity` weight of kind `kind` in any `window` seconds."""

    kind: str
    """What the cost is counted in, e.g. REQUEST_WEIGHT, RAW_REQUESTS, MESSAGES, CONNECTIONS."""
    capacity: int
    window: float
    """Seconds."""

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.window <= 0:
            raise UsageError(f"rate limit {self.kind}: capacity and window must be positive")

    @property
    def name(self) -> str:
        """`KIND/<window>s`, for logs."""
        return f"{self.kind}/{self.window:g}s"


class SlidingWindow:
    """What was spent against one Limit in the last `window` seconds."""

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self._log: deque[tuple[float, int]] = deque()
        self._used = 0

    def used(self, now: float) -> int:
        """Weight spent in (now - window, now]."""
        self._expire(now)
        return self._used

    def wait_time(self, weight: int, now: float) -> float:
        """Seconds until `weight` fits (0 when it fits now)."""
        self._expire(now)
        excess = self._used + weight - self.limit.capacity
        if excess <= 0:
            return 0.0
        freed = 0
        for t, w in self._log:
            freed += w
            if freed >= excess:
                return max(t + self.limit.window - now, 0.0)
        return self.limit.window  # unreachable when weight <= capacity

    def add(self, weight: int, now: float) -> None:
        """Record `weight` spent at `now`."""
        self._log.append((now, weight))
        self._used += weight

    def raise_to(self, used: int, now: float) -> None:
        """The venue says `used` is spent in the current window: count at least that much."""
        missing = used - self.used(now)
        if missing > 0:
            self.add(missing, now)

    def _expire(self, now: float) -> None:
        edge = now - self.limit.window
        log_ = self._log
        while log_ and log_[0][0] <= edge:
            self._used -= log_.popleft()[1]


class RateLimiter:
    """Waits until a cost fits every limit of its kinds; pauses when the venue says so.

    Args:
        limits: the venue's limits (several may share a kind: 10 a second and 200,000 a day).
        clock: monotonic seconds (injected in tests).
        sleep: the coroutine used to wait (injected in tests).
    """

    def __init__(
        self,
        limits: Iterable[Limit] = (),
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._windows = [SlidingWindow(limit) for limit in limits]
        self._clock = clock
        self._sleep = sleep
        self.paused_until = 0.0
        self.pause_reason = ""
        self.waits = 0
        """Acquisitions that had to wait (for room or a pause)."""
        self.pauses = 0
        """Pauses ordered by the venue (429, 418, or `pause`)."""

    @property
    def limits(self) -> list[Limit]:
        """The limits enforced."""
        return [w.limit for w in self._windows]

    def paused_for(self) -> float:
        """Seconds left in the current pause (0 when not paused)."""
        return max(self.paused_until - self._clock(), 0.0)

    def used(self, kind: str) -> int:
        """Weight of `kind` spent in its tightest window."""
        now = self._clock()
        return max((w.used(now) for w in self._windows if w.limit.kind == kind), default=0)

    def wait_time(self, costs: Mapping[str, int]) -> float:
        """Seconds before `costs` fit every limit and any pause is over (0: now)."""
        now = self._clock()
        wait = max(self.paused_until - now, 0.0)
        for w in self._windows:
            cost = costs.get(w.limit.kind, 0)
            if cost:
                wait = max(wait, w.wait_time(cost, now))
        return wait

    async def acquire(self, costs: Mapping[str, int] | None = None) -> None:
        """Wait until `costs` (weight by limit kind) fit, then count them as spent.

        Raises:
            UsageError: a cost larger than the capacity of one of its limits (it never fits).
        """
        costs = costs or {}
        for w in self._windows:
            cost = costs.get(w.limit.kind, 0)
            if cost > w.limit.capacity:
                raise UsageError(f"cost {cost} exceeds the rate limit {w.limit.name}")
        waited = False
        while True:
            wait = self.wait_time(costs)
            if wait <= 0:
                break
            waited = True
            await self._sleep(wait)
        if waited:
            self.waits += 1
        self.spend(costs)

    def spend(self, costs: Mapping[str, int]) -> None:
        """Count `costs` as spent now, without waiting (after `wait_time` said 0)."""
        now = self._clock()
        for w in self._windows:
            cost = costs.get(w.limit.kind, 0)
            if cost:
                w.add(cost, now)

    def pause(self, seconds: float, reason: str) -> None:
        """Hold every caller for `seconds` (a longer pause already running is kept)."""
        until = self._clock() + max(seconds, 0.0)
        self.pauses += 1
        if until > self.paused_until:
            self.paused_until = until
            self.pause_reason = reason
        log.warning("rate limiter paused for %.1f s: %s", seconds, reason)

    def on_http_status(self, status: int, retry_after: float | None) -> float | None:
        """Pause on 429 or 418 as the venue asks; returns the pause (None for other statuses)."""
        if status == 429:
            seconds = DEFAULT_PAUSE_429 if retry_after is None else retry_after
        elif status == 418:
            seconds = DEFAULT_PAUSE_418 if retry_after is None else retry_after
        else:
            return None
        self.pause(seconds, f"HTTP {status}")
        return seconds

    def observe_used(self, kind: str, used: int) -> None:
        """The venue reports `used` weight of `kind` in its window: count at least that."""
        now = self._clock()
        for w in self._windows:
            if w.limit.kind == kind:
                w.raise_to(used, now)


_BINANCE_INTERVALS = {"SECOND": 1.0, "MINUTE": 60.0, "HOUR": 3600.0, "DAY": 86400.0}


def limits_from_binance(rate_limits: Iterable[Mapping]) -> list[Limit]:
    """Limits from the `rateLimits` list of Binance's exchangeInfo (unknown intervals skipped).

    `{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
    "limit": 6000}` becomes Limit("REQUEST_WEIGHT", 6000, 60.0).
    """
    out = []
    for item in rate_limits:
        unit = _BINANCE_INTERVALS.get(str(item.get("interval")))
        if unit is None:
            log.warning("unknown rate limit interval in %r", item)
            continue
        out.append(
            Limit(
                kind=str(item["rateLimitType"]),
                capacity=int(item["limit"]),
                window=unit * int(item.get("intervalNum", 1)),
            )
        )
    return out
