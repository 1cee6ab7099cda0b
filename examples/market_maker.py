"""A market maker: one bid and one ask around the mid, skewed against the inventory.

The idea: earn the spread by resting on both sides, and lean against what you hold so the
inventory mean-reverts. The quote centre (the "reservation price") is the mid moved away
from the position: long inventory lowers both quotes (the ask gets hit sooner, the bid later),
short inventory raises them.

Units: prices are integer ticks of the instrument and sizes integer lots (see
engine/instruments.py); the strategy never needs the decimal tick size. Times are ns.

Parameters
- instrument: id of the instrument to quote (0 for a single-instrument stream).
- half_spread: ticks between the quote centre and each quote, rounded away from the centre.
  0 joins a one-tick touch; 1 quotes one tick behind it.
- size: lots per quote.
- max_position: lots; the side that would take |position| beyond it is not quoted.
- skew: ticks the quote centre moves per `size` lots of inventory (1.0 and a long position
  of 3 * size: both quotes 3 ticks lower). 0 switches the skew off.
- improve: ticks a quote may go inside the recorded best bid or ask (0: at most join the
  best price). Many instances of this strategy share one account, and the venue prevents
  self-trades: with 0, no instance's fresh bid can cross another's fresh ask.
- requote_ticks: a resting quote is replaced once its wanted price is this many ticks away
  (1: follow every tick; larger values trade queue position for fewer messages).
- max_age_ns: a quote older than this is replaced even at the right price (0: never), so a
  quote stuck at the back of a queue is refreshed.
- post_only: True sends post-only quotes (rejected instead of taking liquidity when the book
  moved while the order travelled); False sends plain GTC limits.
- backoff_ns: after a quote was rejected (post-only would cross) or expired (the venue's
  self-trade prevention: it would have matched one of our own orders, e.g. another
  instance's), that side waits this long before quoting again, instead of sending the same
  doomed order back at once, every round trip.

State: the live order id and price of each side (-1: none), when each was sent, until when
each side backs off, the mid of the last requote (half ticks) and how many quotes were sent.

One order a side: a quote to be moved is cancelled first and its replacement goes out when
the venue confirms the cancel (on_order_update). Holding at most one order a side is what
makes `max_position` a hard bound: two live bids could both fill.

Example:
    cockpit backtest examples/market_maker.py \
        --data ../shared/data/binance-ws/spot_btcusdt_20240808.gz \
        --param half_spread=0 --param size=200 --param max_position=2000
"""

from __future__ import annotations

from numba import njit

from engine import strategy_api as api
from engine.codes import (
    OF_POST_ONLY,
    OT_LIMIT,
    SIDE_BUY_CODE,
    SIDE_SELL_CODE,
    ST_ACCEPTED,
    ST_CANCELED,
    ST_DENIED,
    ST_EXPIRED,
    ST_FILLED,
    ST_PENDING_CANCEL,
    ST_REJECTED,
    ST_SUBMITTED,
    TIF_GTC,
)
from engine.strategy import Strategy

NO_PRICE = api.NO_PRICE


# Hooks may call only jitted code: a helper shared by two hooks is an @njit function that
# takes the same `self` record and `ctx` (numba compiles it for their types). inline="always"
# makes numba paste it into the hook: a real call would copy the engine state's ~20 array
# descriptors each time, which costs more than everything the helper does.
@njit(cache=True, nogil=True, inline="always")
def _side(self, ctx, side, want, through, now, oid, px, sent, wait):
    """Keep one side's quote at `want` (0: no quote); returns its (oid, price, sent time).

    `through`: the resting quote is at or through the opposite touch; `wait`: the engine
    time before which no new quote may go out on this side.
    """
    if oid >= 0:
        status = api.status(ctx, oid)
        if status == ST_PENDING_CANCEL or status == ST_SUBMITTED:
            # Wait for the venue: the replacement goes out when the cancel is confirmed, and
            # an order is cancelled only once acknowledged (until then the venue may still
            # reject it, post-only, and the cancel would chase an order that never rested).
            return oid, px, sent
        if status < 0:
            oid = -1  # ended and its slot reused: we missed nothing, it is gone
    if oid >= 0:
        stale = self.max_age_ns > 0 and now - sent >= self.max_age_ns
        if want == 0 or abs(want - px) >= self.requote_ticks or stale or through:
            api.cancel(ctx, oid)
        return oid, px, sent
    if want == 0 or now < wait:
        return -1, 0, 0
    flags = OF_POST_ONLY if self.post_only else 0
    new = api.submit(ctx, self.instrument, side, want, self.size, OT_LIMIT, TIF_GTC, flags)
    if new < 0:  # denied by pre-trade risk: the alert says why; try again on the next event
        return -1, 0, 0
    self.quotes += 1
    return new, want, now


