"""A small two-sided quoting strategy for the cockpit's tests (stable, unlike the examples).

It keeps one buy and one sell order working, `inside` ticks inside the spread when the spread
is more than two ticks wide and at the touch otherwise, and replaces an order once it has
ended. Orders therefore rest (cancel all has work to do), fill within a few hundred events
(flatten has a position to close) and keep coming (the kill switch has orders to deny). Two
numeric parameters (size, inside) give the optimizer tests a two-dimensional search.
"""

from __future__ import annotations

from engine import strategy_api as api
from engine.codes import ST_CANCELED, ST_DENIED, ST_EXPIRED, ST_FILLED, ST_REJECTED
from engine.strategy import Strategy


class Quoter(Strategy):
    """One bid and one ask near the touch."""

    params = {"instrument": 0, "size": 50, "inside": 1}
    state = {"bid": -1, "ask": -1}

    def on_data(self, ctx, ev):
        bb = api.best_bid(ctx, self.instrument)
        ba = api.best_ask(ctx, self.instrument)
        if bb == api.NO_PRICE or ba == api.NO_PRICE:
            return
        wide = ba - bb > 2
        if self.bid >= 0:
            s = api.status(ctx, self.bid)
            if s < 0 or s == ST_FILLED or s == ST_CANCELED or s == ST_REJECTED:
                self.bid = -1
            elif s == ST_DENIED or s == ST_EXPIRED:
                self.bid = -1
        if self.ask >= 0:
            s = api.status(ctx, self.ask)
            if s < 0 or s == ST_FILLED or s == ST_CANCELED or s == ST_REJECTED:
                self.ask = -1
            elif s == ST_DENIED or s == ST_EXPIRED:
                self.ask = -1
        if self.bid < 0:
            oid = api.buy_limit(ctx, self.instrument, bb + self.inside if wide else bb, self.size)
            self.bid = oid if oid >= 0 else -1
        if self.ask < 0:
            oid = api.sell_limit(ctx, self.instrument, ba - self.inside if wide else ba, self.size)
            self.ask = oid if oid >= 0 else -1
