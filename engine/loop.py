"""The event loop: market data and the engine's own scheduled events, in one strict order.

`run_chunk` processes at most `max_events` events and returns why it stopped (STOP_* in
engine/codes.py): chunk done, end of data, a buffer to drain, or a breakpoint (next fill,
order update, alert, trade, or an engine time). Stepping one event is a chunk of one.

Order of events (fixed, part of determinism): the next data event (by `ts_local`) and the
earliest scheduled event (by time, then scheduling sequence) are compared; on equal times the
data event goes first, since what the venue published at t was known at t before anything
we scheduled for t happens.

Strategies are called through first-class function hooks (engine/strategy.py compiles them):
`on_data` once per venue message (rows carrying FLAG_LAST) of a subscribed instrument, after
the whole message is applied; `on_order_update` when a report about one of its orders
arrives; `on_tick` when one of its timers fires. The cursor and clock are stored before a hook
runs, so if a hook raises, the Python side disables that instance and resumes where it was.
"""

from __future__ import annotations

from engine.book import apply_event, apply_event_inline, best_ask, best_bid, depth_at
from engine.clock import cycles
from engine.codes import (
    A_STRATEGY_ERROR,
    BREAK_ALERT,
    BREAK_FILL,
    BREAK_ORDER_UPDATE,
    BREAK_TIME,
    BREAK_TRADE,
    EV_AMEND_ARRIVE,
    EV_CANCEL_ARRIVE,
    EV_FILL_REPORT,
    EV_ORDER_ARRIVE,
    EV_REPORT,
    EV_TIMER,
    SEV_CRITICAL,
    STOP_ALERT,
    STOP_BUFFER_FULL,
    STOP_CHUNK_DONE,
    STOP_END_OF_DATA,
    STOP_FILL,
    STOP_ORDER_UPDATE,
    STOP_TIME,
    STOP_TRADE,
)
from engine.events import (
    FLAG_LAST,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    KIND_QUOTE,
    KIND_TRADE,
)
from engine.execution import NO_STRATEGY, on_amend_arrive, on_fill_report, on_report
from engine.jit import entry, hot, kernel
from engine.oms import alert, release_if_done, slot_of
from engine.portfolio import sample_equity
from engine.risk import mid_x2
from engine.scheduler import NEVER, next_time, pop
from engine.state import (
    CI_EQUITY_INTERVAL,
    CI_LIVE,
    CK_CUR_STRAT,
    CK_CURSOR,
    CK_DATA_ENDED,
    CK_DATA_EVENTS,
    CK_ENGINE_EVENTS,
    CK_FAULT,
    CK_LAST_DATA_TS,
    CK_LAST_STATUS,
    CK_NEXT_EQUITY,
    CK_NOW,
    CK_STOP_FLAGS,
    H_KIND,
    MK_LAST_PX,
    MK_LAST_TS,
    MK_MARK_X2,
    MK_MID_X2,
    MK_QASK_PX,
    MK_QASK_QTY,
    MK_QBID_PX,
    MK_QBID_QTY,
    N_ALERTS,
    N_EQUITY,
    N_FILLS,
    N_HEAP,
    N_JOURNAL,
    N_OUT,
    O_INFLIGHT,
    RI_ENABLED,
    RI_FAULT_HOOK,
    RI_FAULT_TS,
)
from engine.stats import C_STRATEGY_CALLS, C_TIMERS_AFTER_END, C_TRADES_SEEN
from engine.venue import (
    cancel_arrive,
    displayed,
    has_interest,
    on_level,
    on_snapshot_done,
    on_trade,
    order_arrive,
    refresh_all,
)


@hot
def buffers_need_drain(st) -> bool:
    """A buffer is half full: stop so the Python side drains it before it could overflow."""
    c = st.ctl
    return (
        c[N_JOURNAL] * 2 > st.jr.shape[0]
        or c[N_FILLS] * 2 > st.fl.shape[0]
        or c[N_ALERTS] * 2 > st.al.shape[0]
        or c[N_EQUITY] * 2 > st.eq.shape[0]
        or c[N_OUT] * 2 > st.out.shape[0]
    )


