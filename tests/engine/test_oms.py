"""OMS: the transition table, refused transitions, the order pool and its ids."""

from __future__ import annotations

import numpy as np
import pytest

from engine.codes import (
    A_INVALID_TRANSITION,
    A_RISK_DENIAL,
    N_STATES,
    OT_LIMIT,
    R_CANCEL_REQUEST,
    R_FILL,
    R_INVALID_TRANSITION,
    R_NEW,
    R_POOL_FULL,
    SIDE_BUY_CODE,
    ST_ACCEPTED,
    ST_CANCELED,
    ST_DENIED,
    ST_EXPIRED,
    ST_FILLED,
    ST_INITIALIZED,
    ST_PARTIALLY_FILLED,
    ST_PENDING_CANCEL,
    ST_PENDING_UPDATE,
    ST_REJECTED,
    ST_SUBMITTED,
    TERMINAL_STATES,
    TIF_GTC,
)
from engine.execution import submit_order
from engine.oms import alloc_order, is_terminal, release_if_done, slot_of, transition
from engine.state import (
    AL_CODE,
    AL_OID,
    AL_REASON,
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
    O_CID,
    O_INFLIGHT,
    O_OID,
    O_STATUS,
    O_TS_LAST,
    O_VSTATE,
    SLOT_BITS,
    SLOT_MASK,
    new_state,
    transition_table,
)
from engine.stats import C_ALERTS, C_INVALID_TRANSITIONS, C_ORDERS_DENIED

ALLOWED = {
    ST_INITIALIZED: {ST_DENIED, ST_SUBMITTED},
    ST_SUBMITTED: {
        ST_ACCEPTED,
        ST_REJECTED,
        ST_PARTIALLY_FILLED,
        ST_FILLED,
        ST_PENDING_CANCEL,
        ST_PENDING_UPDATE,
        ST_CANCELED,
        ST_EXPIRED,
    },
    ST_ACCEPTED: {
        ST_PARTIALLY_FILLED,
        ST_FILLED,
        ST_PENDING_CANCEL,
        ST_PENDING_UPDATE,
        ST_CANCELED,
        ST_EXPIRED,
    },
    ST_PARTIALLY_FILLED: {
        ST_PARTIALLY_FILLED,
        ST_FILLED,
        ST_PENDING_CANCEL,
        ST_PENDING_UPDATE,
        ST_CANCELED,
        ST_EXPIRED,
    },
    ST_PENDING_CANCEL: {
        ST_PENDING_CANCEL,  # a repeated request
        ST_CANCELED,
        ST_ACCEPTED,  # the cancel failed
        ST_PARTIALLY_FILLED,  # a fill raced the cancel
        ST_FILLED,
        ST_EXPIRED,
        ST_REJECTED,  # canceled before the venue saw it, then refused by the venue
    },
    ST_PENDING_UPDATE: {
        ST_PENDING_UPDATE,
        ST_ACCEPTED,
        ST_PARTIALLY_FILLED,
        ST_FILLED,
        ST_PENDING_CANCEL,
        ST_CANCELED,
        ST_EXPIRED,
    },
    ST_CANCELED: {ST_FILLED},  # the fill report arrives after the cancel report
    ST_DENIED: set(),
    ST_REJECTED: set(),
    ST_FILLED: set(),
    ST_EXPIRED: set(),
}


def fresh(max_orders: int = 8):
    st = new_state(1, 2, max_orders=max_orders)
    st.ctl[CK_NOW] = 1_000
    return st


def alloc(st, qty: int = 5, price: int = 100, strat: int = 0) -> int:
    return alloc_order(st, 0, strat, SIDE_BUY_CODE, OT_LIMIT, TIF_GTC, 0, price, qty)


def test_table_is_exactly_the_documented_state_machine():
    table = transition_table()
    assert table.shape == (N_STATES, N_STATES)
    for a in range(N_STATES):
        assert {b for b in range(N_STATES) if table[a, b]} == ALLOWED[a], a
    # Terminal states are left only by a late fill of a canceled order.
    for a in TERMINAL_STATES:
        assert is_terminal(a)
        assert table[a].sum() == (1 if a == ST_CANCELED else 0)
    for a in (ST_INITIALIZED, ST_SUBMITTED, ST_ACCEPTED, ST_PENDING_CANCEL, ST_PENDING_UPDATE):
        assert not is_terminal(a)


