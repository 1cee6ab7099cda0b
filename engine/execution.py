"""The engine side of order flow: submit, cancel, venue reports, cancel-all and flatten.

Strategies (through engine.strategy_api) and manual commands (engine.commands) call these;
the venue (engine.venue) answers with reports that `on_report` and `on_fill_report` apply
to the OMS and the portfolio when they arrive.
"""

from __future__ import annotations

from engine.codes import (
    A_RISK_DENIAL,
    A_USER_RULE,
    EV_AMEND_ARRIVE,
    EV_CANCEL_ARRIVE,
    EV_ORDER_ARRIVE,
    LIQ_MAKER,
    OF_FLATTEN,
    OT_LIMIT,
    OT_MARKET,
    R_AMEND_REQUEST,
    R_BAD_QUANTITY,
    R_CANCEL_REJECTED,
    R_CANCEL_REQUEST,
    R_END_OF_DATA,
    R_FILL,
    R_INVALID_TRANSITION,
    R_NEW,
    R_NONE,
    R_OUTBOX_FULL,
    R_POOL_FULL,
    R_RISK_USER_RULE,
    R_UNKNOWN_ORDER,
    SEV_INFO,
    SIDE_BUY_CODE,
    SIDE_SELL_CODE,
    ST_ACCEPTED,
    ST_DENIED,
    ST_FILLED,
    ST_PARTIALLY_FILLED,
    ST_PENDING_CANCEL,
    ST_PENDING_UPDATE,
    ST_REJECTED,
    ST_SUBMITTED,
    TIF_IOC,
)
from engine.jit import hot, kernel
from engine.oms import alert, alloc_order, is_terminal, release_if_done, slot_of, transition
from engine.portfolio import apply_fill, check_drawdown, fee_of
from engine.risk import pre_trade, record_submit, surveil_cancel
from engine.scheduler import schedule
from engine.state import (
    CF_MAKER_FEE,
    CF_TAKER_FEE,
    CI_CANCEL_LATENCY,
    CI_ENTRY_LATENCY,
    CI_LIVE,
    CI_N_INSTRUMENTS,
    CK_DATA_ENDED,
    CK_LAST_STATUS,
    CK_NOW,
    CK_RULE_CODE,
    N_OUT,
    O_CID,
    O_FILLED,
    O_FLAGS,
    O_INFLIGHT,
    O_INST,
    O_OID,
    O_OTYPE,
    O_PRICE,
    O_QTY,
    O_SIDE,
    O_STATUS,
    O_STRAT,
    O_TIF,
    OUT_AMEND,
    OUT_CANCEL,
    OUT_CID,
    OUT_FLAGS,
    OUT_INST,
    OUT_KIND,
    OUT_NEW,
    OUT_OID,
    OUT_OTYPE,
    OUT_PRICE,
    OUT_QTY,
    OUT_SIDE,
    OUT_STRAT,
    OUT_TIF,
    OUT_TS,
    PI_OPEN_BUY,
    PI_OPEN_SELL,
    PI_POS,
    RI_OPEN_ORDERS,
)
from engine.stats import (
    C_AMENDS,
    C_BUFFER_OVERFLOW,
    C_CANCELS,
    C_FILLS,
    C_ORDERS_DENIED,
    C_ORDERS_REJECTED,
    C_ORDERS_SUBMITTED,
)
from engine.venue import AMEND_ACK_STATE, AMEND_REJECT_STATE, CANCEL_REJECT_STATE, amend_arrive

NO_STRATEGY = -1
"""Returned by the report handlers when no strategy is to be told."""


@hot
def row_of(st, strat: int) -> int:
    """Portfolio row of a strategy instance (manual trading is the last row)."""
    return strat if strat >= 0 else st.pi.shape[0] - 1


@hot
def open_add(st, slot: int, sign: int) -> None:
    """Count an order's unfilled quantity into (or out of) its row's open quantities."""
    o = st.o[slot]
    row = row_of(st, o[O_STRAT])
    left = (o[O_QTY] - o[O_FILLED]) * sign
    col = PI_OPEN_BUY if o[O_SIDE] == SIDE_BUY_CODE else PI_OPEN_SELL
    st.pi[row, o[O_INST], col] += left
    st.ri[row, RI_OPEN_ORDERS] += sign


