"""Pairs trader: statistical arbitrage on the spread between two related instruments.

The idea: two instruments driven by the same thing (BTC and ETH against USDT, a spot and its
perpetual, two listings of one share) keep their log prices roughly in a fixed relation,
    spread = log(mid1) - hedge_ratio * log(mid2),
and when the spread strays far from its recent mean it tends to come back. The strategy
tracks the spread's mean and variance, turns the current spread into a z-score, and
- sells the spread (sell instrument, buy instrument2) when z > entry_z,
- buys the spread (buy instrument, sell instrument2) when z < -entry_z,
- closes the position when |z| < exit_z, or when |z| > stop_z (the relation broke).

Rolling statistics without a window: numba record fields are scalars, so the mean and the
variance are exponentially weighted and decay with time (weight exp(-dt / tau) for what is
dt ns old), which makes `tau_ns` the look-back. Prices enter as log(mid_x2), i.e. the log of
twice the mid in ticks: the constant log(2 * tick) is absorbed by the mean, so the z-score
is the same as with prices in currency.

The hedge: for `size` lots of instrument, the other leg holds the quantity whose value is
hedge_ratio times the first leg's value (the hedge that makes the position flat in the
spread above). Values need the instruments' tick and lot sizes, which a strategy working in
ticks and lots does not know, hence `value_ratio`:
    value_ratio = (tick1 * lot1) / (tick2 * lot2)
the value of one tick times one lot of instrument over the same for instrument2 (1.0 when
both have the same tick and lot, as on the synthetic market; 0.1 for Binance spot BTCUSDT
(tick 0.01, lot 0.000001) against ETHUSDT (tick 0.01, lot 0.00001)). Then
    lots2 = size * hedge_ratio * value_ratio * mid1 / mid2  (rounded).

Units: prices in ticks of their instrument, sizes in lots, times in ns.

Parameters
- instrument, instrument2: ids of the two legs (the strategy is subscribed to both).
- hedge_ratio: beta of the spread above (1.0: equal value on both legs).
- value_ratio: (tick1 * lot1) / (tick2 * lot2), see above.
- size: lots of instrument per position.
- tau_ns: time constant of the mean and variance.
- warmup_ns: no trading until the statistics have seen this much data.
- entry_z, exit_z, stop_z: thresholds on |z| (stop_z 0: no stop).
- slippage: ticks beyond the opposite touch for the orders (immediate-or-cancel limits, so
  a leg never fills worse than that; what does not fill is retried with the next message).

State: the last log spread, its weighted mean and variance, the time of the last update,
when the statistics started, the last z-score, the position wanted in units (-1, 0, 1), the
order in flight on each leg, and counters of entries, exits and stops.

Orders are sent leg by leg towards the target position of each leg, one order per leg at a
time: a partial fill or an expired remainder is simply retried. A stop blocks new entries
until |z| has come back under entry_z.

Example (BTC against ETH, Binance spot captures of the same 6 minutes):
    cockpit backtest examples/pairs_trader.py \
        --data ../shared/data/binance-ws/spot_btcusdt_20240808.gz \
        --data ../shared/data/binance-ws/spot_ethusdt_20240808.gz \
        --param instrument2=1 --param value_ratio=0.1 --param size=1000
"""

from __future__ import annotations

import math

from numba import njit

from engine import strategy_api as api
from engine.codes import (
    OT_LIMIT,
    SIDE_BUY_CODE,
    SIDE_SELL_CODE,
    ST_CANCELED,
    ST_DENIED,
    ST_EXPIRED,
    ST_FILLED,
    ST_REJECTED,
    TIF_IOC,
)
from engine.strategy import Strategy

NO_PRICE = api.NO_PRICE


