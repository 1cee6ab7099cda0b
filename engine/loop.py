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

from engine.book import apply_event, best_ask, best_bid, depth_at
from engine.codes import (
    BREAK_ALERT,
    BREAK_FILL,
    BREAK_ORDER_UPDATE,
    BREAK_TIME,
    BREAK_TRADE,
    EV_CANCEL_ARRIVE,
    EV_FILL_REPORT,
    EV_ORDER_ARRIVE,
    EV_REPORT,
    EV_TIMER,
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
from engine.execution import NO_STRATEGY, on_fill_report, on_report
from engine.jit import entry, kernel
from engine.oms import release_if_done, slot_of
from engine.portfolio import sample_equity
from engine.risk import mid_x2
from engine.scheduler import next_time, pop
from engine.state import (
    CI_EQUITY_INTERVAL,
    CK_CUR_STRAT,
    CK_CURSOR,
    CK_DATA_EVENTS,
    CK_ENGINE_EVENTS,
    CK_LAST_DATA_TS,
    CK_LAST_STATUS,
    CK_NEXT_EQUITY,
    CK_NOW,
    CK_STOP_FLAGS,
)
from engine.stats import C_STRATEGY_CALLS, C_TRADES_SEEN
from engine.venue import (
    cancel_arrive,
    has_interest,
    on_level,
    on_snapshot_done,
    on_trade,
    order_arrive,
    refresh_all,
)

INT64_MAX = 9223372036854775807


@kernel
def buffers_need_drain(st) -> bool:
    """A buffer is half full: stop so the Python side drains it before it could overflow."""
    return (
        st.journal.n[0] * 2 > st.journal.ts.shape[0]
        or st.fills.n[0] * 2 > st.fills.ts.shape[0]
        or st.alerts.n[0] * 2 > st.alerts.ts.shape[0]
        or st.port.eq_n[0] * 2 > st.port.eq_ts.shape[0]
    )


@kernel
def apply_market_event(
    st, inst: int, kind: int, side: int, price: int, size: int, flags: int
) -> None:
    """Apply one data row to the book, quotes and our resting orders."""
    if kind == KIND_BOOK_DELTA or kind == KIND_BOOK_SNAPSHOT:
        if has_interest(st, inst):
            old = depth_at(st.book, inst, side, price)
            apply_event(st.book, inst, kind, side, price, size)
            on_level(st, inst, side, price, old, size)
        else:
            apply_event(st.book, inst, kind, side, price, size)
        if kind == KIND_BOOK_SNAPSHOT and (flags & FLAG_LAST) != 0:
            on_snapshot_done(st, inst)
    elif kind == KIND_BOOK_CLEAR:
        apply_event(st.book, inst, kind, side, price, size)
        refresh_all(st, inst)
    elif kind == KIND_TRADE:
        st.counters[C_TRADES_SEEN] += 1
        st.market.last_trade_px[inst] = price
        st.market.last_trade_ts[inst] = st.clock[CK_NOW]
        if has_interest(st, inst):
            on_trade(st, inst, side, price, size, best_bid(st.book, inst), best_ask(st.book, inst))
        st.clock[CK_STOP_FLAGS] |= BREAK_TRADE
    elif kind == KIND_QUOTE:
        m = st.market
        if side > 0:
            m.q_bid_px[inst] = price
            m.q_bid_qty[inst] = size
        else:
            m.q_ask_px[inst] = price
            m.q_ask_qty[inst] = size
    if (flags & FLAG_LAST) != 0:
        m2 = mid_x2(st, inst)
        if m2 != 0:
            st.port.mark_x2[inst] = m2


@kernel
def _advance_clock(st, ts: int) -> None:
    if ts > st.clock[CK_NOW]:
        st.clock[CK_NOW] = ts
    interval = st.cfg_i[CI_EQUITY_INTERVAL]
    if interval > 0 and st.clock[CK_NOW] >= st.clock[CK_NEXT_EQUITY]:
        if st.clock[CK_NEXT_EQUITY] > 0:
            sample_equity(st)
        nxt = st.clock[CK_NEXT_EQUITY]
        if nxt == 0:
            nxt = st.clock[CK_NOW] + interval
        while nxt <= st.clock[CK_NOW]:
            nxt += interval
        st.clock[CK_NEXT_EQUITY] = nxt


@entry
def run_chunk(
    st, events, rows, hooks, subs_start, subs_idx, max_events: int, break_mask: int, stop_ts: int
) -> int:
    """Process up to `max_events` events; return a STOP_* code saying why it returned."""
    on_data, on_tick, on_order_update = hooks
    n = events.shape[0]
    last_ts = events[n - 1]["ts_local"] if n > 0 else 0
    st.clock[CK_LAST_DATA_TS] = last_ts
    done = 0
    while True:
        if buffers_need_drain(st):
            return STOP_BUFFER_FULL
        cursor = st.clock[CK_CURSOR]
        data_ts = events[cursor]["ts_local"] if cursor < n else INT64_MAX
        heap_ts = next_time(st)
        if cursor >= n and heap_ts > last_ts:
            return STOP_END_OF_DATA
        if done >= max_events:
            return STOP_CHUNK_DONE
        next_ts = data_ts if data_ts <= heap_ts else heap_ts
        if (break_mask & BREAK_TIME) != 0 and next_ts > stop_ts:
            if stop_ts > st.clock[CK_NOW]:
                st.clock[CK_NOW] = stop_ts
            return STOP_TIME
        alerts_before = st.alerts.n[0]
        st.clock[CK_STOP_FLAGS] = 0
        if data_ts <= heap_ts:
            ev = events[cursor]
            _advance_clock(st, data_ts)
            inst = ev["instrument"]
            flags = ev["flags"]
            apply_market_event(st, inst, ev["kind"], ev["side"], ev["price"], ev["size"], flags)
            st.clock[CK_CURSOR] = cursor + 1
            st.clock[CK_DATA_EVENTS] += 1
            if (flags & FLAG_LAST) != 0:
                for k in range(subs_start[inst], subs_start[inst + 1]):
                    j = subs_idx[k]
                    if st.port.enabled[j] == 0:
                        continue
                    st.clock[CK_CUR_STRAT] = j
                    st.counters[C_STRATEGY_CALLS] += 1
                    on_data(rows[j], st, ev)
                st.clock[CK_CUR_STRAT] = -1
        else:
            ts, kind, ref, aux, aux2, aux3 = pop(st)
            _advance_clock(st, ts)
            st.clock[CK_ENGINE_EVENTS] += 1
            notify = NO_STRATEGY
            if kind == EV_ORDER_ARRIVE or kind == EV_CANCEL_ARRIVE:
                slot = slot_of(st, ref)
                if slot >= 0:
                    st.orders.inflight[slot] -= 1
                    if kind == EV_ORDER_ARRIVE:
                        order_arrive(st, slot)
                    else:
                        cancel_arrive(st, slot)
                    release_if_done(st, slot)
            elif kind == EV_REPORT:
                notify = on_report(st, ref, aux, aux2)
                st.clock[CK_STOP_FLAGS] |= BREAK_ORDER_UPDATE
            elif kind == EV_FILL_REPORT:
                notify = on_fill_report(st, ref, aux, aux2, aux3)
                st.clock[CK_STOP_FLAGS] |= BREAK_FILL | BREAK_ORDER_UPDATE
            elif kind == EV_TIMER:
                if ref >= 0 and ref < rows.shape[0] and st.port.enabled[ref] != 0:
                    st.clock[CK_CUR_STRAT] = ref
                    st.counters[C_STRATEGY_CALLS] += 1
                    on_tick(rows[ref], st, aux)
                    st.clock[CK_CUR_STRAT] = -1
            if notify >= 0 and notify < rows.shape[0] and st.port.enabled[notify] != 0:
                status = st.clock[CK_LAST_STATUS]
                st.clock[CK_CUR_STRAT] = notify
                st.counters[C_STRATEGY_CALLS] += 1
                on_order_update(rows[notify], st, ref, status)
                st.clock[CK_CUR_STRAT] = -1
        done += 1
        if st.alerts.n[0] > alerts_before:
            st.clock[CK_STOP_FLAGS] |= BREAK_ALERT
        hit = st.clock[CK_STOP_FLAGS] & break_mask
        if hit != 0:
            if (hit & BREAK_FILL) != 0:
                return STOP_FILL
            if (hit & BREAK_ALERT) != 0:
                return STOP_ALERT
            if (hit & BREAK_ORDER_UPDATE) != 0:
                return STOP_ORDER_UPDATE
            if (hit & BREAK_TRADE) != 0:
                return STOP_TRADE