@hot
def apply_market_event(
    st, inst: int, kind: int, side: int, price: int, size: int, flags: int
) -> None:
    """Apply one data row to the book, quotes and our resting orders."""
    if kind == KIND_BOOK_DELTA or kind == KIND_BOOK_SNAPSHOT:
        interest = has_interest(st, inst)
        old = depth_at(st.book, inst, side, price) if interest else 0
        apply_event_inline(st.book, inst, kind, side, price, size)  # the most common row
        if interest:
            on_level(st, inst, side, price, old, size)
        if kind == KIND_BOOK_SNAPSHOT and (flags & FLAG_LAST) != 0:
            on_snapshot_done(st, inst)
    elif kind == KIND_BOOK_CLEAR:
        apply_event(st.book, inst, kind, side, price, size)
        refresh_all(st, inst)
    elif kind == KIND_TRADE:
        st.ctl[C_TRADES_SEEN] += 1
        st.mk[inst, MK_LAST_PX] = price
        st.mk[inst, MK_LAST_TS] = st.ctl[CK_NOW]
        if has_interest(st, inst):
            on_trade(st, inst, side, price, size, best_bid(st.book, inst), best_ask(st.book, inst))
        st.ctl[CK_STOP_FLAGS] |= BREAK_TRADE
    elif kind == KIND_QUOTE:
        # Without a book on that side the quote is the venue's liquidity (engine/venue.py):
        # a new quote restates its level like a delta, refreshing what our fills consumed
        # there and moving our queues.
        n_book = st.book.bid_n[inst] if side > 0 else st.book.ask_n[inst]
        watch = n_book == 0 and has_interest(st, inst)
        old = displayed(st, inst, side, price) if watch else 0
        if side > 0:
            st.mk[inst, MK_QBID_PX] = price
            st.mk[inst, MK_QBID_QTY] = size
        else:
            st.mk[inst, MK_QASK_PX] = price
            st.mk[inst, MK_QASK_QTY] = size
        if watch:
            on_level(st, inst, side, price, old, size)
    if (flags & FLAG_LAST) != 0:
        m2 = mid_x2(st, inst)
        st.mk[inst, MK_MID_X2] = m2  # what strategies read: hooks run between messages
        if m2 != 0:
            st.mk[inst, MK_MARK_X2] = m2


@hot
def advance_clock(st, ts: int) -> None:
    """Move engine time forward to `ts`, taking equity samples on the way."""
    if ts > st.ctl[CK_NOW]:
        st.ctl[CK_NOW] = ts
    interval = st.ctl[CI_EQUITY_INTERVAL]
    if interval > 0 and st.ctl[CK_NOW] >= st.ctl[CK_NEXT_EQUITY]:
        nxt = st.ctl[CK_NEXT_EQUITY]
        if nxt > 0:
            sample_equity(st)
        else:
            nxt = st.ctl[CK_NOW]
        while nxt <= st.ctl[CK_NOW]:
            nxt += interval
        st.ctl[CK_NEXT_EQUITY] = nxt


@kernel
def engine_event(st, kind: int, ref: int, aux: int, aux2: int, aux3: int) -> int:
    """Handle one scheduled event; returns the strategy to tell about an order (or none)."""
    if kind == EV_ORDER_ARRIVE or kind == EV_CANCEL_ARRIVE:
        slot = slot_of(st, ref)
        if slot >= 0:
            st.o[slot, O_INFLIGHT] -= 1
            if kind == EV_ORDER_ARRIVE:
                order_arrive(st, slot)
            else:
                cancel_arrive(st, slot)
            release_if_done(st, slot)
        return NO_STRATEGY
    if kind == EV_AMEND_ARRIVE:
        slot = slot_of(st, ref)
        if slot >= 0:
            st.o[slot, O_INFLIGHT] -= 1
            on_amend_arrive(st, slot, aux, aux2)
            release_if_done(st, slot)
        return NO_STRATEGY
    if kind == EV_REPORT:
        st.ctl[CK_STOP_FLAGS] |= BREAK_ORDER_UPDATE
        return on_report(st, ref, aux, aux2)
    if kind == EV_FILL_REPORT:
        st.ctl[CK_STOP_FLAGS] |= BREAK_FILL | BREAK_ORDER_UPDATE
        return on_fill_report(st, ref, aux, aux2, aux3)
    return NO_STRATEGY


@kernel
def strategy_fault(st, j: int) -> None:
    """Instance j's hook raised (its guard, engine/strategy.py, set CK_FAULT): disable it.

    The instance gets no more calls, the run goes on; an alert says which hook (its value is
    the hook's position in engine.strategy.HOOKS plus one) and the row keeps when.
    """
    hook = st.ctl[CK_FAULT]
    st.ctl[CK_FAULT] = 0
    st.ri[j, RI_ENABLED] = 0
    st.ri[j, RI_FAULT_TS] = st.ctl[CK_NOW]
    st.ri[j, RI_FAULT_HOOK] = hook
    alert(st, A_STRATEGY_ERROR, SEV_CRITICAL, 0, -1, -1, j, hook)