# Hooks may call only jitted code, so a helper is an @njit function like the hooks.
@njit(cache=True, nogil=True)
def _move(ctx, inst, target, slippage):
    """Send one immediate-or-cancel order moving `inst` towards `target`; its id or -1."""
    qty = target - api.position(ctx, inst)
    if qty == 0:
        return -1
    if qty > 0:
        touch = api.best_ask(ctx, inst)
        if touch == NO_PRICE:
            return -1
        oid = api.submit(ctx, inst, SIDE_BUY_CODE, touch + slippage, qty, OT_LIMIT, TIF_IOC, 0)
    else:
        touch = api.best_bid(ctx, inst)
        if touch == NO_PRICE or touch - slippage <= 0:
            return -1
        oid = api.submit(ctx, inst, SIDE_SELL_CODE, touch - slippage, -qty, OT_LIMIT, TIF_IOC, 0)
    return oid if oid >= 0 else -1


class PairsTrader(Strategy):
    """Z-score of a log-price spread with entry, exit and stop thresholds."""

    params = {
        "instrument": 0,
        "instrument2": 1,
        "hedge_ratio": 1.0,
        "value_ratio": 1.0,
        "size": 100,
        "tau_ns": 30_000_000_000,
        "warmup_ns": 30_000_000_000,
        "entry_z": 2.0,
        "exit_z": 0.5,
        "stop_z": 5.0,
        "slippage": 2,
    }
    state = {
        "spread": 0.0,
        "mean": 0.0,
        "var": 0.0,
        "last_ts": 0,
        "first_ts": 0,
        "z": 0.0,
        "units": 0,
        "blocked": False,
        "oid1": -1,
        "oid2": -1,
        "entries": 0,
        "exits": 0,
        "stops": 0,
    }

    def on_data(self, ctx, ev):
        m1 = api.mid_x2(ctx, self.instrument)
        m2 = api.mid_x2(ctx, self.instrument2)
        if m1 == 0 or m2 == 0:
            return  # one leg has no market yet
        now = api.now(ctx)
        spread = math.log(m1) - self.hedge_ratio * math.log(m2)
        self.spread = spread
        if self.first_ts == 0:
            self.first_ts = now
            self.last_ts = now
            self.mean = spread
            self.var = 0.0
            return
        # Time-decayed mean and variance (West's incremental form, exponentially weighted).
        dt = float(now - self.last_ts)
        self.last_ts = now
        if dt > 0.0:
            a = 1.0 - math.exp(-dt / self.tau_ns)
            diff = spread - self.mean
            incr = a * diff
            self.mean += incr
            self.var = (1.0 - a) * (self.var + diff * incr)
        if now - self.first_ts < self.warmup_ns or self.var <= 0.0:
            return
        z = (spread - self.mean) / math.sqrt(self.var)
        self.z = z

        # Decide the position in units of the spread: -1 short, 0 flat, +1 long.
        units = self.units
        if self.blocked and abs(z) < self.entry_z:
            self.blocked = False  # back inside the band: a stop no longer blocks entries
        if units != 0 and self.stop_z > 0.0 and abs(z) > self.stop_z:
            units = 0
            self.blocked = True
            self.stops += 1
        elif units != 0 and abs(z) < self.exit_z:
            units = 0
            self.exits += 1
        elif units == 0 and not self.blocked and (self.stop_z <= 0.0 or abs(z) < self.stop_z):
            if z > self.entry_z:
                units = -1  # spread rich: sell instrument, buy instrument2
                self.entries += 1
            elif z < -self.entry_z:
                units = 1
                self.entries += 1
        self.units = units

        # Targets per leg, in lots; the hedge leg is sized at today's price ratio.
        target1 = units * self.size
        lots2 = self.size * self.hedge_ratio * self.value_ratio * float(m1) / float(m2)
        target2 = -units * int(round(lots2))
        if self.oid1 < 0:
            self.oid1 = _move(ctx, self.instrument, target1, self.slippage)
        if self.oid2 < 0:
            self.oid2 = _move(ctx, self.instrument2, target2, self.slippage)

    def on_order_update(self, ctx, oid, status):
        done = (
            status == ST_FILLED
            or status == ST_CANCELED
            or status == ST_EXPIRED
            or status == ST_REJECTED
            or status == ST_DENIED
        )
        if done and oid == self.oid1:
            self.oid1 = -1
        elif done and oid == self.oid2:
            self.oid2 = -1