@hot
def outbox_push(st, kind: int, slot: int, price: int, qty: int) -> None:
    """Live mode: queue a request for the venue adapter (drained after every step)."""
    k = st.ctl[N_OUT]
    if k >= st.out.shape[0]:
        st.ctl[C_BUFFER_OVERFLOW] += 1  # the runner turns this into an error
        return
    o = st.o[slot]
    r = st.out[k]
    r[OUT_KIND] = kind
    r[OUT_OID] = o[O_OID]
    r[OUT_CID] = o[O_CID]
    r[OUT_INST] = o[O_INST]
    r[OUT_STRAT] = o[O_STRAT]
    r[OUT_SIDE] = o[O_SIDE]
    r[OUT_PRICE] = price
    r[OUT_QTY] = qty
    r[OUT_OTYPE] = o[O_OTYPE]
    r[OUT_TIF] = o[O_TIF]
    r[OUT_FLAGS] = o[O_FLAGS]
    r[OUT_TS] = st.ctl[CK_NOW]
    st.ctl[N_OUT] = k + 1


@hot
def submit_order(
    st, strat: int, inst: int, side: int, price: int, qty: int, otype: int, tif: int, flags: int
) -> int:
    """Risk-check and send an order; returns its id (>= 0) or minus the denial reason."""
    row = row_of(st, strat)
    reason = pre_trade(st, row, inst, side, price, qty, otype, flags)
    if reason == R_NONE and strat >= 0 and st.ctl[CK_DATA_ENDED] != 0:
        if (flags & OF_FLATTEN) == 0:
            reason = R_END_OF_DATA  # no market left to trade against
    live = st.ctl[CI_LIVE] != 0
    if reason == R_NONE and live and st.ctl[N_OUT] >= st.out.shape[0]:
        reason = R_OUTBOX_FULL
    if otype == OT_MARKET:
        price = 0
        tif = TIF_IOC
    # A denied order with a nonsense instrument is still journaled, under instrument 0, and
    # alerted under -1 (no instrument): nothing downstream may index a table with it.
    known = 0 <= inst < st.ctl[CI_N_INSTRUMENTS]
    slot = alloc_order(st, inst if known else 0, strat, side, otype, tif, flags, price, qty)
    if not known:
        inst = -1
    if slot < 0:
        alert(st, A_RISK_DENIAL, SEV_INFO, R_POOL_FULL, -1, inst, strat, qty)
        st.ctl[C_ORDERS_DENIED] += 1
        return -R_POOL_FULL
    if reason != R_NONE:
        transition(st, slot, ST_DENIED, reason, price, qty)
        if reason == R_RISK_USER_RULE:
            code = st.ctl[CK_RULE_CODE]
            alert(st, A_USER_RULE, SEV_INFO, reason, st.o[slot, O_OID], inst, strat, code)
        else:
            alert(st, A_RISK_DENIAL, SEV_INFO, reason, st.o[slot, O_OID], inst, strat, qty)
        st.ctl[C_ORDERS_DENIED] += 1
        release_if_done(st, slot)
        return -reason
    transition(st, slot, ST_SUBMITTED, R_NEW, price, qty)
    open_add(st, slot, 1)
    if (flags & OF_FLATTEN) == 0:
        record_submit(st, row)
    st.ctl[C_ORDERS_SUBMITTED] += 1
    oid = st.o[slot, O_OID]
    if live:
        outbox_push(st, OUT_NEW, slot, price, qty)
    else:
        st.o[slot, O_INFLIGHT] += 1
        schedule(st, st.ctl[CK_NOW] + st.ctl[CI_ENTRY_LATENCY], EV_ORDER_ARRIVE, oid, 0, 0, 0)
    return oid


@hot
def cancel_order(st, oid: int, reason: int) -> bool:
    """Request a cancel; idempotent (a second request for a pending cancel sends nothing)."""
    slot = slot_of(st, oid)
    if slot < 0:
        return False
    o = st.o[slot]
    s = o[O_STATUS]
    if (
        s != ST_SUBMITTED
        and s != ST_ACCEPTED
        and s != ST_PARTIALLY_FILLED
        and s != ST_PENDING_UPDATE
    ):
        return False
    if reason == R_CANCEL_REQUEST:
        surveil_cancel(st, slot, row_of(st, o[O_STRAT]))
    transition(st, slot, ST_PENDING_CANCEL, reason, o[O_PRICE], o[O_QTY] - o[O_FILLED])
    st.ctl[C_CANCELS] += 1
    if st.ctl[CI_LIVE] != 0:
        outbox_push(st, OUT_CANCEL, slot, o[O_PRICE], o[O_QTY])
    else:
        o[O_INFLIGHT] += 1
        schedule(st, st.ctl[CK_NOW] + st.ctl[CI_CANCEL_LATENCY], EV_CANCEL_ARRIVE, oid, 0, 0, 0)
    return True


