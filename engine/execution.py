"""The engine side of order flow: submit, cancel, venue reports, cancel-all and flatten.

Strategies (through engine.strategy_api) and manual commands (engine.commands) call these;
the venue (engine.venue) answers with reports that `on_report` and `on_fill_report` apply
to the OMS and the portfolio when they arrive.
"""

from __future__ import annotations

from engine.codes import (
    A_RISK_DENIAL,
    EV_CANCEL_ARRIVE,
    EV_ORDER_ARRIVE,
    OF_FLATTEN,
    OT_MARKET,
    R_CANCEL_REJECTED,
    R_CANCEL_REQUEST,
    R_FILL,
    R_NEW,
    R_NONE,
    R_POOL_FULL,
    SEV_INFO,
    SIDE_BUY_CODE,
    SIDE_SELL_CODE,
    ST_ACCEPTED,
    ST_DENIED,
    ST_FILLED,
    ST_PARTIALLY_FILLED,
    ST_PENDING_CANCEL,
    ST_PENDING_UPDATE,
    ST_SUBMITTED,
    TIF_IOC,
)
from engine.jit import kernel
from engine.oms import alert, alloc_order, is_terminal, release_if_done, slot_of, transition
from engine.portfolio import apply_fill, check_drawdown, fee_of
from engine.risk import pre_trade, record_submit, surveil_cancel
from engine.scheduler import schedule
from engine.state import (
    CF_MAKER_FEE,
    CF_TAKER_FEE,
    CI_CANCEL_LATENCY,
    CI_ENTRY_LATENCY,
    CK_LAST_STATUS,
    CK_NOW,
)
from engine.stats import C_CANCELS, C_FILLS, C_ORDERS_DENIED, C_ORDERS_SUBMITTED
from engine.venue import CANCEL_REJECT_STATE

# Rows returned by on_report / on_fill_report: which strategy to notify (-1: none).
NO_STRATEGY = -1


@kernel
def row_of(st, strat: int) -> int:
    """Portfolio row of a strategy instance (manual trading is the last row)."""
    return strat if strat >= 0 else st.port.pos.shape[0] - 1


@kernel
def _open_add(st, slot: int, sign: int) -> None:
    o = st.orders
    row = row_of(st, o.strat[slot])
    left = (o.qty[slot] - o.filled[slot]) * sign
    if o.side[slot] == SIDE_BUY_CODE:
        st.port.open_buy[row, o.inst[slot]] += left
    else:
        st.port.open_sell[row, o.inst[slot]] += left
    st.port.open_orders[row] += sign


@kernel
def submit_order(
    st, strat: int, inst: int, side: int, price: int, qty: int, otype: int, tif: int, flags: int
) -> int:
    """Risk-check and send an order; returns its id (>= 0) or minus the denial reason."""
    row = row_of(st, strat)
    reason = pre_trade(st, row, inst, side, price, qty, otype, flags)
    if otype == OT_MARKET:
        price = 0
        tif = TIF_IOC
    slot = alloc_order(
        st, inst if reason == R_NONE else max(inst, 0), strat, side, otype, tif, flags, price, qty
    )
    if slot < 0:
        alert(st, A_RISK_DENIAL, SEV_INFO, R_POOL_FULL, -1, inst, strat, qty)
        st.counters[C_ORDERS_DENIED] += 1
        return -R_POOL_FULL
    if reason != R_NONE:
        transition(st, slot, ST_DENIED, reason, price, qty)
        alert(st, A_RISK_DENIAL, SEV_INFO, reason, st.orders.oid[slot], inst, strat, qty)
        st.counters[C_ORDERS_DENIED] += 1
        release_if_done(st, slot)
        return -reason
    transition(st, slot, ST_SUBMITTED, R_NEW, price, qty)
    _open_add(st, slot, 1)
    if (flags & OF_FLATTEN) == 0:
        record_submit(st, row)
    st.counters[C_ORDERS_SUBMITTED] += 1
    st.orders.inflight[slot] += 1
    schedule(
        st,
        st.clock[CK_NOW] + st.cfg_i[CI_ENTRY_LATENCY],
        EV_ORDER_ARRIVE,
        st.orders.oid[slot],
        0,
        0,
        0,
    )
    return st.orders.oid[slot]


@kernel
def cancel_order(st, oid: int, reason: int) -> bool:
    """Request a cancel; idempotent (a second request for a pending cancel sends nothing)."""
    slot = slot_of(st, oid)
    if slot < 0:
        return False
    o = st.orders
    s = o.status[slot]
    if is_terminal(s) or s == ST_PENDING_CANCEL:
        return False
    if (
        s != ST_SUBMITTED
        and s != ST_ACCEPTED
        and s != ST_PARTIALLY_FILLED
        and (s != ST_PENDING_UPDATE)
    ):
        return False
    if reason == R_CANCEL_REQUEST:
        surveil_cancel(st, slot)
    transition(st, slot, ST_PENDING_CANCEL, reason, o.price[slot], o.qty[slot] - o.filled[slot])
    st.counters[C_CANCELS] += 1
    o.inflight[slot] += 1
    schedule(st, st.clock[CK_NOW] + st.cfg_i[CI_CANCEL_LATENCY], EV_CANCEL_ARRIVE, oid, 0, 0, 0)
    return True


