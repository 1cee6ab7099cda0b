"""Pre-trade risk and surveillance, compiled with the core.

Pre-trade rules run on every new order before it leaves the engine and return a reason code
(R_NONE when the order may go): trading state (halted / reduce-only, for the whole engine by
the kill switch or per strategy by the drawdown rule), order size, position per instrument,
notional, open orders, submit rate, and a price band around the mid (fat finger). Orders
sent by flatten carry OF_FLATTEN: they pass the halt, the size, notional, open-order and
submit-rate limits, because a throttle must never stop a person closing 150 positions at once.

Surveillance watches our own behaviour and raises alerts (it never blocks):
- spoofing: an order of at least `spoof_min_qty` lots, resting at least `spoof_ticks_away`
  ticks from the touch, canceled within `spoof_window` ns of its creation;
- layering: cancels by one strategy on one side of one instrument at `layer_levels` or more
  distinct prices within `layer_window` ns (orders placed and pulled together);
- self-trade (wash) is caught at the venue, which prevents it (engine/venue.py).

A user adds a rule as a jitted function (engine/risk_rules.py): it runs last, on every order
but flatten's, and its non-zero answer denies the order with R_RISK_USER_RULE.
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
    R_BELOW_MIN_NOTIONAL,
    R_BOOK_NOT_IN_SYNC,
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
    R_RISK_USER_RULE,
    SEV_WARNING,
    SIDE_BUY_CODE,
    SIDE_SELL_CODE,
    TS_HALTED,
    TS_REDUCE_ONLY,
)
from engine.jit import hot
from engine.oms import alert
from engine.portfolio import money
from engine.risk_rules import call_rule
from engine.state import (
    CANCEL_RING,
    CF_PRICE_BAND,
    CF_RULE_PARAMS,
    CI_LAYER_LEVELS,
    CI_LAYER_WINDOW,
    CI_LIVE,
    CI_MAX_OPEN_ORDERS,
    CI_N_INSTRUMENTS,
    CI_RULE_ADDR,
    CI_SPOOF_TICKS_AWAY,
    CI_SPOOF_WINDOW,
    CI_SUBMIT_MAX,
    CI_SUBMIT_WINDOW,
    CK_NOW,
    CK_RULE_CODE,
    CK_TRADING_STATE,
    CR_INST,
    CR_PRICE,
    CR_SIDE,
    CR_TS,
    IF_MAX_NOTIONAL,
    IF_MIN_NOTIONAL,
    MK_IN_SYNC,
    MK_LAST_PX,
    MK_MAX_ORDER_QTY,
    MK_MAX_POSITION,
    MK_QASK_PX,
    MK_QASK_QTY,
    MK_QBID_PX,
    MK_QBID_QTY,
    MK_SPOOF_MIN_QTY,
    O_FILLED,
    O_INST,
    O_OID,
    O_PRICE,
    O_QTY,
    O_SIDE,
    O_STRAT,
    O_TS_CREATED,
    PI_OPEN_BUY,
    PI_OPEN_SELL,
    PI_POS,
    RI_CANCEL_POS,
    RI_LAST_LAYER,
    RI_OPEN_ORDERS,
    RI_STATE,
    RI_SUBMIT_POS,
)


@hot
def mid_x2(st, inst: int) -> int:
    """Twice the mid in ticks from the book, else from quotes, else the last trade; 0 if none."""
    bb = best_bid(st.book, inst)
    ba = best_ask(st.book, inst)
    if bb != NO_PRICE and ba != NO_PRICE:
        return bb + ba
    mk = st.mk[inst]
    if mk[MK_QBID_QTY] > 0 and mk[MK_QASK_QTY] > 0:
        return mk[MK_QBID_PX] + mk[MK_QASK_PX]
    return 2 * mk[MK_LAST_PX]


@hot
def effective_state(st, row: int) -> int:
    """The stricter of the engine's trading state and the strategy row's own."""
    g = st.ctl[CK_TRADING_STATE]
    s = st.ri[row, RI_STATE]
    return g if g > s else s


@hot
def _ring_base(st) -> int:
    return st.rings.shape[1] - 4 * CANCEL_RING


@hot
def pre_trade(
    st, row: int, inst: int, side: int, price: int, qty: int, otype: int, flags: int
) -> int:
    """Reason code why the order may not go (R_NONE when it may)."""
    if inst < 0 or inst >= st.ctl[CI_N_INSTRUMENTS]:
        return R_BAD_INSTRUMENT
    if side != SIDE_BUY_CODE and side != SIDE_SELL_CODE:
        return R_BAD_SIDE
    if qty <= 0:
        return R_BAD_QUANTITY
    if otype != OT_MARKET and price <= 0:
        return R_BAD_PRICE
    flatten = (flags & OF_FLATTEN) != 0
    state = effective_state(st, row)
    pi = st.pi[row, inst]
    pos = pi[PI_POS]
    reducing = (side == SIDE_BUY_CODE and pos < 0 and qty <= -pos) or (
        side == SIDE_SELL_CODE and pos > 0 and qty <= pos
    )
    if state == TS_HALTED and not flatten:
        return R_RISK_HALTED
    if (state == TS_REDUCE_ONLY or (flags & OF_REDUCE_ONLY) != 0) and not reducing:
        return R_RISK_REDUCE_ONLY
    mk = st.mk[inst]
    if mk[MK_MAX_ORDER_QTY] > 0 and qty > mk[MK_MAX_ORDER_QTY] and not flatten:
        return R_RISK_ORDER_SIZE
    max_pos = mk[MK_MAX_POSITION]
    if max_pos > 0 and not reducing:
        if side == SIDE_BUY_CODE:
            worst = pos + pi[PI_OPEN_BUY] + qty
        else:
            worst = -(pos - pi[PI_OPEN_SELL] - qty)
        if worst > max_pos:
            return R_RISK_POSITION
    if st.ctl[CI_LIVE] != 0 and mk[MK_IN_SYNC] == 0 and not flatten:
        return R_BOOK_NOT_IN_SYNC
    m2 = mid_x2(st, inst)
    if otype == OT_MARKET and m2 == 0:
        return R_RISK_NO_MARKET
    ref_x2 = 2 * price if otype != OT_MARKET else m2
    max_notional = st.instf[inst, IF_MAX_NOTIONAL]
    if max_notional > 0.0 and not flatten:
        if money(st, inst, float(ref_x2) * 0.5 * float(qty)) > max_notional:
            return R_RISK_NOTIONAL
    min_notional = st.instf[inst, IF_MIN_NOTIONAL]
    if min_notional > 0.0 and ref_x2 > 0:
        if money(st, inst, float(ref_x2) * 0.5 * float(qty)) < min_notional:
            return R_BELOW_MIN_NOTIONAL
    max_open = st.ctl[CI_MAX_OPEN_ORDERS]
    if max_open > 0 and st.ri[row, RI_OPEN_ORDERS] >= max_open and not flatten:
        return R_RISK_OPEN_ORDERS
    band = st.cfg[CF_PRICE_BAND]
    if band > 0.0 and otype != OT_MARKET and m2 > 0:
        if abs(float(2 * price - m2)) > band * float(m2):
            return R_RISK_PRICE_BAND
    limit = st.ctl[CI_SUBMIT_MAX]
    if limit > 0 and not flatten:
        size = _ring_base(st)
        oldest = st.rings[row, (st.ri[row, RI_SUBMIT_POS] - limit) % size]
        if oldest > st.ctl[CK_NOW] - st.ctl[CI_SUBMIT_WINDOW]:
            return R_RISK_SUBMIT_RATE
    addr = st.ctl[CI_RULE_ADDR]
    if addr != 0 and not flatten:
        strat = row if row < st.pi.shape[0] - 1 else -1
        now = st.ctl[CK_NOW]
        code = call_rule(addr, strat, inst, side, price, qty, pos, m2, now, st.cfg, CF_RULE_PARAMS)
        if code != 0:
            st.ctl[CK_RULE_CODE] = code
            return R_RISK_USER_RULE
    return R_NONE


@hot
def record_submit(st, row: int) -> None:
    """Remember the submit time for the rate limit."""
    size = _ring_base(st)
    st.rings[row, st.ri[row, RI_SUBMIT_POS] % size] = st.ctl[CK_NOW]
    st.ri[row, RI_SUBMIT_POS] += 1


@hot
def surveil_cancel(st, slot: int, row: int) -> None:
    """Spoofing and layering checks when an order is canceled by its owner."""
    o = st.o[slot]
    inst = o[O_INST]
    now = st.ctl[CK_NOW]
    side = o[O_SIDE]
    price = o[O_PRICE]
    min_qty = st.mk[inst, MK_SPOOF_MIN_QTY]
    if min_qty > 0 and o[O_QTY] - o[O_FILLED] >= min_qty:
        if now - o[O_TS_CREATED] <= st.ctl[CI_SPOOF_WINDOW]:
            touch = best_bid(st.book, inst) if side == SIDE_BUY_CODE else best_ask(st.book, inst)
            if touch != NO_PRICE:
                away = touch - price if side == SIDE_BUY_CODE else price - touch
                if away >= st.ctl[CI_SPOOF_TICKS_AWAY]:
                    alert(st, A_SPOOFING, SEV_WARNING, 0, o[O_OID], inst, o[O_STRAT], o[O_QTY])
    levels = st.ctl[CI_LAYER_LEVELS]
    if levels <= 0:
        return
    base = _ring_base(st)
    ring = st.rings[row]
    k = base + 4 * (st.ri[row, RI_CANCEL_POS] % CANCEL_RING)
    ring[k + CR_TS] = now
    ring[k + CR_INST] = inst
    ring[k + CR_SIDE] = side
    ring[k + CR_PRICE] = price
    st.ri[row, RI_CANCEL_POS] += 1
    window = st.ctl[CI_LAYER_WINDOW]
    if st.ri[row, RI_LAST_LAYER] > now - window:
        return  # one alert a window, not one per cancel
    distinct = 0
    for a in range(CANCEL_RING):
        ka = base + 4 * a
        if ring[ka + CR_TS] < now - window or ring[ka + CR_INST] != inst:
            continue
        if ring[ka + CR_SIDE] != side:
            continue
        seen = False
        for b in range(a):
            kb = base + 4 * b
            if (
                ring[kb + CR_TS] >= now - window
                and ring[kb + CR_INST] == inst
                and ring[kb + CR_SIDE] == side
                and ring[kb + CR_PRICE] == ring[ka + CR_PRICE]
            ):
                seen = True
                break
        if not seen:
            distinct += 1
    if distinct >= levels:
        st.ri[row, RI_LAST_LAYER] = now
        alert(st, A_LAYERING, SEV_WARNING, 0, o[O_OID], inst, o[O_STRAT], distinct)
