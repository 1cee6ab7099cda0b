"""What a strategy may call from its hooks (all jitted; `ctx` is the engine state).

Prices are integer ticks, quantities integer lots, times integer ns. Order functions return
the new order's id (>= 0), or minus a reason code (engine/codes.py R_*) when the order was
denied: pre-trade risk, a bad quantity or price, an unknown instrument. A denial is journaled
and raises an alert; the run goes on.

    from engine import strategy_api as api
    oid = api.buy_limit(ctx, inst, price, qty)
"""

from __future__ import annotations

from engine import book as _book
from engine.codes import (
    EV_TIMER,
    OF_POST_ONLY,
    OT_LIMIT,
    OT_MARKET,
    R_CANCEL_REQUEST,
    SIDE_BUY_CODE,
    SIDE_SELL_CODE,
    TIF_GTC,
    TIF_IOC,
)
from engine.execution import amend_order as _amend_order
from engine.execution import cancel_all as _cancel_all
from engine.execution import cancel_order as _cancel_order
from engine.execution import row_of, submit_order
from engine.jit import hot
from engine.oms import slot_of
from engine.portfolio import equity as _equity
from engine.scheduler import schedule
from engine.state import (
    CK_CUR_STRAT,
    CK_NOW,
    MK_LAST_PX,
    MK_MID_X2,
    O_FILLED,
    O_QAHEAD,
    O_STATUS,
    PI_POS,
    RI_OPEN_ORDERS,
)

NO_PRICE = _book.NO_PRICE


@hot
def now(ctx) -> int:
    """Engine time in ns."""
    return ctx.ctl[CK_NOW]


@hot
def me(ctx) -> int:
    """Index of the strategy instance whose hook is running."""
    return ctx.ctl[CK_CUR_STRAT]


@hot
def best_bid(ctx, inst: int) -> int:
    """Best bid in ticks (NO_PRICE when the side is empty)."""
    return _book.best_bid(ctx.book, inst)


@hot
def best_ask(ctx, inst: int) -> int:
    """Best ask in ticks (NO_PRICE when the side is empty)."""
    return _book.best_ask(ctx.book, inst)


@hot
def best_bid_qty(ctx, inst: int) -> int:
    """Lots at the best bid."""
    return _book.best_bid_qty(ctx.book, inst)


@hot
def best_ask_qty(ctx, inst: int) -> int:
    """Lots at the best ask."""
    return _book.best_ask_qty(ctx.book, inst)


@hot
def depth(ctx, inst: int, side: int, price: int) -> int:
    """Lots displayed at a price level."""
    return _book.depth_at(ctx.book, inst, side, price)


@hot
def mid_x2(ctx, inst: int) -> int:
    """Twice the mid in ticks (book, else quotes, else last trade; 0 if unknown).

    Read from the value the loop stores after each whole venue message: hooks only run
    between messages, so it equals computing it from the book, without two book calls.
    """
    return ctx.mk[inst, MK_MID_X2]


@hot
def last_trade(ctx, inst: int) -> int:
    """Price of the last recorded trade (0 before the first)."""
    return ctx.mk[inst, MK_LAST_PX]


@hot
def position(ctx, inst: int) -> int:
    """This instance's position in lots (negative when short)."""
    return ctx.pi[row_of(ctx, me(ctx)), inst, PI_POS]


@hot
def equity(ctx) -> float:
    """This instance's realised + unrealised PnL minus fees, quote currency."""
    return _equity(ctx, row_of(ctx, me(ctx)))


@hot
def open_orders(ctx) -> int:
    """This instance's live orders."""
    return ctx.ri[row_of(ctx, me(ctx)), RI_OPEN_ORDERS]


@hot
def submit(
    ctx, inst: int, side: int, price: int, qty: int, otype: int, tif: int, flags: int
) -> int:
    """Send any order; returns its id or minus the denial reason."""
    return submit_order(ctx, me(ctx), inst, side, price, qty, otype, tif, flags)


@hot
def buy_limit(ctx, inst: int, price: int, qty: int) -> int:
    """GTC limit buy."""
    return submit_order(ctx, me(ctx), inst, SIDE_BUY_CODE, price, qty, OT_LIMIT, TIF_GTC, 0)


@hot
def sell_limit(ctx, inst: int, price: int, qty: int) -> int:
    """GTC limit sell."""
    return submit_order(ctx, me(ctx), inst, SIDE_SELL_CODE, price, qty, OT_LIMIT, TIF_GTC, 0)


@hot
def post_only(ctx, inst: int, side: int, price: int, qty: int) -> int:
    """GTC limit that the venue rejects rather than let it take liquidity."""
    return submit_order(ctx, me(ctx), inst, side, price, qty, OT_LIMIT, TIF_GTC, OF_POST_ONLY)


@hot
def market(ctx, inst: int, side: int, qty: int) -> int:
    """Market order (walks the book; an unfilled remainder expires)."""
    return submit_order(ctx, me(ctx), inst, side, 0, qty, OT_MARKET, TIF_IOC, 0)


@hot
def cancel(ctx, oid: int) -> bool:
    """Request a cancel (False if the order is unknown, finished or already canceling)."""
    return _cancel_order(ctx, oid, R_CANCEL_REQUEST)


@hot
def amend(ctx, oid: int, price: int, qty: int) -> int:
    """Ask for a new price and/or total quantity of a working limit order.

    Returns R_NONE (0) when the request was sent, else a reason code. The order is pending
    update until the venue answers; a smaller quantity at the same price keeps its queue
    place, anything else goes to the back of the level; a price that would cross is refused.
    """
    return _amend_order(ctx, oid, price, qty)


@hot
def cancel_all(ctx) -> int:
    """Cancel every live order of this instance; returns requests sent."""
    return _cancel_all(ctx, me(ctx), R_CANCEL_REQUEST, False)


@hot
def status(ctx, oid: int) -> int:
    """OMS state (ST_*) of an order, or -1 once it has ended and its slot was reused."""
    slot = slot_of(ctx, oid)
    return ctx.o[slot, O_STATUS] if slot >= 0 else -1


@hot
def filled(ctx, oid: int) -> int:
    """Lots of an order reported filled (0 if unknown)."""
    slot = slot_of(ctx, oid)
    return ctx.o[slot, O_FILLED] if slot >= 0 else 0


@hot
def queue_ahead(ctx, oid: int) -> int:
    """Lots ahead of a resting order at its price (the venue model's estimate)."""
    slot = slot_of(ctx, oid)
    return ctx.o[slot, O_QAHEAD] if slot >= 0 else 0


@hot
def set_timer(ctx, at_ns: int, tag: int) -> bool:
    """Call this instance's on_tick at engine time `at_ns` (`tag` is for the user)."""
    return schedule(ctx, at_ns, EV_TIMER, me(ctx), tag, 0, 0)