@hot
def amend_order(st, oid: int, price: int, qty: int) -> int:
    """Request a new price and/or total quantity for a working limit order.

    Returns R_NONE when the request was sent, else the reason it was not (the order is
    unknown or not working, or pre-trade risk denies the new terms: then an alert says so).
    The order is pending update until the venue's answer arrives (engine/venue.py
    amend_arrive); a fill can still happen meanwhile, at the old terms.
    """
    slot = slot_of(st, oid)
    if slot < 0:
        return R_UNKNOWN_ORDER
    o = st.o[slot]
    s = o[O_STATUS]
    if (s != ST_ACCEPTED and s != ST_PARTIALLY_FILLED) or o[O_OTYPE] == OT_MARKET:
        return R_INVALID_TRANSITION
    if qty <= o[O_FILLED]:
        return R_BAD_QUANTITY
    row = row_of(st, o[O_STRAT])
    inst, side = o[O_INST], o[O_SIDE]
    # Check the new terms as if the order were new: take its own open quantity out first.
    open_add(st, slot, -1)
    reason = pre_trade(st, row, inst, side, price, qty - o[O_FILLED], OT_LIMIT, o[O_FLAGS])
    open_add(st, slot, 1)
    if reason != R_NONE:
        code = st.ctl[CK_RULE_CODE] if reason == R_RISK_USER_RULE else qty
        kind = A_USER_RULE if reason == R_RISK_USER_RULE else A_RISK_DENIAL
        alert(st, kind, SEV_INFO, reason, oid, inst, o[O_STRAT], code)
        st.ctl[C_ORDERS_DENIED] += 1
        return reason
    transition(st, slot, ST_PENDING_UPDATE, R_AMEND_REQUEST, price, qty)
    record_submit(st, row)
    st.ctl[C_AMENDS] += 1
    if st.ctl[CI_LIVE] != 0:
        outbox_push(st, OUT_AMEND, slot, price, qty)
    else:
        o[O_INFLIGHT] += 1
        schedule(st, st.ctl[CK_NOW] + st.ctl[CI_ENTRY_LATENCY], EV_AMEND_ARRIVE, oid, price, qty, 0)
    return R_NONE


@hot
def on_amend_arrive(st, slot: int, price: int, qty: int) -> None:
    """The venue applies or refuses an amend; open quantities follow a new total at once."""
    o = st.o[slot]
    before = o[O_QTY]
    if amend_arrive(st, slot, price, qty):
        row = row_of(st, o[O_STRAT])
        col = PI_OPEN_BUY if o[O_SIDE] == SIDE_BUY_CODE else PI_OPEN_SELL
        st.pi[row, o[O_INST], col] += o[O_QTY] - before


@hot
def on_report(st, oid: int, state: int, reason: int) -> int:
    """A venue state report arrives; returns the strategy to notify (or NO_STRATEGY)."""
    slot = slot_of(st, oid)
    if slot < 0:
        return NO_STRATEGY
    o = st.o[slot]
    o[O_INFLIGHT] -= 1
    cur = o[O_STATUS]
    notify = o[O_STRAT]
    if state == AMEND_ACK_STATE or state == AMEND_REJECT_STATE:
        if cur == ST_PENDING_UPDATE:
            back = ST_PARTIALLY_FILLED if o[O_FILLED] > 0 else ST_ACCEPTED
            transition(st, slot, back, reason, o[O_PRICE], o[O_QTY])
        else:
            notify = NO_STRATEGY  # canceled or filled meanwhile: that state stands
    elif state == CANCEL_REJECT_STATE:
        if cur == ST_PENDING_CANCEL:
            back = ST_PARTIALLY_FILLED if o[O_FILLED] > 0 else ST_ACCEPTED
            transition(st, slot, back, R_CANCEL_REJECTED, o[O_PRICE], 0)
        else:
            notify = NO_STRATEGY  # the order finished first: nothing changes
    elif state == ST_ACCEPTED:
        if cur == ST_SUBMITTED:
            transition(st, slot, ST_ACCEPTED, reason, o[O_PRICE], o[O_QTY])
        elif cur == ST_PENDING_CANCEL:
            # Acknowledged while our cancel is on its way: still pending cancel.
            transition(st, slot, ST_PENDING_CANCEL, reason, o[O_PRICE], o[O_QTY])
        else:
            notify = NO_STRATEGY
    else:
        was_terminal = is_terminal(cur)
        if transition(st, slot, state, reason, o[O_PRICE], o[O_QTY] - o[O_FILLED]):
            if not was_terminal:
                open_add(st, slot, -1)
            if state == ST_REJECTED:
                st.ctl[C_ORDERS_REJECTED] += 1
        else:
            notify = NO_STRATEGY
    st.ctl[CK_LAST_STATUS] = o[O_STATUS]
    release_if_done(st, slot)
    return notify