@entry
def run_chunk(
    st,
    events,
    rows,
    hooks,
    subs_start,
    subs_idx,
    max_events: int,
    break_mask: int,
    stop_ts: int,
    lat,
) -> int:
    """Process up to `max_events` events; return a STOP_* code saying why it returned.

    `lat` (int64) receives the cycle count each event took, at the index of the event within
    this call, while it has room; pass an empty array not to measure (engine/clock.py).
    """
    on_data, on_tick, on_order_update = hooks
    n = events.shape[0]
    last_ts = events[n - 1]["ts_local"] if n > 0 else 0
    st.ctl[CK_LAST_DATA_TS] = last_ts
    done = 0
    while True:
        if buffers_need_drain(st):
            return STOP_BUFFER_FULL
        cursor = st.ctl[CK_CURSOR]
        data_ts = events[cursor]["ts_local"] if cursor < n else NEVER
        heap_ts = next_time(st)
        if cursor >= n and heap_ts > last_ts and st.ctl[CI_LIVE] != 0:
            # Live: caught up with the network; scheduled events wait for their time.
            if heap_ts > stop_ts:
                if stop_ts > st.ctl[CK_NOW]:
                    st.ctl[CK_NOW] = stop_ts
                return STOP_TIME
        elif cursor >= n and heap_ts > last_ts:
            # After the data the venue still answers what is on its way (orders, cancels,
            # reports) against the last book; timers stop and strategies may send no new
            # orders (R_END_OF_DATA), so this ends.
            st.ctl[CK_DATA_ENDED] = 1
            while st.ctl[N_HEAP] > 0 and st.hp[0, H_KIND] == EV_TIMER:
                pop(st)
                st.ctl[C_TIMERS_AFTER_END] += 1
            if st.ctl[N_HEAP] == 0:
                return STOP_END_OF_DATA
            heap_ts = next_time(st)
        if done >= max_events:
            return STOP_CHUNK_DONE
        next_ts = data_ts if data_ts <= heap_ts else heap_ts
        if (break_mask & BREAK_TIME) != 0 and next_ts > stop_ts:
            if stop_ts > st.ctl[CK_NOW]:
                st.ctl[CK_NOW] = stop_ts
            return STOP_TIME
        measure = done < lat.shape[0]
        if measure:
            t0 = cycles()
        alerts_before = st.ctl[N_ALERTS]
        st.ctl[CK_STOP_FLAGS] = 0
        if data_ts <= heap_ts:
            ev = events[cursor]
            advance_clock(st, data_ts)
            inst = ev["instrument"]
            flags = ev["flags"]
            apply_market_event(st, inst, ev["kind"], ev["side"], ev["price"], ev["size"], flags)
            st.ctl[CK_CURSOR] = cursor + 1
            st.ctl[CK_DATA_EVENTS] += 1
            if (flags & FLAG_LAST) != 0:
                for k in range(subs_start[inst], subs_start[inst + 1]):
                    j = subs_idx[k]
                    if st.ri[j, RI_ENABLED] == 0:
                        continue
                    st.ctl[CK_CUR_STRAT] = j
                    st.ctl[C_STRATEGY_CALLS] += 1
                    on_data(rows[j], st, ev)
                    if st.ctl[CK_FAULT] != 0:
                        strategy_fault(st, j)
                st.ctl[CK_CUR_STRAT] = -1
        else:
            ts, kind, ref, aux, aux2, aux3 = pop(st)
            advance_clock(st, ts)
            st.ctl[CK_ENGINE_EVENTS] += 1
            if kind == EV_TIMER:
                if 0 <= ref < rows.shape[0] and st.ri[ref, RI_ENABLED] != 0:
                    st.ctl[CK_CUR_STRAT] = ref
                    st.ctl[C_STRATEGY_CALLS] += 1
                    on_tick(rows[ref], st, aux)
                    if st.ctl[CK_FAULT] != 0:
                        strategy_fault(st, ref)
                    st.ctl[CK_CUR_STRAT] = -1
            else:
                notify = engine_event(st, kind, ref, aux, aux2, aux3)
                if 0 <= notify < rows.shape[0] and st.ri[notify, RI_ENABLED] != 0:
                    st.ctl[CK_CUR_STRAT] = notify
                    st.ctl[C_STRATEGY_CALLS] += 1
                    on_order_update(rows[notify], st, ref, st.ctl[CK_LAST_STATUS])
                    if st.ctl[CK_FAULT] != 0:
                        strategy_fault(st, notify)
                    st.ctl[CK_CUR_STRAT] = -1
        if measure:
            lat[done] = cycles() - t0
        done += 1
        if st.ctl[N_ALERTS] > alerts_before:
            st.ctl[CK_STOP_FLAGS] |= BREAK_ALERT
        hit = st.ctl[CK_STOP_FLAGS] & break_mask
        if hit != 0:
            if (hit & BREAK_FILL) != 0:
                return STOP_FILL
            if (hit & BREAK_ALERT) != 0:
                return STOP_ALERT
            if (hit & BREAK_ORDER_UPDATE) != 0:
                return STOP_ORDER_UPDATE
            if (hit & BREAK_TRADE) != 0:
                return STOP_TRADE