@pytest.mark.parametrize("a", range(N_STATES))
def test_every_transition_applied_or_refused_and_journaled(a):
    st = fresh()
    slot = alloc(st)
    oid = st.o[slot, O_OID]
    for b in range(N_STATES):
        st.o[slot, O_STATUS] = a
        st.ctl[CK_NOW] += 10
        k = st.ctl[N_JOURNAL]
        invalid_before = st.ctl[C_INVALID_TRANSITIONS]
        alerts_before = st.ctl[N_ALERTS]
        ok = transition(st, slot, b, R_FILL, 123, 4)
        row = st.jr[k]
        assert st.ctl[N_JOURNAL] == k + 1  # journaled either way
        assert (row[J_TS], row[J_OID], row[J_CID], row[J_INST], row[J_STRAT]) == (
            st.ctl[CK_NOW],
            oid,
            1,
            0,
            0,
        )
        assert (row[J_FROM], row[J_TO], row[J_PRICE], row[J_QTY]) == (a, b, 123, 4)
        if b in ALLOWED[a]:
            assert ok
            assert st.o[slot, O_STATUS] == b
            assert st.o[slot, O_TS_LAST] == st.ctl[CK_NOW]
            assert row[J_REASON] == R_FILL
            assert st.ctl[C_INVALID_TRANSITIONS] == invalid_before
            assert st.ctl[N_ALERTS] == alerts_before
        else:
            assert not ok
            assert st.o[slot, O_STATUS] == a  # never applied
            assert row[J_REASON] == R_INVALID_TRANSITION
            assert st.ctl[C_INVALID_TRANSITIONS] == invalid_before + 1
            al = st.al[alerts_before]
            assert st.ctl[N_ALERTS] == alerts_before + 1
            assert al[AL_CODE] == A_INVALID_TRANSITION
            assert al[AL_OID] == oid
            assert al[AL_REASON] == R_FILL  # the reason of the refused attempt
            assert al[AL_VALUE] == a * 100 + b


def test_refused_transition_counts_and_alerts():
    st = fresh()
    slot = alloc(st)
    assert transition(st, slot, ST_SUBMITTED, R_NEW, 100, 5)
    assert transition(st, slot, ST_ACCEPTED, R_NEW, 100, 5)
    assert transition(st, slot, ST_FILLED, R_FILL, 100, 5)
    assert not transition(st, slot, ST_ACCEPTED, R_NEW, 100, 5)
    assert not transition(st, slot, ST_PENDING_CANCEL, R_CANCEL_REQUEST, 100, 5)
    assert st.o[slot, O_STATUS] == ST_FILLED
    assert st.ctl[C_INVALID_TRANSITIONS] == 2
    assert st.ctl[C_ALERTS] == 2
    reasons = st.jr[: st.ctl[N_JOURNAL], J_REASON].tolist()
    assert reasons == [R_NEW, R_NEW, R_FILL, R_INVALID_TRANSITION, R_INVALID_TRANSITION]


def test_order_ids_slots_and_generations():
    st = fresh()
    a = alloc(st)
    b = alloc(st)
    assert (a, b) == (0, 1)  # slot 0 is handed out first
    oid_a = st.o[a, O_OID]
    assert oid_a == (1 << SLOT_BITS) | 0
    assert oid_a & SLOT_MASK == a
    assert slot_of(st, oid_a) == a
    assert slot_of(st, st.o[b, O_OID]) == b
    assert slot_of(st, -1) == -1
    assert slot_of(st, (5 << SLOT_BITS) | 7) == -1  # a free slot
    assert slot_of(st, (1 << SLOT_BITS) | (1 << SLOT_BITS) - 1) == -1  # beyond the pool
    assert st.ctl[N_LIVE] == 2


