"""The venue's clock measured against ours, so signed requests carry its time.

Binance refuses a signed request (`-1021 Timestamp for this request is outside of the
recvWindow`) unless `timestamp < serverTime + 1000` and `serverTime - timestamp <=
recvWindow` (5,000 ms by default) when it arrives. A local clock a few seconds off, which
is common on desktops and VMs, breaks trading; so the offset to the venue is measured and
every timestamp is local time plus that offset.

Measurement, as NTP's clock filter does it: ask the server time (`GET /api/v3/time`) noting
local send and receive times; the server read its clock somewhere in between, so the best
estimate is the midpoint, `offset = server_time - (t_send + t_recv) / 2`, wrong by at most
half the round trip (plus the server's 1 ms resolution). The sample with the smallest round
trip among the last `window` samples is used: queueing delay only ever adds to the round
trip, so the shortest one is the least distorted. Older samples drop out of the window, so
a drifting local clock is followed by measuring again now and then (every few minutes).

Local times must come from the same wall clock as `clock` (`time.time_ns` by default), not
a monotonic clock: the offset relates that clock to the venue's epoch milliseconds.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from engine.errors import UsageError

NS_PER_MS: Final = 1_000_000
DEFAULT_WINDOW: Final = 8
"""Samples kept (NTP's clock filter also keeps 8)."""


@dataclass(frozen=True, slots=True)
class ClockSample:
    """One server-time request: local send and receive times around the server's reading."""

    t_send_ns: int
    """Local wall clock when the request was sent (ns since the epoch)."""
    server_time_ms: int
    """The server's time in its reply (ms since the epoch; Binance's `serverTime`)."""
    t_recv_ns: int
    """Local wall clock when the reply arrived (ns since the epoch)."""

    @property
    def round_trip_ns(self) -> int:
        """Receive minus send time: twice the worst error of this sample's offset."""
        return self.t_recv_ns - self.t_send_ns

    @property
    def offset_ns(self) -> int:
        """Server time minus the local midpoint of the request (positive: we are behind)."""
        return self.server_time_ms * NS_PER_MS - (self.t_send_ns + self.t_recv_ns) // 2


class ClockOffset:
    """The venue clock's offset from ours, from the best of the recent samples.

    Args:
        clock: the local wall clock in ns (injected in tests).
        window: how many recent samples to choose the best one from.
    """

    def __init__(
        self, clock: Callable[[], int] = time.time_ns, *, window: int = DEFAULT_WINDOW
    ) -> None:
        if window < 1:
            raise UsageError(f"clock offset window: {window} samples, need at least 1")
        self._clock = clock
        self._samples: deque[ClockSample] = deque(maxlen=window)
        self._best: ClockSample | None = None

    def observe(self, t_send_ns: int, server_time_ms: int, t_recv_ns: int) -> ClockSample:
        """Add one measurement and return it.

        Raises:
            UsageError: a reply received before the request was sent (clock stepped or the
                arguments swapped), or a non-positive server time.
        """
        if t_recv_ns < t_send_ns:
            raise UsageError(
                f"clock sample: received at {t_recv_ns} ns before it was sent at "
                f"{t_send_ns} ns (did the local clock step, or are the arguments swapped?)"
            )
        if server_time_ms <= 0:
            raise UsageError(f"clock sample: server time {server_time_ms} ms is not a time")
        sample = ClockSample(t_send_ns, server_time_ms, t_recv_ns)
        self._samples.append(sample)
        # Ties keep the newer sample: same quality, fresher.
        self._best = min(reversed(self._samples), key=lambda s: s.round_trip_ns)
        return sample

    @property
    def best(self) -> ClockSample | None:
        """The sample in use (smallest round trip in the window), None before any."""
        return self._best

    @property
    def offset_ns(self) -> int:
        """Venue time minus local time, in ns.

        Raises:
            UsageError: no sample yet (measure before sending a signed request).
        """
        return self._need_best().offset_ns

    @property
    def uncertainty_ns(self) -> int:
        """Worst error of `offset_ns`: half the best round trip plus the server's 1 ms."""
        return self._need_best().round_trip_ns // 2 + NS_PER_MS

    def now_ns(self) -> int:
        """The venue's current time by our estimate, in ns."""
        return self._clock() + self.offset_ns

    def timestamp_ms(self) -> int:
        """The `timestamp` parameter for a signed request: venue time in whole ms."""
        return self.now_ns() // NS_PER_MS

    def _need_best(self) -> ClockSample:
        if self._best is None:
            raise UsageError(
                "clock offset: no server time measured yet; call observe() with a server "
                "time sample before signing requests"
            )
        return self._best