@hot
def on_fill_report(st, oid: int, qty: int, price: int, liq: int) -> int:
    """A fill report arrives: OMS, open quantity, portfolio; returns the strategy to notify."""
    slot = slot_of(st, oid)
    if slot < 0:
        return NO_STRATEGY
    o = st.o[slot]
    o[O_INFLIGHT] -= 1
    inst, side = o[O_INST], o[O_SIDE]
    row = row_of(st, o[O_STRAT])
    was_terminal = is_terminal(o[O_STATUS])
    o[O_FILLED] += qty
    target = ST_FILLED if o[O_FILLED] >= o[O_QTY] else ST_PARTIALLY_FILLED
    if target == ST_PARTIALLY_FILLED and o[O_STATUS] == ST_PENDING_UPDATE:
        target = ST_PENDING_UPDATE  # still waiting for the amend's answer
    transition(st, slot, target, R_FILL, price, qty)
    if not was_terminal:
        # A late fill of a canceled order was already taken out of the open quantities.
        col = PI_OPEN_BUY if side == SIDE_BUY_CODE else PI_OPEN_SELL
        st.pi[row, inst, col] -= qty
        if target == ST_FILLED:
            st.ri[row, RI_OPEN_ORDERS] -= 1
    rate = st.cfg[CF_MAKER_FEE] if liq == LIQ_MAKER else st.cfg[CF_TAKER_FEE]
    apply_fill(st, row, inst, side, price, qty, fee_of(st, inst, price, qty, rate))
    check_drawdown(st, row)
    st.ctl[C_FILLS] += 1
    st.ctl[CK_LAST_STATUS] = o[O_STATUS]
    notify = o[O_STRAT]
    release_if_done(st, slot)
    return notify


@kernel
def cancel_all(st, strat: int, reason: int, everyone: bool) -> int:
    """Cancel every live order of `strat` (or of everyone); returns requests sent."""
    sent = 0
    for slot in range(st.o.shape[0]):
        oid = st.o[slot, O_OID]
        if oid < 0:
            continue
        if not everyone and st.o[slot, O_STRAT] != strat:
            continue
        if cancel_order(st, oid, reason):
            sent += 1
    return sent


@kernel
def flatten(st, reason: int) -> int:
    """Cancel everything, then close every position with market orders; idempotent.

    Positions already covered by live flatten orders are not sent again, so pressing flatten
    twice never sends two offsetting orders.
    """
    cancel_all(st, -1, reason, True)
    o = st.o
    sent = 0
    n_rows = st.pi.shape[0]
    for row in range(n_rows):
        strat = row if row < n_rows - 1 else -1
        for inst in range(st.pi.shape[1]):
            pos = st.pi[row, inst, PI_POS]
            pending = 0
            for slot in range(o.shape[0]):
                if o[slot, O_OID] < 0 or is_terminal(o[slot, O_STATUS]):
                    continue
                if (o[slot, O_FLAGS] & OF_FLATTEN) == 0 or o[slot, O_INST] != inst:
                    continue
                if o[slot, O_STRAT] != strat:
                    continue
                left = o[slot, O_QTY] - o[slot, O_FILLED]
                pending += left if o[slot, O_SIDE] == SIDE_BUY_CODE else -left
            net = pos + pending
            if net == 0:
                continue
            side = SIDE_SELL_CODE if net > 0 else SIDE_BUY_CODE
            oid = submit_order(st, strat, inst, side, 0, abs(net), OT_MARKET, TIF_IOC, OF_FLATTEN)
            if oid >= 0:
                sent += 1
    return sent
