"""Strategies shared by the trading-core tests.

They live in a file (numba caches functions by file) and all share one field layout
(`Base.params` / `Base.state`), so the jitted loop is compiled once for all of them: a new
layout costs a full compile of the loop, a new hook only that hook.
"""

from __future__ import annotations

from engine import strategy_api as api
from engine.strategy import Strategy


class Base(Strategy):
    """Counts its calls; the order fields say what a subclass sends."""

    params = {
        "instrument": 0,
        "target": -1,  # instrument the orders go to (-1: `instrument`)
        "side": 1,
        "price": 0,
        "qty": 1,
        "otype": 0,
        "tif": 0,
        "flags": 0,
        "at": 1,  # send on this message (1 = the first one seen), 0 = never
        "again": 0,  # send the same order again on this message, 0 = never
        "cancel_at": 0,  # cancel all own orders on this message, 0 = never
        "count": 1,  # orders sent at once, `step` ticks apart
        "step": 1,
        "mode": 0,
        "timer_at": 0,  # set a timer for this engine time in on_start (0: none)
    }
    state = {
        "oid": -1,
        "ret": 0,
        "ret2": 0,
        "ok": 0,
        "denied": 0,
        "n_data": 0,
        "n_tick": 0,
        "n_upd": 0,
        "hist": 0,  # statuses seen by on_order_update, one hex digit each
        "last_status": -1,
        "tags": 0,
        "bid": -1,
        "ask": -1,
    }

    def on_order_update(self, ctx, oid, status):
        self.n_upd += 1
        self.last_status = status
        if self.n_upd <= 15:
            self.hist = self.hist * 16 + status

    def on_tick(self, ctx, tag):
        self.n_tick += 1
        self.tags = self.tags * 10 + tag


class Scripted(Base):
    """Sends `count` orders on message `at`, once more on `again`, cancels on `cancel_at`."""

    def on_start(self, ctx):
        if self.timer_at > 0:
            api.set_timer(ctx, self.timer_at, 7)

    def on_data(self, ctx, ev):
        self.n_data += 1
        if self.n_data == self.at or self.n_data == self.again:
            inst = self.instrument if self.target == -1 else self.target
            for k in range(self.count):
                r = api.submit(
                    ctx,
                    inst,
                    self.side,
                    self.price + k * self.step,
                    self.qty,
                    self.otype,
                    self.tif,
                    self.flags,
                )
                if r >= 0:
                    self.ok += 1
                else:
                    self.denied += 1
                if k == 0:
                    if self.n_data == self.at:
                        self.ret = r
                        self.oid = r
                    else:
                        self.ret2 = r
        if self.n_data == self.cancel_at:
            api.cancel_all(ctx)

    def on_tick(self, ctx, tag):
        self.n_tick += 1
        self.tags = self.tags * 10 + tag
        if self.n_tick < 3:  # timers re-armed from on_tick fire too
            api.set_timer(ctx, api.now(ctx) + 1_000_000, tag + 1)


class Raiser(Base):
    """Raises in on_data on message `at` when mode == 1, in on_start when mode == 2."""

    def on_start(self, ctx):
        self.tags += 1
        if self.mode == 2:
            raise ValueError("start failed")

    def on_data(self, ctx, ev):
        self.n_data += 1
        if self.mode == 1 and self.n_data == self.at:
            raise ValueError("strategy blew up")


class Churn(Base):
    """Quotes around the touch and churns: cancels, re-quotes, takes now and then.

    Exercises most paths (resting, queue, partial fills, cancels, market orders, timers)
    with a behaviour that depends only on the data, for the determinism tests.
    """

    def on_start(self, ctx):
        api.set_timer(ctx, self.timer_at, 1)

    def on_data(self, ctx, ev):
        self.n_data += 1
        inst = self.instrument
        bb = api.best_bid(ctx, inst)
        ba = api.best_ask(ctx, inst)
        if bb == api.NO_PRICE or ba == api.NO_PRICE:
            return
        if self.bid >= 0 and api.status(ctx, self.bid) < 0:
            self.bid = -1
        if self.ask >= 0 and api.status(ctx, self.ask) < 0:
            self.ask = -1
        if self.n_data % self.step == 0:
            api.cancel_all(ctx)
        if self.bid < 0:
            r = api.buy_limit(ctx, inst, bb - self.mode, self.qty)
            if r >= 0:
                self.bid = r
        if self.ask < 0:
            r = api.sell_limit(ctx, inst, ba + self.mode, self.qty)
            if r >= 0:
                self.ask = r
        if self.n_data % self.count == 0:
            pos = api.position(ctx, inst)
            side = -1 if pos > 0 else 1
            api.market(ctx, inst, side, self.qty)

    def on_tick(self, ctx, tag):
        self.n_tick += 1
        self.tags += tag
        api.set_timer(ctx, api.now(ctx) + 50_000_000, tag + 1)


class Broken(Base):
    """numba cannot compile its on_data: a string into an integer field."""

    def on_data(self, ctx, ev):
        self.n_data += 1
        self.oid = "not a number"  # BROKEN LINE


class Garbage(Base):
    """Returns a value where nothing is expected, and sends nonsense orders."""

    def on_data(self, ctx, ev):
        self.n_data += 1
        r = api.submit(ctx, 7, 3, -1, 0, 9, 9, 0)
        if r < 0:
            self.denied += 1
        return r


class Amender(Base):
    """Sends one limit order on message `at`; on message `again` amends it to price + step,
    total quantity `count` (ret2 = what api.amend returned)."""

    def on_data(self, ctx, ev):
        self.n_data += 1
        if self.n_data == self.at:
            self.oid = api.submit(ctx, self.instrument, self.side, self.price, self.qty, 0, 0, 0)
        if self.n_data == self.again:
            self.ret2 = api.amend(ctx, self.oid, self.price + self.step, self.count)