@kernel
def _finish(st, slot: int) -> None:
    """Bookkeeping when an order turns terminal in the OMS."""
    _open_add(st, slot, -1)


@kernel
def on_report(st, oid: int, state: int, reason: int) -> int:
    """A venue state report arrives; returns the strategy to notify (or NO_STRATEGY)."""
    slot = slot_of(st, oid)
    if slot < 0:
        return NO_STRATEGY
    o = st.orders
    o.inflight[slot] -= 1
    cur = o.status[slot]
    notify = o.strat[slot]
    if state == CANCEL_REJECT_STATE:
        if cur == ST_PENDING_CANCEL:
            back = ST_PARTIALLY_FILLED if o.filled[slot] > 0 else ST_ACCEPTED
            transition(st, slot, back, R_CANCEL_REJECTED, o.price[slot], 0)
        else:
            notify = NO_STRATEGY  # the order finished first: nothing changes
    elif state == ST_ACCEPTED:
        if cur == ST_SUBMITTED:
            transition(st, slot, ST_ACCEPTED, reason, o.price[slot], o.qty[slot])
        elif cur == ST_PENDING_CANCEL:
            # Acknowledged while our cancel is on its way: still pending cancel.
            transition(st, slot, ST_PENDING_CANCEL, reason, o.price[slot], o.qty[slot])
        else:
            notify = NO_STRATEGY
    else:
        was_terminal = is_terminal(cur)
        if transition(st, slot, state, reason, o.price[slot], o.qty[slot] - o.filled[slot]):
            if not was_terminal:
                _finish(st, slot)
        else:
            notify = NO_STRATEGY
    st.clock[CK_LAST_STATUS] = o.status[slot]
    release_if_done(st, slot)
    return notify


@kernel
def on_fill_report(st, oid: int, qty: int, price: int, liq: int) -> int:
    """A fill report arrives: OMS, open quantity, portfolio; returns the strategy to notify."""
    slot = slot_of(st, oid)
    if slot < 0:
        return NO_STRATEGY
    o = st.orders
    o.inflight[slot] -= 1
    inst, side = o.inst[slot], o.side[slot]
    row = row_of(st, o.strat[slot])
    was_terminal = is_terminal(o.status[slot])
    o.filled[slot] += qty
    target = ST_FILLED if o.filled[slot] >= o.qty[slot] else ST_PARTIALLY_FILLED
    transition(st, slot, target, R_FILL, price, qty)
    if side == SIDE_BUY_CODE:
        st.port.open_buy[row, inst] -= qty if not was_terminal else 0
    else:
        st.port.open_sell[row, inst] -= qty if not was_terminal else 0
    if target == ST_FILLED and not was_terminal:
        st.port.open_orders[row] -= 1
    rate = st.cfg_f[CF_MAKER_FEE] if liq == 0 else st.cfg_f[CF_TAKER_FEE]
    apply_fill(st, row, inst, side, price, qty, fee_of(st, inst, price, qty, rate))
    check_drawdown(st, row)
    st.counters[C_FILLS] += 1
    notify = o.strat[slot]
    st.clock[CK_LAST_STATUS] = o.status[slot]
    release_if_done(st, slot)
    return notify


@kernel
def cancel_all(st, strat: int, reason: int, everyone: bool) -> int:
    """Cancel every live order of `strat` (or of everyone); returns requests sent."""
    o = st.orders
    sent = 0
    for slot in range(o.oid.shape[0]):
        if o.oid[slot] < 0:
            continue
        if not everyone and o.strat[slot] != strat:
            continue
        if cancel_order(st, o.oid[slot], reason):
            sent += 1
    return sent


@kernel
def flatten(st, reason: int) -> int:
    """Cancel everything, then close every position with market orders; idempotent.

    Positions already covered by a live flatten order are not sent again, so pressing flatten
    twice never sends two offsetting orders.
    """
    cancel_all(st, -1, reason, True)
    o = st.orders
    p = st.port
    sent = 0
    for row in range(p.pos.shape[0]):
        strat = row if row < p.pos.shape[0] - 1 else -1
        for inst in range(p.pos.shape[1]):
            pos = p.pos[row, inst]
            # Subtract what live flatten orders of this row already close.
            pending = 0
            for slot in range(o.oid.shape[0]):
                if o.oid[slot] < 0 or is_terminal(o.status[slot]):
                    continue
                if (o.flags[slot] & OF_FLATTEN) == 0 or o.inst[slot] != inst:
                    continue
                if o.strat[slot] != strat:
                    continue
                left = o.qty[slot] - o.filled[slot]
                pending += left if o.side[slot] == SIDE_BUY_CODE else -left
            net = pos + pending
            if net == 0:
                continue
            side = SIDE_SELL_CODE if net > 0 else SIDE_BUY_CODE
            oid = submit_order(st, strat, inst, side, 0, abs(net), OT_MARKET, TIF_IOC, OF_FLATTEN)
            if oid >= 0:
                sent += 1
    return sent
