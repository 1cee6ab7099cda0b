"""Order management: the order pool, the state machine and the audit journal.

The state machine is a transition table (engine.state.transition_table, held in the state as
bit masks in `st.ctl[TT_BASE + state]` so jitted code reads it) that admits what real venues
do, not only the happy path.
A transition the table does not admit is refused: the order keeps its state, a journal row
with reason R_INVALID_TRANSITION records the attempt, and a counter and an alert go up.

Every transition appends a journal row (time, order, from, to, reason, price, quantity).
"""

from __future__ import annotations

from engine.codes import (
    A_INVALID_TRANSITION,
    R_INVALID_TRANSITION,
    SEV_WARNING,
    ST_CANCELED,
    ST_DENIED,
    ST_EXPIRED,
    ST_FILLED,
    ST_INITIALIZED,
    ST_REJECTED,
)
from engine.jit import hot
from engine.state import (
    AL_CODE,
    AL_INST,
    AL_OID,
    AL_REASON,
    AL_SEV,
    AL_STRAT,
    AL_TS,
    AL_VALUE,
    CK_NEXT_CID,
    CK_NOW,
    J_CID,
    J_FROM,
    J_INST,
    J_OID,
    J_PRICE,
    J_QTY,
    J_REASON,
    J_STRAT,
    J_TO,
    J_TS,
    N_ALERTS,
    N_FREE_TOP,
    N_JOURNAL,
    N_LIVE,
    N_PEAK_LIVE,
    O_CID,
    O_FILLED,
    O_FLAGS,
    O_FREE,
    O_GEN,
    O_INFLIGHT,
    O_INST,
    O_NXT,
    O_OID,
    O_OTYPE,
    O_PRICE,
    O_PRV,
    O_PTRADE,
    O_QAHEAD,
    O_QTY,
    O_SIDE,
    O_STATUS,
    O_STRAT,
    O_TIF,
    O_TS_CREATED,
    O_TS_LAST,
    O_TS_VENUE,
    O_VFILLED,
    O_VSTATE,
    SLOT_BITS,
    SLOT_MASK,
    TT_BASE,
)
from engine.stats import C_ALERTS, C_BUFFER_OVERFLOW, C_INVALID_TRANSITIONS


@hot
def is_terminal(status: int) -> bool:
    """Denied, rejected, filled, canceled and expired orders are done."""
    return (
        status == ST_DENIED
        or status == ST_REJECTED
        or status == ST_FILLED
        or status == ST_CANCELED
        or status == ST_EXPIRED
    )


@hot
def slot_of(st, oid: int) -> int:
    """The pool slot of a public order id, or -1 if the id is stale or unknown."""
    if oid < 0:
        return -1
    slot = oid & SLOT_MASK
    if slot >= st.o.shape[0] or st.o[slot, O_OID] != oid:
        return -1
    return slot


@hot
def journal_append(
    st, slot: int, from_state: int, to_state: int, reason: int, price: int, qty: int
) -> None:
    """Append one audit row (the loop stops to drain long before the journal could fill)."""
    k = st.ctl[N_JOURNAL]
    if k >= st.jr.shape[0]:
        st.ctl[C_BUFFER_OVERFLOW] += 1  # the runner turns this into an error
        return
    row = st.jr[k]
    o = st.o[slot]
    row[J_TS] = st.ctl[CK_NOW]
    row[J_OID] = o[O_OID]
    row[J_CID] = o[O_CID]
    row[J_INST] = o[O_INST]
    row[J_STRAT] = o[O_STRAT]
    row[J_FROM] = from_state
    row[J_TO] = to_state
    row[J_REASON] = reason
    row[J_PRICE] = price
    row[J_QTY] = qty
    st.ctl[N_JOURNAL] = k + 1


