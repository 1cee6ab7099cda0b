"""Pre-trade risk and surveillance, compiled with the core.

Pre-trade rules run on every new order before it leaves the engine and return a reason code
(R_NONE when the order may go): trading state (halted / reduce-only, for the whole engine by
the kill switch or per strategy by the drawdown rule), order size, position per instrument,
notional, open orders, submit rate, and a price band around the mid (fat finger). Orders
sent by flatten carry OF_FLATTEN: they pass the halt and the submit-rate limit, because a
throttle must never stop a person closing 150 positions at once.

Surveillance watches our own behaviour and raises alerts (it never blocks):
- spoofing: an order of at least `spoof_min_qty` lots, resting at least `spoof_ticks_away`
  ticks from the touch, canceled within `spoof_window` ns of its creation;
- layering: cancels by one strategy on one side of one instrument at `layer_levels` or more
  distinct prices within `layer_window` ns (orders placed and pulled together);
- self-trade (wash) is caught at the venue, which prevents it (engine/venue.py).
"""

from __future__ import annotations

from engine.book import NO_PRICE, best_ask, best_bid
from engine.codes import (
    A_LAYERING,
    A_SPOOFING,
    OF_FLATTEN,
    OF_REDUCE_ONLY,
    OT_MARKET,
    R_BAD_INSTRUMENT,
    R_BAD_PRICE,
    R_BAD_QUANTITY,
    R_BAD_SIDE,
    R_NONE,
    R_RISK_HALTED,
    R_RISK_NO_MARKET,
    R_RISK_NOTIONAL,
    R_RISK_OPEN_ORDERS,
    R_RISK_ORDER_SIZE,
    R_RISK_POSITION,
    R_RISK_PRICE_BAND,
    R_RISK_REDUCE_ONLY,
    R_RISK_SUBMIT_RATE,
    SEV_WARNING,
    SIDE_BUY_CODE,
    SIDE_SELL_CODE,
    TS_HALTED,
    TS_REDUCE_ONLY,
)
from engine.jit import kernel
from engine.oms import alert
from engine.portfolio import money
from engine.state import (
    CF_PRICE_BAND,
    CI_LAYER_LEVELS,
    CI_LAYER_WINDOW,
    CI_MAX_OPEN_ORDERS,
    CI_N_INSTRUMENTS,
    CI_SPOOF_TICKS_AWAY,
    CI_SPOOF_WINDOW,
    CI_SUBMIT_MAX,
    CI_SUBMIT_WINDOW,
    CK_NOW,
    CK_TRADING_STATE,
    IF_MAX_NOTIONAL,
    II_MAX_ORDER_QTY,
    II_MAX_POSITION,
    II_SPOOF_MIN_QTY,
)


@kernel
def mid_x2(st, inst: int) -> int:
    """Twice the mid in ticks from the book, else from quotes, else 0 (unknown)."""
    bb = best_bid(st.book, inst)
    ba = best_ask(st.book, inst)
    if bb != NO_PRICE and ba != NO_PRICE:
        return bb + ba
    m = st.market
    if m.q_bid_qty[inst] > 0 and m.q_ask_qty[inst] > 0:
        return m.q_bid_px[inst] + m.q_ask_px[inst]
    if m.last_trade_px[inst] != 0:
        return 2 * m.last_trade_px[inst]
    return 0


@kernel
def effective_state(st, row: int) -> int:
    """The stricter of the engine's trading state and the strategy row's own."""
    g = st.clock[CK_TRADING_STATE]
    s = st.port.strat_state[row]
    return g if g > s else s


