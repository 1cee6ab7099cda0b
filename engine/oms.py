"""Order management: the order pool, the state machine and the audit journal.

The state machine is a transition table (engine.state.transition_table, held in the state as
`st.table` so jitted code reads it) that admits what real venues do, not only the happy path.
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
from engine.jit import kernel
from engine.state import CK_NEXT_CID, CK_NOW, SLOT_BITS, SLOT_MASK, transition_table
from engine.stats import C_INVALID_TRANSITIONS

TRANSITIONS = transition_table()
"""TRANSITIONS[from, to] is True when the OMS admits the transition."""


@kernel
def is_terminal(status: int) -> bool:
    """Denied, rejected, filled, canceled and expired orders are done."""
    return (
        status == ST_DENIED
        or status == ST_REJECTED
        or status == ST_FILLED
        or status == ST_CANCELED
        or status == ST_EXPIRED
    )


@kernel
def slot_of(st, oid: int) -> int:
    """The pool slot of a public order id, or -1 if the id is stale or unknown."""
    if oid < 0:
        return -1
    slot = oid & SLOT_MASK
    if slot >= st.orders.oid.shape[0]:
        return -1
    if st.orders.oid[slot] != oid:
        return -1
    return slot


@kernel
def journal_append(
    st, slot: int, from_state: int, to_state: int, reason: int, price: int, qty: int
):
    """Append one audit row (the caller checks capacity via journal_room)."""
    j = st.journal
    k = j.n[0]
    if k >= j.ts.shape[0]:
        # The loop stops before this can happen (journal_room); never write out of bounds.
        return
    o = st.orders
    j.ts[k] = st.clock[CK_NOW]
    j.oid[k] = o.oid[slot]
    j.cid[k] = o.cid[slot]
    j.inst[k] = o.inst[slot]
    j.strat[k] = o.strat[slot]
    j.from_state[k] = from_state
    j.to_state[k] = to_state
    j.reason[k] = reason
    j.price[k] = price
    j.qty[k] = qty
    j.n[0] = k + 1


@kernel
def alert(st, code: int, severity: int, reason: int, oid: int, inst: int, strat: int, value: int):
    """Append an alert row (risk or surveillance) with its reason code."""
    a = st.alerts
    k = a.n[0]
    if k >= a.ts.shape[0]:
        return
    a.ts[k] = st.clock[CK_NOW]
    a.code[k] = code
    a.severity[k] = severity
    a.reason[k] = reason
    a.oid[k] = oid
    a.inst[k] = inst
    a.strat[k] = strat
    a.value[k] = value
    a.n[0] = k + 1


@kernel
def transition(st, slot: int, to_state: int, reason: int, price: int, qty: int) -> bool:
    """Move an order to `to_state` if the table admits it; journal the transition either way."""
    o = st.orders
    cur = o.status[slot]
    if not st.table[cur, to_state]:
        journal_append(st, slot, cur, to_state, R_INVALID_TRANSITION, price, qty)
        st.counters[C_INVALID_TRANSITIONS] += 1
        alert(
            st,
            A_INVALID_TRANSITION,
            SEV_WARNING,
            reason,
            o.oid[slot],
            o.inst[slot],
            o.strat[slot],
            cur * 100 + to_state,
        )
        return False
    o.status[slot] = to_state
    o.ts_last[slot] = st.clock[CK_NOW]
    journal_append(st, slot, cur, to_state, reason, price, qty)
    return True


@kernel
def alloc_order(
    st, inst: int, strat: int, side: int, otype: int, tif: int, flags: int, price: int, qty: int
) -> int:
    """Take a free slot and initialise an order in it; returns the slot or -1 if full."""
    o = st.orders
    top = o.n[0]
    if top == 0:
        return -1
    top -= 1
    slot = o.free[top]
    o.n[0] = top
    o.n[1] += 1
    if o.n[1] > o.n[2]:
        o.n[2] = o.n[1]
    o.gen[slot] += 1
    o.oid[slot] = (o.gen[slot] << SLOT_BITS) | slot
    o.cid[slot] = st.clock[CK_NEXT_CID]
    st.clock[CK_NEXT_CID] += 1
    o.status[slot] = ST_INITIALIZED
    o.side[slot] = side
    o.otype[slot] = otype
    o.tif[slot] = tif
    o.flags[slot] = flags
    o.inst[slot] = inst
    o.strat[slot] = strat
    o.price[slot] = price
    o.qty[slot] = qty
    o.filled[slot] = 0
    o.v_filled[slot] = 0
    o.v_state[slot] = 0
    o.queue_ahead[slot] = 0
    o.pending_trade[slot] = 0
    o.ts_created[slot] = st.clock[CK_NOW]
    o.ts_venue[slot] = 0
    o.ts_last[slot] = st.clock[CK_NOW]
    o.inflight[slot] = 0
    o.nxt[slot] = -1
    o.prv[slot] = -1
    return slot


@kernel
def release_if_done(st, slot: int) -> bool:
    """Free the slot once the order is terminal, off the venue and no report is in flight."""
    o = st.orders
    if o.oid[slot] < 0 or not is_terminal(o.status[slot]):
        return False
    if o.v_state[slot] == 1 or o.inflight[slot] > 0:
        return False
    free_order(st, slot)
    return True


@kernel
def free_order(st, slot: int) -> None:
    """Return a terminal order's slot to the pool (its id goes stale)."""
    o = st.orders
    o.oid[slot] = -1
    o.free[o.n[0]] = slot
    o.n[0] += 1
    o.n[1] -= 1
