"""BinanceSpotExec's view of the venue: its clock, its exchangeInfo and its rate limits.

`ClockAndLimits` is a mixin of `binance_spot_exec.BinanceSpotExec` (not used alone; `clock`,
`limiter`, `filters` are the client's). On each connection the venue's clock is measured
with the `time` method (NTP-style, best of 3, `ClockOffset`): signed requests carry a
timestamp on the venue's clock. On the first connection exchangeInfo gives the symbols'
filters and the rate limits (unless given). Replies tell the venue's weight count (it
raises ours: another process may share the IP's budget); a 429/418 pauses every request
until its `retryAfter`; -1021 (timestamp outside recvWindow) re-measures the clock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from adapters.live.binance_exec_messages import retry_after_seconds
from adapters.live.correlation import Outcome
from adapters.live.rate_limit import RateLimiter, limits_from_binance
from adapters.live.secrets import redact
from adapters.live.venue_filters import VenueFilters
from adapters.live.ws_types import Connection
from engine.errors import DataError

log = logging.getLogger("adapters.live.binance_spot_exec")  # the client's one logger


class ClockAndLimits:
    """Clock offset, filters and rate limits from the venue (a BinanceSpotExec part)."""

    async def _sync_clock(self, conn: Connection, samples: int = 3) -> None:
        """Measure the venue's clock with the `time` method (NTP-style, best of a few)."""
        got = 0
        for _ in range(samples):
            t0 = self._clock_ns()
            reply = await self._call("time", {}, conn=conn, signed=False)
            t1 = self._clock_ns()
            if reply.ok and isinstance(reply.result, dict):
                server = reply.result.get("serverTime")
                if isinstance(server, int):
                    self.clock.observe(t0, server, t1)
                    got += 1
            elif reply.outcome is Outcome.NOT_SENT:
                break
        self.clock_syncs += 1
        if got == 0 and self.clock.best is None:
            raise ConnectionError("could not measure the venue's clock")

    async def _resync_clock(self) -> None:
        conn = self._active
        if conn is not None:
            try:
                await self._sync_clock(conn)
            except ConnectionError as exc:
                log.warning("%s: clock re-measurement failed: %s", self.venue, exc)

    async def _load_exchange_info(self, conn: Connection, symbols: list[str]) -> None:
        reply = await self._call("exchangeInfo", {"symbols": symbols}, conn=conn, signed=False)
        if not reply.ok or not isinstance(reply.result, dict):
            if reply.outcome is Outcome.NOT_SENT:
                raise ConnectionError("connection lost while loading exchangeInfo")
            log.error(
                "%s: exchangeInfo failed (%s); orders go unchecked locally",
                self.venue,
                redact(str(reply.error or reply.reason)),
            )
            return
        info = reply.result
        for sym in symbols:
            try:
                self.filters[sym] = VenueFilters.from_exchange_info(info, sym)
            except DataError as exc:
                log.error("%s: %s", self.venue, exc)
        if not self._explicit_limits:
            limits = limits_from_binance(info.get("rateLimits", ()))
            limits = [lim for lim in limits if lim.kind in ("REQUEST_WEIGHT", "ORDERS")]
            if limits:
                self.limiter = RateLimiter(limits, clock=self._mono, sleep=self._sleep)

    def _on_rate_limit(self, err: Mapping[str, Any]) -> None:
        """429/418: pause every request until the venue's retryAfter; -1021: re-measure."""
        status = err.get("status")
        if status in (429, 418):
            now_ms = self.clock.timestamp_ms() if self.clock.best else self._clock_ns() // 10**6
            seconds = retry_after_seconds(err, now_ms)
            self.limiter.on_http_status(int(status), seconds)
        if err.get("code") == -1021 and self.sync_clock:
            self._spawn(self._resync_clock(), "clock")

    def _observe_limits(self, items: Any) -> None:
        """The venue's request-weight count (another process may share our IP's budget)."""
        if not isinstance(items, list):
            return
        for item in items:
            if (
                isinstance(item, dict)
                and item.get("rateLimitType") == "REQUEST_WEIGHT"
                and isinstance(item.get("count"), int)
            ):
                self.limiter.observe_used("REQUEST_WEIGHT", item["count"])