@kernel
def pre_trade(
    st, row: int, inst: int, side: int, price: int, qty: int, otype: int, flags: int
) -> int:
    """Reason code why the order may not go (R_NONE when it may)."""
    if inst < 0 or inst >= st.cfg_i[CI_N_INSTRUMENTS]:
        return R_BAD_INSTRUMENT
    if side != SIDE_BUY_CODE and side != SIDE_SELL_CODE:
        return R_BAD_SIDE
    if qty <= 0:
        return R_BAD_QUANTITY
    if otype != OT_MARKET and price <= 0:
        return R_BAD_PRICE
    p = st.port
    flatten = (flags & OF_FLATTEN) != 0
    state = effective_state(st, row)
    pos = p.pos[row, inst]
    reducing = (side == SIDE_BUY_CODE and pos < 0 and qty <= -pos) or (
        side == SIDE_SELL_CODE and pos > 0 and qty <= pos
    )
    if state == TS_HALTED and not flatten:
        return R_RISK_HALTED
    if (state == TS_REDUCE_ONLY or (flags & OF_REDUCE_ONLY) != 0) and not reducing:
        return R_RISK_REDUCE_ONLY
    max_qty = st.inst_i[inst, II_MAX_ORDER_QTY]
    if max_qty > 0 and qty > max_qty and not flatten:
        return R_RISK_ORDER_SIZE
    max_pos = st.inst_i[inst, II_MAX_POSITION]
    if max_pos > 0 and not reducing:
        if side == SIDE_BUY_CODE:
            worst = pos + p.open_buy[row, inst] + qty
        else:
            worst = -(pos - p.open_sell[row, inst] - qty)
        if worst > max_pos:
            return R_RISK_POSITION
    m2 = mid_x2(st, inst)
    ref_x2 = 2 * price if otype != OT_MARKET else m2
    if ref_x2 == 0:
        if otype == OT_MARKET:
            return R_RISK_NO_MARKET
    max_notional = st.inst_f[inst, IF_MAX_NOTIONAL]
    if max_notional > 0.0 and not flatten:
        if money(st, inst, float(ref_x2) * 0.5 * float(qty)) > max_notional:
            return R_RISK_NOTIONAL
    max_open = st.cfg_i[CI_MAX_OPEN_ORDERS]
    if max_open > 0 and p.open_orders[row] >= max_open and not flatten:
        return R_RISK_OPEN_ORDERS
    band = st.cfg_f[CF_PRICE_BAND]
    if band > 0.0 and otype != OT_MARKET and m2 > 0:
        if abs(float(2 * price - m2)) > band * float(m2):
            return R_RISK_PRICE_BAND
    limit = st.cfg_i[CI_SUBMIT_MAX]
    if limit > 0 and not flatten:
        ring = p.submit_ring.shape[1]
        oldest = p.submit_ring[row, (p.submit_pos[row] - limit) % ring]
        if oldest > st.clock[CK_NOW] - st.cfg_i[CI_SUBMIT_WINDOW]:
            return R_RISK_SUBMIT_RATE
    return R_NONE


@kernel
def record_submit(st, row: int) -> None:
    """Remember the submit time for the rate limit."""
    p = st.port
    ring = p.submit_ring.shape[1]
    p.submit_ring[row, p.submit_pos[row] % ring] = st.clock[CK_NOW]
    p.submit_pos[row] += 1


@kernel
def surveil_cancel(st, slot: int) -> None:
    """Spoofing and layering checks when an order is canceled by its owner."""
    o = st.orders
    inst = o.inst[slot]
    row = o.strat[slot] if o.strat[slot] >= 0 else st.port.pos.shape[0] - 1
    now = st.clock[CK_NOW]
    side = o.side[slot]
    price = o.price[slot]
    min_qty = st.inst_i[inst, II_SPOOF_MIN_QTY]
    if min_qty > 0 and o.qty[slot] - o.filled[slot] >= min_qty:
        if now - o.ts_created[slot] <= st.cfg_i[CI_SPOOF_WINDOW]:
            touch = best_bid(st.book, inst) if side == SIDE_BUY_CODE else best_ask(st.book, inst)
            if touch != NO_PRICE:
                away = touch - price if side == SIDE_BUY_CODE else price - touch
                if away >= st.cfg_i[CI_SPOOF_TICKS_AWAY]:
                    alert(
                        st,
                        A_SPOOFING,
                        SEV_WARNING,
                        0,
                        o.oid[slot],
                        inst,
                        o.strat[slot],
                        o.qty[slot],
                    )
    levels = st.cfg_i[CI_LAYER_LEVELS]
    if levels <= 0:
        return
    p = st.port
    ring = p.cancel_ring.shape[1]
    k = p.cancel_pos[row] % ring
    p.cancel_ring[row, k, 0] = now
    p.cancel_ring[row, k, 1] = inst
    p.cancel_ring[row, k, 2] = side
    p.cancel_ring[row, k, 3] = price
    p.cancel_pos[row] += 1
    window = st.cfg_i[CI_LAYER_WINDOW]
    if p.last_layer_alert[row] > now - window:
        return  # one alert a window, not one per cancel
    distinct = 0
    for a in range(ring):
        if p.cancel_ring[row, a, 0] < now - window:
            continue
        if p.cancel_ring[row, a, 1] != inst or p.cancel_ring[row, a, 2] != side:
            continue
        seen = False
        for b in range(a):
            if (
                p.cancel_ring[row, b, 0] >= now - window
                and p.cancel_ring[row, b, 1] == inst
                and p.cancel_ring[row, b, 2] == side
                and p.cancel_ring[row, b, 3] == p.cancel_ring[row, a, 3]
            ):
                seen = True
                break
        if not seen:
            distinct += 1
    if distinct >= levels:
        p.last_layer_alert[row] = now
        alert(st, A_LAYERING, SEV_WARNING, 0, o.oid[slot], inst, o.strat[slot], distinct)