def test_slot_reuse_makes_the_old_id_stale_and_never_reuses_client_ids():
    st = fresh()
    slot = alloc(st)
    old = st.o[slot, O_OID]
    # Not terminal yet: the slot is kept.
    transition(st, slot, ST_SUBMITTED, R_NEW, 100, 5)
    assert not release_if_done(st, slot)
    transition(st, slot, ST_CANCELED, R_CANCEL_REQUEST, 100, 5)
    # Terminal but a report is still in flight, or the venue still holds it: kept.
    st.o[slot, O_INFLIGHT] = 1
    assert not release_if_done(st, slot)
    st.o[slot, O_INFLIGHT] = 0
    st.o[slot, O_VSTATE] = 1
    assert not release_if_done(st, slot)
    st.o[slot, O_VSTATE] = 2
    assert release_if_done(st, slot)
    assert st.o[slot, O_OID] == -1
    assert slot_of(st, old) == -1
    assert st.ctl[N_LIVE] == 0
    assert not release_if_done(st, slot)  # a freed slot is not freed twice
    assert st.ctl[N_FREE_TOP] == 8
    again = alloc(st)
    assert again == slot
    new = st.o[again, O_OID]
    assert new != old
    assert new >> SLOT_BITS == 2  # the next generation
    assert slot_of(st, old) == -1
    assert slot_of(st, new) == slot
    assert st.o[again, O_CID] == 2  # client ids go on counting
    assert st.o[again, O_STATUS] == ST_INITIALIZED
    assert st.ctl[CK_NEXT_CID] == 3


def test_client_ids_are_never_reused_across_many_cycles():
    st = fresh(max_orders=2)
    cids = []
    for _ in range(50):
        slot = alloc(st)
        cids.append(int(st.o[slot, O_CID]))
        transition(st, slot, ST_DENIED, R_NEW, 100, 5)
        assert release_if_done(st, slot)
    assert cids == list(range(1, 51))


def test_pool_full_denies_with_reason_and_alert():
    st = fresh(max_orders=2)
    r1 = submit_order(st, 0, 0, SIDE_BUY_CODE, 100, 1, OT_LIMIT, TIF_GTC, 0)
    r2 = submit_order(st, 0, 0, SIDE_BUY_CODE, 100, 1, OT_LIMIT, TIF_GTC, 0)
    assert r1 >= 0 and r2 >= 0
    r3 = submit_order(st, 0, 0, SIDE_BUY_CODE, 100, 1, OT_LIMIT, TIF_GTC, 0)
    assert r3 == -R_POOL_FULL
    assert st.ctl[C_ORDERS_DENIED] == 1
    al = st.al[st.ctl[N_ALERTS] - 1]
    assert (al[AL_CODE], al[AL_REASON], al[AL_OID]) == (A_RISK_DENIAL, R_POOL_FULL, -1)
    # The two live orders are untouched and journaled as submitted.
    jr = st.jr[: st.ctl[N_JOURNAL]]
    assert jr[:, J_TO].tolist() == [ST_SUBMITTED, ST_SUBMITTED]
    assert np.array_equal(st.o[:2, O_STATUS], [ST_SUBMITTED, ST_SUBMITTED])


def test_cancel_racing_a_venue_reject_ends_rejected_not_stuck() -> None:
    """A post-only order canceled before it reaches the venue, then refused there: the
    OMS records the reject (pending_cancel -> rejected) and the order stops being open."""
    from engine.codes import OF_POST_ONLY, OT_LIMIT, R_CANCEL_REQUEST, TIF_GTC
    from engine.execution import cancel_order, submit_order
    from engine.runner import Engine
    from engine.state import RI_OPEN_ORDERS
    from engine.stats import C_INVALID_TRANSITIONS
    from tests.engine.market import MS, Market, run_to

    m = Market()
    m.snapshot(1_000, bids=[(9_990, 10)], asks=[(10_010, 5)])
    m.trade(50 * MS, 10_010, 1, aggressor=1)
    eng = Engine(m.stream())
    run_to(eng, 2_000)
    # A post-only buy at the ask would cross: the venue rejects it on arrival.
    oid = submit_order(eng.state, -1, 0, 1, 10_010, 1, OT_LIMIT, TIF_GTC, OF_POST_ONLY)
    assert oid >= 0
    assert cancel_order(eng.state, oid, R_CANCEL_REQUEST)
    eng.run()
    rows = [(r[5], r[6]) for r in zip(*(eng.journal()[k] for k in JOURNAL_KEYS), strict=True)]
    assert (ST_PENDING_CANCEL, ST_REJECTED) in rows
    assert eng.state.ctl[C_INVALID_TRANSITIONS] == 0
    assert eng.state.ri[-1, RI_OPEN_ORDERS] == 0


JOURNAL_KEYS = ("ts", "oid", "cid", "inst", "strat", "from_state", "to_state", "reason")