@hot
def alert(
    st, code: int, severity: int, reason: int, oid: int, inst: int, strat: int, value: int
) -> None:
    """Append an alert row (risk or surveillance) with its reason code."""
    k = st.ctl[N_ALERTS]
    st.ctl[C_ALERTS] += 1
    if k >= st.al.shape[0]:
        st.ctl[C_BUFFER_OVERFLOW] += 1
        return
    row = st.al[k]
    row[AL_TS] = st.ctl[CK_NOW]
    row[AL_CODE] = code
    row[AL_SEV] = severity
    row[AL_REASON] = reason
    row[AL_OID] = oid
    row[AL_INST] = inst
    row[AL_STRAT] = strat
    row[AL_VALUE] = value
    st.ctl[N_ALERTS] = k + 1


@hot
def transition(st, slot: int, to_state: int, reason: int, price: int, qty: int) -> bool:
    """Move an order to `to_state` if the table admits it; journal the transition either way."""
    cur = st.o[slot, O_STATUS]
    if ((st.ctl[TT_BASE + cur] >> to_state) & 1) == 0:
        journal_append(st, slot, cur, to_state, R_INVALID_TRANSITION, price, qty)
        st.ctl[C_INVALID_TRANSITIONS] += 1
        alert(
            st,
            A_INVALID_TRANSITION,
            SEV_WARNING,
            reason,
            st.o[slot, O_OID],
            st.o[slot, O_INST],
            st.o[slot, O_STRAT],
            cur * 100 + to_state,
        )
        return False
    st.o[slot, O_STATUS] = to_state
    st.o[slot, O_TS_LAST] = st.ctl[CK_NOW]
    journal_append(st, slot, cur, to_state, reason, price, qty)
    return True


@hot
def alloc_order(
    st, inst: int, strat: int, side: int, otype: int, tif: int, flags: int, price: int, qty: int
) -> int:
    """Take a free slot and initialise an order in it; returns the slot or -1 if full."""
    top = st.ctl[N_FREE_TOP]
    if top == 0:
        return -1
    top -= 1
    slot = st.o[top, O_FREE]
    st.ctl[N_FREE_TOP] = top
    st.ctl[N_LIVE] += 1
    if st.ctl[N_LIVE] > st.ctl[N_PEAK_LIVE]:
        st.ctl[N_PEAK_LIVE] = st.ctl[N_LIVE]
    o = st.o[slot]
    now = st.ctl[CK_NOW]
    o[O_GEN] += 1
    o[O_OID] = (o[O_GEN] << SLOT_BITS) | slot
    o[O_CID] = st.ctl[CK_NEXT_CID]
    st.ctl[CK_NEXT_CID] += 1
    o[O_STATUS] = ST_INITIALIZED
    o[O_SIDE] = side
    o[O_OTYPE] = otype
    o[O_TIF] = tif
    o[O_FLAGS] = flags
    o[O_INST] = inst
    o[O_STRAT] = strat
    o[O_PRICE] = price
    o[O_QTY] = qty
    o[O_FILLED] = 0
    o[O_VFILLED] = 0
    o[O_VSTATE] = 0
    o[O_QAHEAD] = 0
    o[O_PTRADE] = 0
    o[O_TS_CREATED] = now
    o[O_TS_VENUE] = 0
    o[O_TS_LAST] = now
    o[O_INFLIGHT] = 0
    o[O_NXT] = -1
    o[O_PRV] = -1
    return slot


@hot
def free_order(st, slot: int) -> None:
    """Return a terminal order's slot to the pool (its id goes stale)."""
    st.o[slot, O_OID] = -1
    top = st.ctl[N_FREE_TOP]
    st.o[top, O_FREE] = slot
    st.ctl[N_FREE_TOP] = top + 1
    st.ctl[N_LIVE] -= 1


@hot
def release_if_done(st, slot: int) -> bool:
    """Free the slot once the order is terminal, off the venue and no report is in flight."""
    o = st.o[slot]
    if o[O_OID] < 0 or not is_terminal(o[O_STATUS]):
        return False
    if o[O_VSTATE] == 1 or o[O_INFLIGHT] > 0:
        return False
    free_order(st, slot)
    return True
