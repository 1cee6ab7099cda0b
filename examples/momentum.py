"""Momentum: follow a fast/slow moving-average crossover of the mid, with a trailing stop.

The idea: when the recent price (a fast exponentially weighted average of the mid) runs
ahead of the longer-term one (a slow average), the move tends to continue for a while; hold
a long position while the fast average is above the slow one by more than a threshold, a
short one while it is below, and nothing in between. The position grows with the strength
of the signal, and a trailing stop closes it when the price gives back too much.

The averages are weighted by time, not by event count: each update decays the old value by
exp(-dt / tau), so a burst of messages does not make the average faster. (Strategy state is
scalar record fields, so an average is the natural rolling statistic: no window to store.)

Units: prices are integer ticks, sizes integer lots, times ns.

Parameters
- instrument: id of the instrument traded.
- fast_ns, slow_ns: time constants (tau) of the fast and slow averages.
- threshold: ticks the fast average must be above (below) the slow one to go long (short).
- size: lots per unit of position; the position is `size` times the number of whole
  thresholds in the signal, capped at `max_units` (so 1 to max_units units).
- max_units: cap on the position in units of `size`.
- stop_ticks: trailing stop; a position is closed once the mid is this many ticks worse
  than the best mid seen since it was opened (0: no stop).
- cooldown_ns: after a stop, no new position in the same direction for this long.
- warmup_ns: no trading until the averages have seen this much data.

State: the two averages (in half ticks, like mid_x2), the times of the first and last
update, the best mid since entry (half ticks), the direction the strategy wants (-1, 0, 1),
the order in flight, the direction blocked by the last stop and until when, and counters
of entries and stops.

Orders are market orders (taking liquidity: a momentum signal is worth more than the
spread, or it is not worth trading), one at a time: the next goes out when the previous
one has ended, and each moves the position towards the target by the difference.

Example:
    cockpit backtest examples/momentum.py \
        --data ../shared/data/binance-ws/spot_btcusdt_20240808.gz \
        --param threshold=20 --param size=500 --param stop_ticks=200
"""

from __future__ import annotations

import math

from engine import strategy_api as api
from engine.codes import (
    SIDE_BUY_CODE,
    SIDE_SELL_CODE,
    ST_CANCELED,
    ST_DENIED,
    ST_EXPIRED,
    ST_FILLED,
    ST_REJECTED,
)
from engine.strategy import Strategy


class Momentum(Strategy):
    """EWMA crossover of the mid with signal-scaled size and a trailing stop."""

    params = {
        "instrument": 0,
        "fast_ns": 2_000_000_000,
        "slow_ns": 20_000_000_000,
        "threshold": 2.0,
        "size": 100,
        "max_units": 3,
        "stop_ticks": 20,
        "cooldown_ns": 10_000_000_000,
        "warmup_ns": 20_000_000_000,
    }
    state = {
        "fast_x2": 0.0,
        "slow_x2": 0.0,
        "last_ts": 0,
        "first_ts": 0,
        "best_x2": 0,
        "direction": 0,
        "oid": -1,
        "stop_ts": 0,
        "stop_dir": 0,
        "entries": 0,
        "stops": 0,
    }

    def on_data(self, ctx, ev):
        m2 = api.mid_x2(ctx, self.instrument)
        if m2 == 0:
            return
        now = api.now(ctx)
        if self.last_ts == 0:
            # First mid: both averages start there.
            self.fast_x2 = float(m2)
            self.slow_x2 = float(m2)
            self.first_ts = now
            self.last_ts = now
            return
        dt = float(now - self.last_ts)
        self.last_ts = now
        if dt > 0.0:
            a_fast = 1.0 - math.exp(-dt / self.fast_ns)
            a_slow = 1.0 - math.exp(-dt / self.slow_ns)
            self.fast_x2 += a_fast * (m2 - self.fast_x2)
            self.slow_x2 += a_slow * (m2 - self.slow_x2)
        if now - self.first_ts < self.warmup_ns:
            return

        pos = api.position(ctx, self.instrument)
        # The trailing stop: track the best mid since the position was opened; once the mid
        # falls back stop_ticks from it, block that direction for cooldown_ns (which also
        # closes the position below, as the target in that direction becomes 0).
        if pos != 0:
            held = 1 if pos > 0 else -1
            if (m2 - self.best_x2) * held > 0:
                self.best_x2 = m2
            if (
                self.stop_ticks > 0
                and (self.best_x2 - m2) * held >= 2 * self.stop_ticks
                and not (self.stop_dir == held and now < self.stop_ts)
            ):
                self.stops += 1
                self.stop_dir = held
                self.stop_ts = now + self.cooldown_ns  # blocked until then

        # Target position from the signal: whole thresholds, capped, in lots.
        signal = 0.5 * (self.fast_x2 - self.slow_x2)  # ticks
        units = int(abs(signal) / self.threshold)
        if units > self.max_units:
            units = self.max_units
        direction = 0
        if units > 0:
            direction = 1 if signal > 0 else -1
        if direction == self.stop_dir and now < self.stop_ts:
            direction = 0
            units = 0
        target = direction * units * self.size
        # Hold a position of the right sign while the signal stays on that side rather than
        # trade every wiggle of the unit count: add to it, never trim it.
        if direction != 0 and direction == self.direction and pos * direction > 0:
            if abs(target) <= abs(pos):
                return
        if direction != self.direction and direction != 0:
            self.best_x2 = m2  # a new position starts its trailing stop here
            self.entries += 1
        self.direction = direction

        if self.oid >= 0 or target == pos:
            return  # one order at a time: the next decision comes with the next message
        qty = target - pos
        side = SIDE_BUY_CODE if qty > 0 else SIDE_SELL_CODE
        oid = api.market(ctx, self.instrument, side, abs(qty))
        if oid >= 0:
            self.oid = oid

    def on_order_update(self, ctx, oid, status):
        if oid == self.oid and (
            status == ST_FILLED
            or status == ST_CANCELED
            or status == ST_EXPIRED
            or status == ST_REJECTED
            or status == ST_DENIED
        ):
            self.oid = -1
