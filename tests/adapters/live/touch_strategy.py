"""The strategy of the live-session tests, the parity test and benchmarks/bench_live.py.

One class and one field layout on purpose: the engine's loop is compiled once per layout
(minutes on a small machine), so every live test, the parity backtest and the benchmark
share one compilation (`mode` switches the behaviour).

mode 0, round trips: from data message `at` on, buy `qty` lots at the touch (a limit at
the best ask plus `slip` ticks, IOC: it takes the ask or expires), then, once it filled,
sell what it holds at the touch (best bid minus `slip`), `rounds` times, `every` messages
apart; `sell` 0 keeps the position. A denied or expired order is tried again on the next
message.

mode 1, answer every update (tick-to-order benchmark): each data message sends a 1-`qty`
IOC buy `offset` ticks below the best bid, which expires at once at the venue (nothing
rests, nothing to cancel).
"""

from __future__ import annotations

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


class TouchTrader(Strategy):
    """Round trips at the touch (mode 0), or an order for every update (mode 1)."""

    params = {
        "instrument": 0,
        "qty": 100,
        "slip": 0,
        "at": 1,
        "rounds": 1,
        "sell": 1,
        "every": 0,
        "mode": 0,
        "offset": 1000,
        "tif": TIF_IOC,
    }
    state = {
        "phase": 0,  # 0 wait to buy, 1 buying, 2 wait to sell, 3 selling, 4 done
        "oid": -1,
        "n_data": 0,
        "next_at": 0,
        "done_rounds": 0,
        "orders": 0,
        "denied": 0,
        "last_denial": 0,
        "updates": 0,
    }

    def on_data(self, ctx, ev):
        self.n_data += 1
        inst = self.instrument
        if self.mode == 1:
            bid = api.best_bid(ctx, inst)
            if bid != NO_PRICE and bid > self.offset:
                r = api.submit(
                    ctx, inst, SIDE_BUY_CODE, bid - self.offset, self.qty, OT_LIMIT, TIF_IOC, 0
                )
                if r >= 0:
                    self.orders += 1
                else:
                    self.denied += 1
                    self.last_denial = -r
            return
        if self.phase == 0:
            if self.done_rounds >= self.rounds or self.n_data < max(self.at, self.next_at):
                return
            ask = api.best_ask(ctx, inst)
            if ask == NO_PRICE:
                return
            r = api.submit(
                ctx, inst, SIDE_BUY_CODE, ask + self.slip, self.qty, OT_LIMIT, self.tif, 0
            )
            if r >= 0:
                self.oid = r
                self.phase = 1
                self.orders += 1
            else:
                self.denied += 1
                self.last_denial = -r
        elif self.phase == 2:
            bid = api.best_bid(ctx, inst)
            held = api.position(ctx, inst)
            if bid == NO_PRICE or held <= 0:
                return
            r = api.submit(ctx, inst, SIDE_SELL_CODE, bid - self.slip, held, OT_LIMIT, self.tif, 0)
            if r >= 0:
                self.oid = r
                self.phase = 3
                self.orders += 1
            else:
                self.denied += 1
                self.last_denial = -r

    def on_order_update(self, ctx, oid, status):
        self.updates += 1
        if oid != self.oid:
            return
        ended = (
            status == ST_FILLED
            or status == ST_CANCELED
            or status == ST_EXPIRED
            or status == ST_REJECTED
            or status == ST_DENIED
        )
        if not ended:
            return
        held = api.position(ctx, self.instrument)
        round_done = False
        if self.phase == 1:
            if held <= 0:
                self.phase = 0  # nothing bought: try again on the next message
            elif self.sell == 1:
                self.phase = 2
            else:
                round_done = True
        elif self.phase == 3:
            if held > 0:
                self.phase = 2  # sell the rest
            else:
                round_done = True
        if round_done:
            self.done_rounds += 1
            self.next_at = self.n_data + self.every
            self.phase = 4 if self.done_rounds >= self.rounds else 0
