"""Strategies used by the benchmarks (engine/bench.py); plain files so numba caches them."""

from __future__ import annotations

import numpy as np

from engine import strategy_api as api
from engine.strategy import Strategy

RING = 1 << 17


class PlaceCancel(Strategy):
    """The seed scenario: on every event, place an order (1 in 10) or cancel one (9 in 10).

    On start it rests `preload` orders away from the touch, so that each cancellation has a
    live order to cancel (the oldest, kept in a ring of order ids). Decisions come from a
    splitmix64 hash of the event count, the same on every run. New orders are post-only and
    `distance` ticks behind the touch: they rest and never fill, so the benchmark measures
    order handling (strategy, risk, OMS, venue acknowledgement), not matching.
    """

    params = {"instrument": 0, "preload": 90_000, "distance": 50, "size": 1, "place_pct": 10}
    state = {"seen": 0, "head": 0, "tail": 0, "ring": np.zeros(RING, np.int64)}

    def on_start(self, ctx):
        for k in range(self.preload):
            oid = api.post_only(ctx, self.instrument, 1, 1_000 - k % 20, self.size)
            if oid >= 0:
                self.ring[self.tail % RING] = oid
                self.tail += 1

    def on_data(self, ctx, ev):
        self.seen += 1
        x = np.uint64(self.seen) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
        if x % np.uint64(100) < np.uint64(self.place_pct) or self.head == self.tail:
            bid = api.best_bid(ctx, self.instrument)
            price = bid - self.distance if bid != api.NO_PRICE else 1_000
            oid = api.post_only(ctx, self.instrument, 1, price, self.size)
            if oid >= 0:
                self.ring[self.tail % RING] = oid
                self.tail += 1
        else:
            api.cancel(ctx, self.ring[self.head % RING])
            self.head += 1