@njit(cache=True, nogil=True, inline="always")
def _requote(self, ctx) -> None:
    """Work out where both quotes belong and move them there."""
    inst = self.instrument
    m2 = api.mid_x2(ctx, inst)
    if m2 == 0:
        return  # no market yet
    pos = api.position(ctx, inst)
    now = api.now(ctx)
    best_bid = api.best_bid(ctx, inst)
    best_ask = api.best_ask(ctx, inst)
    # Quote centre in half ticks: the mid shifted against the inventory.
    centre_x2 = m2 - int(round(2.0 * self.skew * pos / self.size))
    bid = (centre_x2 - 2 * self.half_spread) // 2  # floor: away from the centre
    ask = -((-(centre_x2 + 2 * self.half_spread)) // 2)  # ceiling
    # Go at most `improve` ticks inside the recorded touch, and never through the opposite
    # one: a skewed quote would cross and take liquidity (or be rejected as post-only).
    if best_bid != NO_PRICE and bid > best_bid + self.improve:
        bid = best_bid + self.improve
    if best_ask != NO_PRICE and ask < best_ask - self.improve:
        ask = best_ask - self.improve
    if best_ask != NO_PRICE and bid >= best_ask:
        bid = best_ask - 1
    if best_bid != NO_PRICE and ask <= best_bid:
        ask = best_bid + 1
    # Nor through our own other side (a cancel may still be on its way): the venue's
    # self-trade prevention would expire the new order and raise a wash-trade alert.
    if self.ask_oid >= 0 and bid >= self.ask_px:
        bid = self.ask_px - 1
    if bid <= 0 or pos + self.size > self.max_position:
        bid = 0
    if pos - self.size < -self.max_position:
        ask = 0
    # A quote the recorded market has moved onto or through (a bid at or above the best
    # ask) is replaced whatever requote_ticks says: the simulated venue fills resting orders
    # only on recorded trades, so it would sit there crossed, and any other instance's quote
    # on the opposite side would be refused as a self-trade.
    through = best_ask != NO_PRICE and self.bid_px >= best_ask
    self.bid_oid, self.bid_px, self.bid_sent = _side(
        self, ctx, SIDE_BUY_CODE, bid, through, now,
        self.bid_oid, self.bid_px, self.bid_sent, self.bid_wait,
    )  # fmt: skip
    # Checked against the bid as it is now, which may have been sent just above.
    if ask != 0 and self.bid_oid >= 0 and ask <= self.bid_px:
        ask = self.bid_px + 1
    through = best_bid != NO_PRICE and self.ask_px <= best_bid
    self.ask_oid, self.ask_px, self.ask_sent = _side(
        self, ctx, SIDE_SELL_CODE, ask, through, now,
        self.ask_oid, self.ask_px, self.ask_sent, self.ask_wait,
    )  # fmt: skip
    self.last_mid_x2 = m2


class MarketMaker(Strategy):
    """Two-sided quotes around the mid with inventory skew and a position limit."""

    params = {
        "instrument": 0,
        "half_spread": 1,
        "size": 100,
        "max_position": 1000,
        "skew": 0.5,
        "improve": 0,
        "requote_ticks": 1,
        "max_age_ns": 0,
        "post_only": True,
        "backoff_ns": 100_000_000,
    }
    state = {
        "bid_oid": -1,
        "bid_px": 0,
        "bid_sent": 0,
        "ask_oid": -1,
        "ask_px": 0,
        "ask_sent": 0,
        "bid_wait": 0,
        "ask_wait": 0,
        "last_mid_x2": 0,
        "quotes": 0,
    }

    def on_data(self, ctx, ev):
        # The fast path: most messages move neither the mid nor our position, and both
        # quotes are in place. Skipping them is what keeps a maker at millions of events/s.
        if (
            self.bid_oid >= 0
            and self.ask_oid >= 0
            and self.max_age_ns == 0
            and api.mid_x2(ctx, self.instrument) == self.last_mid_x2
        ):
            return
        _requote(self, ctx)

    def on_order_update(self, ctx, oid, status):
        # A quote that ended (filled, canceled, rejected post-only, expired) frees its side,
        # and a partial fill moves the inventory: requote at once rather than wait for the
        # next market data message. An acknowledgement changes nothing: no work.
        if status == ST_ACCEPTED or status == ST_PENDING_CANCEL:
            return
        done = (
            status == ST_FILLED
            or status == ST_CANCELED
            or status == ST_REJECTED
            or status == ST_EXPIRED
            or status == ST_DENIED
        )
        refused = status == ST_REJECTED or status == ST_EXPIRED
        if oid == self.bid_oid and done:
            self.bid_oid = -1
            if refused:
                self.bid_wait = api.now(ctx) + self.backoff_ns
        elif oid == self.ask_oid and done:
            self.ask_oid = -1
            if refused:
                self.ask_wait = api.now(ctx) + self.backoff_ns
        _requote(self, ctx)
