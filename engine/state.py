"""All engine state as preallocated arrays (struct of arrays), grouped in named tuples.

Jitted code receives an `EngineState` and reads or writes its arrays; nothing in it is a
Python object, so the loop runs without the GIL and a checkpoint is a copy of the arrays
(`engine/checkpoint.py`). Capacities are fixed at creation: a buffer that fills up (journal,
fills, alerts, equity) makes the loop stop with STOP_BUFFER_FULL so the Python side drains it
(`engine/buffers.py`); nothing is overwritten or dropped.

Order handles: a public order id is `generation << SLOT_BITS | slot`. Slots are reused when an
order ends (pooling); the generation makes a stale id from a previous occupant detectable.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np

from engine.book import BookState, new_book
from engine.codes import (
    N_STATES,
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
)

SLOT_BITS: Final = 20
SLOT_MASK: Final = (1 << SLOT_BITS) - 1
MAX_ORDERS: Final = 1 << SLOT_BITS

# Indices into EngineState.cfg_i (int64 settings).
CI_ENTRY_LATENCY: Final = 0  # ns from submit to the venue
CI_CANCEL_LATENCY: Final = 1  # ns from cancel request to the venue
CI_REPORT_LATENCY: Final = 2  # ns from the venue's report to the engine (ack latency)
CI_QUEUE_MODEL: Final = 3  # QM_* code
CI_EQUITY_INTERVAL: Final = 4  # ns between equity-curve samples (0: on fills only)
CI_N_INSTRUMENTS: Final = 5
CI_N_STRATEGIES: Final = 6
CI_SPOOF_WINDOW: Final = 7  # ns: a large order canceled within this is a spoofing candidate
CI_SPOOF_TICKS_AWAY: Final = 8  # ticks from the touch beyond which a large order is "away"
CI_LAYER_LEVELS: Final = 9  # distinct levels placed and pulled together that flag layering
CI_LAYER_WINDOW: Final = 10  # ns window for layering
CI_SUBMIT_WINDOW: Final = 11  # ns window of the submit-rate limit
CI_SUBMIT_MAX: Final = 12  # submits per window per strategy (0: unlimited)
CI_MAX_OPEN_ORDERS: Final = 13  # per strategy (0: unlimited)
CI_DRAWDOWN_ACTION: Final = 14  # TS_REDUCE_ONLY or TS_HALTED when max drawdown is hit
N_CFG_I: Final = 32

# Indices into EngineState.cfg_f (float settings).
CF_MAKER_FEE: Final = 0  # fee rate on notional (0.0002 = 2 bp); negative is a rebate
CF_TAKER_FEE: Final = 1
CF_PRICE_BAND: Final = 2  # max |price - mid| / mid for limit orders (0: off)
CF_MAX_DRAWDOWN: Final = 3  # quote currency per strategy (0: off)
N_CFG_F: Final = 16

# Indices into EngineState.clock.
CK_NOW: Final = 0  # engine time, ns (local clock)
CK_CURSOR: Final = 1  # index of the next data event
CK_DATA_EVENTS: Final = 2  # data events processed
CK_ENGINE_EVENTS: Final = 3  # scheduled events processed
CK_SEQ: Final = 4  # tie-break sequence of scheduled events
CK_NEXT_CID: Final = 5  # next client order id (never reused)
CK_CUR_STRAT: Final = 6  # strategy instance whose hook is running (-1: none)
CK_TRADING_STATE: Final = 7  # TS_* of the whole engine (kill switch)
CK_NEXT_EQUITY: Final = 8  # engine time of the next equity sample
CK_STOP_FLAGS: Final = 9  # bits set by handlers for breakpoints (BREAK_*)
CK_LAST_DATA_TS: Final = 10
CK_LAST_STATUS: Final = 11  # OMS state of the order the last report was about
N_CLOCK: Final = 16

# Per-instrument float columns of EngineState.inst_f.
IF_TICK: Final = 0  # tick size as a float (for notional and PnL only, never for matching)
IF_LOT: Final = 1
IF_MULT: Final = 2  # contract multiplier
IF_MAX_NOTIONAL: Final = 3  # per order, quote currency (0: off)
N_INST_F: Final = 4
# Per-instrument int columns of EngineState.inst_i.
II_MAX_ORDER_QTY: Final = 0  # lots (0: off)
II_MAX_POSITION: Final = 1  # lots per strategy (0: off)
II_SPOOF_MIN_QTY: Final = 2  # lots: orders at least this large are watched for spoofing (0: off)
N_INST_I: Final = 4


class Orders(NamedTuple):
    """The order pool. OMS view (status, filled) and venue view (v_*) of every order."""

    status: np.ndarray  # int8  ST_*
    side: np.ndarray  # int8
    otype: np.ndarray  # int8  OT_*
    tif: np.ndarray  # int8  TIF_*
    flags: np.ndarray  # int16 OF_*
    inst: np.ndarray  # int32
    strat: np.ndarray  # int32 (-1: manual)
    price: np.ndarray  # int64 ticks (limit price; 0 for market)
    qty: np.ndarray  # int64 lots
    filled: np.ndarray  # int64 lots reported to the engine
    v_filled: np.ndarray  # int64 lots filled at the venue (reports may still be in flight)
    v_state: np.ndarray  # int8  0 not at venue, 1 resting, 2 done at venue
    queue_ahead: np.ndarray  # int64 lots ahead of us at our price (resting orders)
    pending_trade: np.ndarray  # int64 traded lots at our level not yet seen in a delta
    ts_created: np.ndarray  # int64
    ts_venue: np.ndarray  # int64 arrival at the venue
    ts_last: np.ndarray  # int64 last transition
    oid: np.ndarray  # int64 public id (generation << SLOT_BITS | slot)
    cid: np.ndarray  # int64 client order id, a sequence never reused
    gen: np.ndarray  # int64 slot generation
    inflight: np.ndarray  # int32 scheduled events that still refer to this order
    nxt: np.ndarray  # int32 next resting order of the same instrument and side (-1: end)
    prv: np.ndarray  # int32
    free: np.ndarray  # int32 stack of free slots
    n: np.ndarray  # int64[4]: [free_top, live, peak_live, 0]
    rest_head: np.ndarray  # int32 [n_inst, 2] first resting order (0: bids, 1: asks)


class Journal(NamedTuple):
    """Append-only audit journal of every OMS transition (and every refused one)."""

    ts: np.ndarray
    oid: np.ndarray
    cid: np.ndarray
    inst: np.ndarray  # int32
    strat: np.ndarray  # int32
    from_state: np.ndarray  # int8
    to_state: np.ndarray  # int8
    reason: np.ndarray  # int16
    price: np.ndarray
    qty: np.ndarray
    n: np.ndarray  # int64[2]: [rows, rows drained before]


class Fills(NamedTuple):
    """Every fill, at venue time; `reported` once the engine has seen it."""

    ts: np.ndarray  # venue time
    oid: np.ndarray
    cid: np.ndarray
    inst: np.ndarray  # int32
    strat: np.ndarray  # int32
    side: np.ndarray  # int8
    liq: np.ndarray  # int8 LIQ_*
    price: np.ndarray
    qty: np.ndarray
    fee: np.ndarray  # float64, quote currency
    n: np.ndarray  # int64[2]: [rows, rows drained before]


class Heap(NamedTuple):
    """Scheduled engine events, a binary min-heap on (ts, seq)."""

    ts: np.ndarray
    seq: np.ndarray
    kind: np.ndarray  # int64 EV_*
    ref: np.ndarray  # order id, fill row or strategy instance
    aux: np.ndarray  # report: new state; timer: user tag
    aux2: np.ndarray  # report: reason code; fill: price
    aux3: np.ndarray  # fill: liquidity (LIQ_*)
    n: np.ndarray  # int64[1]


class Alerts(NamedTuple):
    """Risk and surveillance alerts with reason codes."""

    ts: np.ndarray
    code: np.ndarray  # int16 A_*
    severity: np.ndarray  # int8 SEV_*
    reason: np.ndarray  # int16 R_* (for denials)
    oid: np.ndarray
    inst: np.ndarray  # int32
    strat: np.ndarray  # int32
    value: np.ndarray  # int64 detail (qty, levels, ...)
    n: np.ndarray  # int64[2]


class Portfolio(NamedTuple):
    """Positions and PnL per strategy instance and instrument (row S is manual trading)."""

    pos: np.ndarray  # int64 [S+1, I] lots
    cost: np.ndarray  # float64 [S+1, I] ticks*lots of the open position (avg = cost/pos)
    realized: np.ndarray  # float64 [S+1, I] quote currency
    fees: np.ndarray  # float64 [S+1, I]
    volume: np.ndarray  # int64 [S+1, I] lots traded
    peak: np.ndarray  # float64 [S+1] peak equity
    max_dd: np.ndarray  # float64 [S+1] worst drawdown seen
    strat_state: np.ndarray  # int8 [S+1] TS_* per strategy (drawdown rule)
    enabled: np.ndarray  # int8 [S+1] 0 once a strategy instance raised (it gets no more calls)
    open_orders: np.ndarray  # int64 [S+1] live orders
    open_buy: np.ndarray  # int64 [S+1, I] lots of live buy orders not yet filled
    open_sell: np.ndarray  # int64 [S+1, I]
    cancel_ring: np.ndarray  # int64 [S+1, 16, 4] recent cancels (ts, inst, side, price)
    cancel_pos: np.ndarray  # int64 [S+1]
    last_layer_alert: np.ndarray  # int64 [S+1]
    submit_ring: np.ndarray  # int64 [S+1, R] last submit times (rate limit)
    submit_pos: np.ndarray  # int64 [S+1]
    mark_x2: np.ndarray  # int64 [I] twice the mark price in ticks (mid, else last trade)
    eq_ts: np.ndarray  # equity curve
    eq_total: np.ndarray  # float64 equity of all strategies and manual
    eq_pos: np.ndarray  # int64 net position of instrument 0 (for the price chart)
    eq_n: np.ndarray  # int64[2]


class Market(NamedTuple):
    """Top of book from quote events, last trades, and liquidity our fills consumed."""

    q_bid_px: np.ndarray  # int64 [I]
    q_bid_qty: np.ndarray
    q_ask_px: np.ndarray
    q_ask_qty: np.ndarray
    last_trade_px: np.ndarray  # int64 [I]
    last_trade_ts: np.ndarray
    cons_px: np.ndarray  # int64 [I, C]  levels where our taker fills consumed liquidity
    cons_side: np.ndarray  # int8 [I, C]
    cons_qty: np.ndarray  # int64 [I, C]
    cons_n: np.ndarray  # int64 [I]


class EngineState(NamedTuple):
    """Everything the jitted loop reads and writes."""

    book: BookState
    orders: Orders
    journal: Journal
    fills: Fills
    heap: Heap
    alerts: Alerts
    port: Portfolio
    market: Market
    clock: np.ndarray  # int64 [N_CLOCK]
    cfg_i: np.ndarray  # int64 [N_CFG_I]
    cfg_f: np.ndarray  # float64 [N_CFG_F]
    inst_i: np.ndarray  # int64 [I, N_INST_I]
    inst_f: np.ndarray  # float64 [I, N_INST_F]
    counters: np.ndarray  # int64 [64] statistics (C_* in engine/stats.py)
    table: np.ndarray  # bool [N_STATES, N_STATES] the OMS transition table (engine/oms.py)


def transition_table() -> np.ndarray:
    """The OMS state machine: table[from, to] is True when the transition is admitted.

    Beyond the happy path it admits what real venues do: a fill racing a cancel
    (pending_cancel -> partially_filled/filled, canceled -> filled when the fill report
    arrives after the cancel report), a failed cancel (pending_cancel -> accepted or
    partially_filled), and repeated pending requests (pending_cancel -> pending_cancel).
    """
    t = np.zeros((N_STATES, N_STATES), dtype=np.bool_)
    working = (
        ST_PARTIALLY_FILLED,
        ST_FILLED,
        ST_PENDING_CANCEL,
        ST_PENDING_UPDATE,
        ST_CANCELED,
        ST_EXPIRED,
    )
    allow = {
        ST_INITIALIZED: (ST_DENIED, ST_SUBMITTED),
        ST_SUBMITTED: (ST_ACCEPTED, ST_REJECTED, *working),
        ST_ACCEPTED: working,
        ST_PARTIALLY_FILLED: working,
        ST_PENDING_CANCEL: (
            ST_PENDING_CANCEL,
            ST_CANCELED,
            ST_ACCEPTED,
            ST_PARTIALLY_FILLED,
            ST_FILLED,
            ST_EXPIRED,
        ),
        ST_PENDING_UPDATE: (ST_PENDING_UPDATE, ST_ACCEPTED, *working),
        ST_CANCELED: (ST_FILLED,),
    }
    for a, targets in allow.items():
        for b in targets:
            t[a, b] = True
    return t


def _z(n, dtype) -> np.ndarray:
    return np.zeros(n, dtype=dtype)


def new_state(
    n_instruments: int,
    n_strategies: int,
    *,
    max_orders: int = 65536,
    journal_capacity: int = 1 << 18,
    fills_capacity: int = 1 << 16,
    heap_capacity: int = 1 << 16,
    alerts_capacity: int = 1 << 12,
    equity_capacity: int = 1 << 14,
    book_capacity: int = 8192,
    consumed_capacity: int = 64,
    submit_ring: int = 64,
) -> EngineState:
    """Allocate a zeroed engine state (configure it with engine.config.configure)."""
    i, s, m = int(n_instruments), int(n_strategies) + 1, int(max_orders)
    if not 1 <= m <= MAX_ORDERS:
        raise ValueError(f"max_orders must be in 1..{MAX_ORDERS}")
    orders = Orders(
        status=_z(m, np.int8),
        side=_z(m, np.int8),
        otype=_z(m, np.int8),
        tif=_z(m, np.int8),
        flags=_z(m, np.int16),
        inst=_z(m, np.int32),
        strat=_z(m, np.int32),
        price=_z(m, np.int64),
        qty=_z(m, np.int64),
        filled=_z(m, np.int64),
        v_filled=_z(m, np.int64),
        v_state=_z(m, np.int8),
        queue_ahead=_z(m, np.int64),
        pending_trade=_z(m, np.int64),
        ts_created=_z(m, np.int64),
        ts_venue=_z(m, np.int64),
        ts_last=_z(m, np.int64),
        oid=np.full(m, -1, np.int64),
        cid=_z(m, np.int64),
        gen=_z(m, np.int64),
        inflight=_z(m, np.int32),
        nxt=np.full(m, -1, np.int32),
        prv=np.full(m, -1, np.int32),
        free=np.arange(m - 1, -1, -1, dtype=np.int32),  # pop from the end: slot 0 first
        n=np.array([m, 0, 0, 0], np.int64),
        rest_head=np.full((i, 2), -1, np.int32),
    )
    jc = int(journal_capacity)
    journal = Journal(
        ts=_z(jc, np.int64),
        oid=_z(jc, np.int64),
        cid=_z(jc, np.int64),
        inst=_z(jc, np.int32),
        strat=_z(jc, np.int32),
        from_state=_z(jc, np.int8),
        to_state=_z(jc, np.int8),
        reason=_z(jc, np.int16),
        price=_z(jc, np.int64),
        qty=_z(jc, np.int64),
        n=_z(2, np.int64),
    )
    fc = int(fills_capacity)
    fills = Fills(
        ts=_z(fc, np.int64),
        oid=_z(fc, np.int64),
        cid=_z(fc, np.int64),
        inst=_z(fc, np.int32),
        strat=_z(fc, np.int32),
        side=_z(fc, np.int8),
        liq=_z(fc, np.int8),
        price=_z(fc, np.int64),
        qty=_z(fc, np.int64),
        fee=_z(fc, np.float64),
        n=_z(2, np.int64),
    )
    hc = int(heap_capacity)
    heap = Heap(
        ts=_z(hc, np.int64),
        seq=_z(hc, np.int64),
        kind=_z(hc, np.int64),
        ref=_z(hc, np.int64),
        aux=_z(hc, np.int64),
        aux2=_z(hc, np.int64),
        aux3=_z(hc, np.int64),
        n=_z(1, np.int64),
    )
    ac = int(alerts_capacity)
    alerts = Alerts(
        ts=_z(ac, np.int64),
        code=_z(ac, np.int16),
        severity=_z(ac, np.int8),
        reason=_z(ac, np.int16),
        oid=_z(ac, np.int64),
        inst=_z(ac, np.int32),
        strat=_z(ac, np.int32),
        value=_z(ac, np.int64),
        n=_z(2, np.int64),
    )
    ec = int(equity_capacity)
    port = Portfolio(
        pos=_z((s, i), np.int64),
        cost=_z((s, i), np.float64),
        realized=_z((s, i), np.float64),
        fees=_z((s, i), np.float64),
        volume=_z((s, i), np.int64),
        peak=_z(s, np.float64),
        max_dd=_z(s, np.float64),
        strat_state=_z(s, np.int8),
        enabled=np.ones(s, np.int8),
        open_orders=_z(s, np.int64),
        open_buy=_z((s, i), np.int64),
        open_sell=_z((s, i), np.int64),
        cancel_ring=np.full((s, 16, 4), np.iinfo(np.int64).min, np.int64),
        cancel_pos=_z(s, np.int64),
        last_layer_alert=np.full(s, np.iinfo(np.int64).min, np.int64),
        submit_ring=np.full((s, int(submit_ring)), np.iinfo(np.int64).min, np.int64),
        submit_pos=_z(s, np.int64),
        mark_x2=_z(i, np.int64),
        eq_ts=_z(ec, np.int64),
        eq_total=_z(ec, np.float64),
        eq_pos=_z(ec, np.int64),
        eq_n=_z(2, np.int64),
    )
    cc = int(consumed_capacity)
    market = Market(
        q_bid_px=_z(i, np.int64),
        q_bid_qty=_z(i, np.int64),
        q_ask_px=_z(i, np.int64),
        q_ask_qty=_z(i, np.int64),
        last_trade_px=_z(i, np.int64),
        last_trade_ts=_z(i, np.int64),
        cons_px=_z((i, cc), np.int64),
        cons_side=_z((i, cc), np.int8),
        cons_qty=_z((i, cc), np.int64),
        cons_n=_z(i, np.int64),
    )
    clock = _z(N_CLOCK, np.int64)
    clock[CK_CUR_STRAT] = -1
    clock[CK_NEXT_CID] = 1
    cfg_i = _z(N_CFG_I, np.int64)
    cfg_i[CI_N_INSTRUMENTS] = i
    cfg_i[CI_N_STRATEGIES] = s - 1
    return EngineState(
        book=new_book(i, book_capacity),
        orders=orders,
        journal=journal,
        fills=fills,
        heap=heap,
        alerts=alerts,
        port=port,
        market=market,
        clock=clock,
        cfg_i=cfg_i,
        cfg_f=_z(N_CFG_F, np.float64),
        inst_i=_z((i, N_INST_I), np.int64),
        inst_f=_z((i, N_INST_F), np.float64),
        counters=_z(64, np.int64),
        table=transition_table(),
    )
