"""All engine state as a few preallocated 2-D tables, grouped in one named tuple.

Jitted code receives an `EngineState` and reads or writes its arrays; nothing in it is a
Python object, so the loop runs without the GIL and a checkpoint is a copy of the arrays
(engine/runner.py). Capacities are fixed at creation: a buffer that fills up (journal, fills,
alerts, equity) makes the loop stop with STOP_BUFFER_FULL so the Python side drains it;
nothing is overwritten or dropped.

Why tables and not one array per field: numba passes a named tuple of arrays by value, and a
call that LLVM does not inline copies every array's descriptor. With one array per field (about
110 arrays) such a call measured 740 ns; with 30 arrays, 29 ns; with 8, 8 ns. So orders,
journal rows, fills, heap entries and alerts are rows of int64 tables indexed by the column
constants below, and scalars live in one control vector `ctl`.

Order handles: a public order id is `generation << SLOT_BITS | slot`. Slots are reused when an
order ends (pooling); the generation makes a stale id from a previous occupant detectable.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np

from engine.book import DEFAULT_CAPACITY, BookState, new_book
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
from engine.risk_rules import RULE_PARAMS

SLOT_BITS: Final = 20
SLOT_MASK: Final = (1 << SLOT_BITS) - 1
MAX_ORDERS: Final = 1 << SLOT_BITS

# ---- columns of EngineState.o (orders), int64 [max_orders, O_N]
O_STATUS: Final = 0  # ST_* (OMS view)
O_SIDE: Final = 1
O_OTYPE: Final = 2  # OT_*
O_TIF: Final = 3  # TIF_*
O_FLAGS: Final = 4  # OF_*
O_INST: Final = 5
O_STRAT: Final = 6  # strategy instance, -1 for manual
O_PRICE: Final = 7  # ticks (0 for market orders)
O_QTY: Final = 8  # lots
O_FILLED: Final = 9  # lots reported filled to the engine
O_VFILLED: Final = 10  # lots filled at the venue (reports may be in flight)
O_VSTATE: Final = 11  # V_* venue view: not there, resting, done
O_QAHEAD: Final = 12  # lots ahead of us at our price (resting orders)
O_PTRADE: Final = 13  # traded lots at our level not yet seen in a delta
O_TS_CREATED: Final = 14
O_TS_VENUE: Final = 15
O_TS_LAST: Final = 16
O_OID: Final = 17  # public id (generation << SLOT_BITS | slot), -1 when free
O_CID: Final = 18  # client order id, a sequence never reused
O_GEN: Final = 19  # slot generation
O_INFLIGHT: Final = 20  # scheduled events still referring to this order
O_NXT: Final = 21  # next resting order at the same price level, in time order (-1: last)
O_PRV: Final = 22
O_FREE: Final = 23  # o[k, O_FREE] is entry k of the free-slot stack (not about order k)
O_N: Final = 24

# ---- journal rows, int64 [capacity, J_N]
J_TS: Final = 0
J_OID: Final = 1
J_CID: Final = 2
J_INST: Final = 3
J_STRAT: Final = 4
J_FROM: Final = 5
J_TO: Final = 6
J_REASON: Final = 7
J_PRICE: Final = 8
J_QTY: Final = 9
J_N: Final = 10
JOURNAL_COLUMNS: Final = (
    "ts",
    "oid",
    "cid",
    "inst",
    "strat",
    "from_state",
    "to_state",
    "reason",
    "price",
    "qty",
)

# ---- fills, int64 [capacity, F_N] plus fee float64 [capacity]
F_TS: Final = 0  # venue time
F_OID: Final = 1
F_CID: Final = 2
F_INST: Final = 3
F_STRAT: Final = 4
F_SIDE: Final = 5
F_LIQ: Final = 6  # LIQ_*
F_PRICE: Final = 7
F_QTY: Final = 8
F_N: Final = 9
FILL_COLUMNS: Final = ("ts", "oid", "cid", "inst", "strat", "side", "liq", "price", "qty")

# ---- heap entries, int64 [capacity, H_N]
H_TS: Final = 0
H_SEQ: Final = 1
H_KIND: Final = 2  # EV_*
H_REF: Final = 3  # order id or strategy instance
H_AUX: Final = 4  # report: state; fill: qty; timer: tag
H_AUX2: Final = 5  # report: reason; fill: price
H_AUX3: Final = 6  # fill: liquidity
H_N: Final = 7

# ---- alerts, int64 [capacity, AL_N]
AL_TS: Final = 0
AL_CODE: Final = 1  # A_*
AL_SEV: Final = 2  # SEV_*
AL_REASON: Final = 3  # R_*
AL_OID: Final = 4
AL_INST: Final = 5
AL_STRAT: Final = 6
AL_VALUE: Final = 7
AL_N: Final = 8
ALERT_COLUMNS: Final = ("ts", "code", "severity", "reason", "oid", "inst", "strat", "value")

# ---- positions, int64 [rows, instruments, PI_N] and float64 [rows, instruments, PF_N]
PI_POS: Final = 0  # lots
PI_VOLUME: Final = 1  # lots traded
PI_OPEN_BUY: Final = 2  # lots of live buy orders not yet filled
PI_OPEN_SELL: Final = 3
PI_N: Final = 4
PF_COST: Final = 0  # ticks*lots of the open position (average price = cost / pos)
PF_REALIZED: Final = 1  # quote currency
PF_FEES: Final = 2  # quote currency
PF_N: Final = 3

# ---- per strategy row (row S is manual trading), int64 [rows, RI_N], float64 [rows, RF_N]
RI_STATE: Final = 0  # TS_* of the row (drawdown rule)
RI_ENABLED: Final = 1  # 0 once an instance raised: it gets no more calls
RI_OPEN_ORDERS: Final = 2
RI_SUBMIT_POS: Final = 3
RI_CANCEL_POS: Final = 4
RI_LAST_LAYER: Final = 5  # time of the last layering alert
RI_FAULT_TS: Final = 6  # when the instance raised (RI_ENABLED 0)
RI_FAULT_HOOK: Final = 7  # which hook raised: position in engine.strategy.HOOKS, plus one
RI_N: Final = 8
RF_PEAK: Final = 0
RF_MAX_DD: Final = 1
RF_N: Final = 2
CANCEL_RING: Final = 16  # recent cancels kept per row for the layering check
CR_TS: Final = 0
CR_INST: Final = 1
CR_SIDE: Final = 2
CR_PRICE: Final = 3

# ---- per instrument market view and limits, int64 [instruments, MK_N]
MK_QBID_PX: Final = 0  # top of book from quote events
MK_QBID_QTY: Final = 1
MK_QASK_PX: Final = 2
MK_QASK_QTY: Final = 3
MK_LAST_PX: Final = 4  # last recorded trade
MK_LAST_TS: Final = 5
MK_MARK_X2: Final = 6  # twice the mark price in ticks
MK_CONS_N: Final = 7  # entries in the consumed-liquidity table
MK_LV_BID: Final = 8  # price levels holding resting orders of ours on the bid (in `lv`)
MK_LV_ASK: Final = 9
MK_MAX_ORDER_QTY: Final = 10  # lots (0: off)
MK_MAX_POSITION: Final = 11  # lots per strategy (0: off)
MK_SPOOF_MIN_QTY: Final = 12  # lots (0: off)
MK_MID_X2: Final = 13  # mid_x2 after the last whole venue message (0 when unknown)
MK_IN_SYNC: Final = 14  # live: 1 while the instrument's book is in sync (orders allowed)
MK_N: Final = 15
# ---- our resting orders by price level, int64 [instruments, 2 sides, own_levels, LV_N]:
# levels sorted like the book, best at the end (bids ascending, asks descending); each level
# holds a FIFO of order slots linked through O_NXT / O_PRV.
LV_PX: Final = 0
LV_FIRST: Final = 1
LV_LAST: Final = 2
LV_COUNT: Final = 3
LV_N: Final = 4
CS_PX: Final = 0  # columns of the consumed-liquidity table [instruments, capacity, 3]
CS_SIDE: Final = 1
CS_QTY: Final = 2

# ---- the outbox (live mode): requests for the venue adapter, int64 [capacity, OUT_N]
OUT_KIND: Final = 0  # OUT_NEW / OUT_CANCEL / OUT_AMEND (engine/live.py)
OUT_OID: Final = 1
OUT_CID: Final = 2
OUT_INST: Final = 3
OUT_STRAT: Final = 4
OUT_SIDE: Final = 5
OUT_PRICE: Final = 6  # ticks (the new price of an amend)
OUT_QTY: Final = 7  # lots (the new total quantity of an amend)
OUT_OTYPE: Final = 8
OUT_TIF: Final = 9
OUT_FLAGS: Final = 10
OUT_TS: Final = 11
OUT_N: Final = 12
OUT_COLUMNS: Final = (
    "kind",
    "oid",
    "cid",
    "inst",
    "strat",
    "side",
    "price",
    "qty",
    "otype",
    "tif",
    "flags",
    "ts",
)
OUT_NEW: Final = 1
OUT_CANCEL: Final = 2
OUT_AMEND: Final = 3

# ---- per instrument floats, float64 [instruments, IF_N]
IF_TICK: Final = 0  # tick size as a float (for notional and PnL only, never for matching)
IF_LOT: Final = 1
IF_MULT: Final = 2  # contract multiplier
IF_MAX_NOTIONAL: Final = 3  # per order, quote currency (0: off)
IF_MIN_NOTIONAL: Final = 4  # the venue's minimum per order, quote currency (0: off)
IF_N: Final = 5

# ---- the control vector ctl, int64: clock, settings, buffer counts, statistics
CK_NOW: Final = 0  # engine time, ns (local clock)
CK_CURSOR: Final = 1  # index of the next data event
CK_DATA_EVENTS: Final = 2
CK_ENGINE_EVENTS: Final = 3
CK_SEQ: Final = 4  # tie-break sequence of scheduled events
CK_NEXT_CID: Final = 5  # next client order id (never reused)
CK_CUR_STRAT: Final = 6  # strategy instance whose hook is running (-1: none)
CK_TRADING_STATE: Final = 7  # TS_* of the whole engine (kill switch)
CK_NEXT_EQUITY: Final = 8
CK_STOP_FLAGS: Final = 9  # BREAK_* bits raised by the current event
CK_LAST_DATA_TS: Final = 10
CK_LAST_STATUS: Final = 11  # OMS state of the order the last report was about
CK_FAULT: Final = 12  # set by a strategy hook's guard when the hook raised (its code)
CK_DATA_ENDED: Final = 13  # 1 once the data ended: only scheduled events remain
CK_RULE_CODE: Final = 14  # the code the user risk rule returned for the last order it denied
# settings
CI_ENTRY_LATENCY: Final = 16  # ns from submit to the venue
CI_CANCEL_LATENCY: Final = 17
CI_REPORT_LATENCY: Final = 18  # ns from the venue's report to the engine
CI_QUEUE_MODEL: Final = 19  # QM_*
CI_EQUITY_INTERVAL: Final = 20  # ns between equity samples (0: only at the end)
CI_N_INSTRUMENTS: Final = 21
CI_N_STRATEGIES: Final = 22
CI_SPOOF_WINDOW: Final = 23
CI_SPOOF_TICKS_AWAY: Final = 24
CI_LAYER_LEVELS: Final = 25
CI_LAYER_WINDOW: Final = 26
CI_SUBMIT_WINDOW: Final = 27
CI_SUBMIT_MAX: Final = 28
CI_MAX_OPEN_ORDERS: Final = 29
CI_DRAWDOWN_ACTION: Final = 30
CI_LIVE: Final = 31  # 1: orders leave through the outbox to a real venue (engine/live.py)
CI_RULE_ADDR: Final = 32  # address of the user's risk rule (engine/risk_rules.py), 0: none
# buffer fill counts
N_JOURNAL: Final = 40
N_JOURNAL_DRAINED: Final = 41
N_FILLS: Final = 42
N_FILLS_DRAINED: Final = 43
N_HEAP: Final = 44
N_ALERTS: Final = 45
N_ALERTS_DRAINED: Final = 46
N_EQUITY: Final = 47
N_EQUITY_DRAINED: Final = 48
N_FREE_TOP: Final = 49  # entries on the free-slot stack
N_LIVE: Final = 50  # orders occupying a slot
N_PEAK_LIVE: Final = 51
N_OUT: Final = 52  # rows in the outbox
STATS_BASE: Final = 64  # statistics C_* (engine/stats.py) live at STATS_BASE + C_*
TT_BASE: Final = 112  # the OMS transition table: ctl[TT_BASE + from] bit `to` set = admitted
N_CTL: Final = 128

# ---- settings as floats, float64 [CF_N]
CF_MAKER_FEE: Final = 0
CF_TAKER_FEE: Final = 1
CF_PRICE_BAND: Final = 2
CF_MAX_DRAWDOWN: Final = 3
CF_RULE_PARAMS: Final = 16  # cfg[16:16 + RULE_PARAMS]: the user risk rule's parameters
CF_N: Final = 16 + RULE_PARAMS


class EngineState(NamedTuple):
    """Everything the jitted loop reads and writes (see the column constants above).

    Keep the number of arrays down: calls that pass the state pass every array's fields as
    arguments, and adding two arrays to the 28 there were cost 40 % of the throughput of a
    strategy that trades. New scalars go into `ctl` / `cfg`, new columns into a table.
    """

    book: BookState
    o: np.ndarray  # int64 [max_orders, O_N] orders
    jr: np.ndarray  # int64 [journal_capacity, J_N] audit journal
    fl: np.ndarray  # int64 [fills_capacity, F_N] fills
    fee: np.ndarray  # float64 [fills_capacity] fee of each fill, quote currency
    hp: np.ndarray  # int64 [heap_capacity, H_N] scheduled events (binary heap)
    al: np.ndarray  # int64 [alerts_capacity, AL_N] alerts
    pi: np.ndarray  # int64 [rows, instruments, PI_N] positions
    pf: np.ndarray  # float64 [rows, instruments, PF_N] cost, PnL, fees
    ri: np.ndarray  # int64 [rows, RI_N] per strategy row
    rf: np.ndarray  # float64 [rows, RF_N] peak equity, worst drawdown
    rings: np.ndarray  # int64 [rows, submit_ring + 4 * CANCEL_RING] rate limit and cancels
    mk: np.ndarray  # int64 [instruments, MK_N] market view, limits, own level counts
    lv: np.ndarray  # int64 [instruments, 2, own_levels, LV_N] our resting orders by level
    cons: np.ndarray  # int64 [instruments, consumed_capacity, 3] liquidity our fills used
    eq: np.ndarray  # int64 [equity_capacity, 2] equity samples: time, net position of inst 0
    eqf: np.ndarray  # float64 [equity_capacity] equity samples: equity of all rows
    ctl: np.ndarray  # int64 [N_CTL] clock, settings, counts, statistics
    cfg: np.ndarray  # float64 [CF_N] settings as floats
    instf: np.ndarray  # float64 [instruments, IF_N]
    out: np.ndarray  # int64 [outbox_capacity, OUT_N] live: requests for the venue adapter


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
        # The venue can refuse an order canceled before it arrived (post-only would cross).
        ST_PENDING_CANCEL: (
            ST_PENDING_CANCEL,
            ST_CANCELED,
            ST_ACCEPTED,
            ST_PARTIALLY_FILLED,
            ST_FILLED,
            ST_EXPIRED,
            ST_REJECTED,
        ),
        ST_PENDING_UPDATE: (ST_PENDING_UPDATE, ST_ACCEPTED, *working),
        ST_CANCELED: (ST_FILLED,),
    }
    for a, targets in allow.items():
        for b in targets:
            t[a, b] = True
    return t


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
    book_capacity: int = DEFAULT_CAPACITY,
    consumed_capacity: int = 64,
    submit_ring: int = 64,
    own_levels: int = 1024,
    outbox_capacity: int = 4096,
) -> EngineState:
    """Allocate a zeroed engine state (engine.config.configure fills in the settings)."""
    i, s, m = int(n_instruments), int(n_strategies) + 1, int(max_orders)
    if not 1 <= m <= MAX_ORDERS:
        raise ValueError(f"max_orders must be in 1..{MAX_ORDERS}")
    o = np.zeros((m, O_N), np.int64)
    o[:, O_OID] = -1
    o[:, O_NXT] = -1
    o[:, O_PRV] = -1
    o[:, O_FREE] = np.arange(m - 1, -1, -1)  # popped from the top: slot 0 first
    ri = np.zeros((s, RI_N), np.int64)
    ri[:, RI_ENABLED] = 1
    ri[:, RI_LAST_LAYER] = np.iinfo(np.int64).min
    mk = np.zeros((i, MK_N), np.int64)
    ctl = np.zeros(N_CTL, np.int64)
    ctl[CK_CUR_STRAT] = -1
    ctl[CK_NEXT_CID] = 1
    ctl[CI_N_INSTRUMENTS] = i
    ctl[CI_N_STRATEGIES] = s - 1
    ctl[N_FREE_TOP] = m
    # The transition table as one bit mask per state: an array of its own would be one more
    # array in every call that passes the state, and past about 28 of them numba's calls
    # slowed down sharply (measured: +2 unused arrays, 3.55 -> 2.16M events/s).
    for a, row in enumerate(transition_table()):
        ctl[TT_BASE + a] = sum(1 << b for b in range(N_STATES) if row[b])
    rings = np.full((s, int(submit_ring) + 4 * CANCEL_RING), np.iinfo(np.int64).min, np.int64)
    return EngineState(
        book=new_book(i, book_capacity),
        o=o,
        jr=np.zeros((int(journal_capacity), J_N), np.int64),
        fl=np.zeros((int(fills_capacity), F_N), np.int64),
        fee=np.zeros(int(fills_capacity), np.float64),
        hp=np.zeros((int(heap_capacity), H_N), np.int64),
        al=np.zeros((int(alerts_capacity), AL_N), np.int64),
        pi=np.zeros((s, i, PI_N), np.int64),
        pf=np.zeros((s, i, PF_N), np.float64),
        ri=ri,
        rf=np.zeros((s, RF_N), np.float64),
        rings=rings,
        mk=mk,
        lv=np.zeros((i, 2, int(own_levels), LV_N), np.int64),
        cons=np.zeros((i, int(consumed_capacity), 3), np.int64),
        eq=np.zeros((int(equity_capacity), 2), np.int64),
        eqf=np.zeros(int(equity_capacity), np.float64),
        ctl=ctl,
        cfg=np.zeros(CF_N, np.float64),
        instf=np.zeros((i, IF_N), np.float64),
        out=np.zeros((int(outbox_capacity), OUT_N), np.int64),
    )


def submit_ring_size(st: EngineState) -> int:
    """Entries of the submit-rate ring per row (the rest of `rings` holds recent cancels)."""
    return st.rings.shape[1] - 4 * CANCEL_RING
