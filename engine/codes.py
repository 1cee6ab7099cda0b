"""Integer codes of the trading core: order states, types, reasons, alerts, stop reasons.

One source of truth, like engine/events.py for events: jitted code compares these integers,
the journal stores them, the cockpit and reports turn them into names with the *_NAMES maps.
"""

from __future__ import annotations

from typing import Final

# Sides, as in engine/events.py (repeated here so jitted modules import one place).
SIDE_BUY_CODE: Final = 1
SIDE_SELL_CODE: Final = -1

# --- order states (the OMS state machine, see engine/oms.py for the transition table) ---
ST_INITIALIZED: Final = 0
ST_DENIED: Final = 1  # refused by pre-trade risk, never left the engine
ST_SUBMITTED: Final = 2  # sent, on its way to the venue
ST_ACCEPTED: Final = 3  # acknowledged by the venue, working
ST_REJECTED: Final = 4  # refused by the venue (post-only would cross, unknown instrument, ...)
ST_PARTIALLY_FILLED: Final = 5
ST_FILLED: Final = 6
ST_PENDING_CANCEL: Final = 7
ST_CANCELED: Final = 8
ST_EXPIRED: Final = 9  # IOC/FOK/market remainder with no liquidity
ST_PENDING_UPDATE: Final = 10
N_STATES: Final = 11

STATE_NAMES: Final = {
    ST_INITIALIZED: "initialized",
    ST_DENIED: "denied",
    ST_SUBMITTED: "submitted",
    ST_ACCEPTED: "accepted",
    ST_REJECTED: "rejected",
    ST_PARTIALLY_FILLED: "partially_filled",
    ST_FILLED: "filled",
    ST_PENDING_CANCEL: "pending_cancel",
    ST_CANCELED: "canceled",
    ST_EXPIRED: "expired",
    ST_PENDING_UPDATE: "pending_update",
}
TERMINAL_STATES: Final = (ST_DENIED, ST_REJECTED, ST_FILLED, ST_CANCELED, ST_EXPIRED)

# --- order types, time in force, order flags ---
OT_LIMIT: Final = 0
OT_MARKET: Final = 1
ORDER_TYPE_NAMES: Final = {OT_LIMIT: "limit", OT_MARKET: "market"}

TIF_GTC: Final = 0
TIF_IOC: Final = 1
TIF_FOK: Final = 2
TIF_NAMES: Final = {TIF_GTC: "GTC", TIF_IOC: "IOC", TIF_FOK: "FOK"}

OF_POST_ONLY: Final = 1
OF_REDUCE_ONLY: Final = 2
OF_MANUAL: Final = 4  # entered by a person in the cockpit
OF_FLATTEN: Final = 8  # sent by flatten: exempt from the submit-rate limit

# --- reasons (journal rows, rejections, denials) ---
R_NONE: Final = 0
R_NEW: Final = 1
R_VENUE_ACK: Final = 2
R_FILL: Final = 3
R_CANCEL_REQUEST: Final = 4
R_CANCELED: Final = 5
R_CANCEL_REJECTED: Final = 6  # too late: already filled or unknown at the venue
R_IOC_REMAINDER: Final = 7
R_FOK_UNFILLABLE: Final = 8
R_NO_LIQUIDITY: Final = 9
R_POST_ONLY_WOULD_CROSS: Final = 10
R_SELF_TRADE_PREVENTED: Final = 11
R_INVALID_TRANSITION: Final = 12
R_TOO_MANY_LEVELS: Final = 13  # our resting orders already occupy every level slot
# pre-trade risk
R_RISK_HALTED: Final = 20
R_RISK_REDUCE_ONLY: Final = 21
R_RISK_ORDER_SIZE: Final = 22
R_RISK_POSITION: Final = 23
R_RISK_NOTIONAL: Final = 24
R_RISK_OPEN_ORDERS: Final = 25
R_RISK_SUBMIT_RATE: Final = 26
R_RISK_PRICE_BAND: Final = 27
R_RISK_NO_MARKET: Final = 28
R_RISK_USER_RULE: Final = 29
R_BOOK_NOT_IN_SYNC: Final = 30  # live: the instrument's book is resyncing
R_BELOW_MIN_NOTIONAL: Final = 31  # the venue's minimum order notional
# bad orders from a strategy or a person
R_BAD_QUANTITY: Final = 40
R_BAD_PRICE: Final = 41
R_BAD_INSTRUMENT: Final = 42
R_BAD_SIDE: Final = 43
R_POOL_FULL: Final = 44
R_UNKNOWN_ORDER: Final = 45
R_OUTBOX_FULL: Final = 46  # live: the bounded buffer to the venue adapter is full
# manual and system actions
R_CANCEL_ALL: Final = 60
R_FLATTEN: Final = 61
R_KILL_SWITCH: Final = 62
R_RESUME: Final = 63
R_DRAWDOWN: Final = 64
R_END_OF_DATA: Final = 65  # a strategy order after the data ended (nothing to trade against)
R_STRATEGY_STOPPED: Final = 66
# amends (order.cancelReplace-like price / quantity changes of a resting order)
R_AMEND_REQUEST: Final = 70
R_AMENDED: Final = 71
R_AMEND_REJECTED: Final = 72  # too late: the order is no longer resting at the venue
R_AMEND_WOULD_CROSS: Final = 73  # the new price would take liquidity: refused, order unchanged
R_AMEND_BAD_QUANTITY: Final = 74  # the new quantity is not above what is already filled

REASON_NAMES: Final = {
    R_NONE: "none",
    R_NEW: "new",
    R_VENUE_ACK: "venue_ack",
    R_FILL: "fill",
    R_CANCEL_REQUEST: "cancel_request",
    R_CANCELED: "canceled",
    R_CANCEL_REJECTED: "cancel_rejected",
    R_IOC_REMAINDER: "ioc_remainder",
    R_FOK_UNFILLABLE: "fok_unfillable",
    R_NO_LIQUIDITY: "no_liquidity",
    R_POST_ONLY_WOULD_CROSS: "post_only_would_cross",
    R_SELF_TRADE_PREVENTED: "self_trade_prevented",
    R_INVALID_TRANSITION: "invalid_transition",
    R_TOO_MANY_LEVELS: "too_many_own_levels",
    R_RISK_HALTED: "risk_halted",
    R_RISK_REDUCE_ONLY: "risk_reduce_only",
    R_RISK_ORDER_SIZE: "risk_order_size",
    R_RISK_POSITION: "risk_position_limit",
    R_RISK_NOTIONAL: "risk_notional",
    R_RISK_OPEN_ORDERS: "risk_open_orders",
    R_RISK_SUBMIT_RATE: "risk_submit_rate",
    R_RISK_PRICE_BAND: "risk_price_band",
    R_RISK_NO_MARKET: "risk_no_market",
    R_RISK_USER_RULE: "risk_user_rule",
    R_BOOK_NOT_IN_SYNC: "book_not_in_sync",
    R_BELOW_MIN_NOTIONAL: "below_min_notional",
    R_BAD_QUANTITY: "bad_quantity",
    R_BAD_PRICE: "bad_price",
    R_BAD_INSTRUMENT: "bad_instrument",
    R_BAD_SIDE: "bad_side",
    R_POOL_FULL: "order_pool_full",
    R_UNKNOWN_ORDER: "unknown_order",
    R_OUTBOX_FULL: "outbox_full",
    R_CANCEL_ALL: "cancel_all",
    R_FLATTEN: "flatten",
    R_KILL_SWITCH: "kill_switch",
    R_RESUME: "resume",
    R_DRAWDOWN: "max_drawdown",
    R_END_OF_DATA: "end_of_data",
    R_STRATEGY_STOPPED: "strategy_stopped",
    R_AMEND_REQUEST: "amend_request",
    R_AMENDED: "amended",
    R_AMEND_REJECTED: "amend_rejected",
    R_AMEND_WOULD_CROSS: "amend_would_cross",
    R_AMEND_BAD_QUANTITY: "amend_bad_quantity",
}

# --- trading state ---
TS_ACTIVE: Final = 0
TS_REDUCE_ONLY: Final = 1
TS_HALTED: Final = 2
TRADING_STATE_NAMES: Final = {
    TS_ACTIVE: "active",
    TS_REDUCE_ONLY: "reduce_only",
    TS_HALTED: "halted",
}

# --- alerts ---
A_RISK_DENIAL: Final = 1
A_SELF_TRADE: Final = 2
A_SPOOFING: Final = 3
A_LAYERING: Final = 4
A_DRAWDOWN: Final = 5
A_INVALID_TRANSITION: Final = 6
A_KILL_SWITCH: Final = 7
A_STRATEGY_ERROR: Final = 8
A_USER_RULE: Final = 9
ALERT_NAMES: Final = {
    A_RISK_DENIAL: "risk_denial",
    A_SELF_TRADE: "self_trade",
    A_SPOOFING: "spoofing",
    A_LAYERING: "layering",
    A_DRAWDOWN: "max_drawdown",
    A_INVALID_TRANSITION: "invalid_transition",
    A_KILL_SWITCH: "kill_switch",
    A_STRATEGY_ERROR: "strategy_error",
    A_USER_RULE: "user_rule",
}
SEV_INFO: Final = 0
SEV_WARNING: Final = 1
SEV_CRITICAL: Final = 2
SEVERITY_NAMES: Final = {SEV_INFO: "info", SEV_WARNING: "warning", SEV_CRITICAL: "critical"}

# --- scheduled engine events (the heap) ---
EV_ORDER_ARRIVE: Final = 1  # a new order reaches the venue
EV_CANCEL_ARRIVE: Final = 2  # a cancel request reaches the venue
EV_REPORT: Final = 3  # a venue report (ack, fill, cancel, reject) reaches the engine
EV_TIMER: Final = 4  # a strategy timer fires
EV_FILL_REPORT: Final = 5  # a fill report reaches the engine (aux qty, aux2 price, aux3 LIQ_*)
EV_AMEND_ARRIVE: Final = 6  # an amend reaches the venue (aux new price, aux2 new quantity)

# --- why run_chunk returned ---
STOP_CHUNK_DONE: Final = 0
STOP_END_OF_DATA: Final = 1
STOP_FILL: Final = 2
STOP_ORDER_UPDATE: Final = 3
STOP_ALERT: Final = 4
STOP_TRADE: Final = 5
STOP_TIME: Final = 6
STOP_BUFFER_FULL: Final = 7  # journal, fills or equity buffer needs draining
STOP_NAMES: Final = {
    STOP_CHUNK_DONE: "chunk_done",
    STOP_END_OF_DATA: "end_of_data",
    STOP_FILL: "fill",
    STOP_ORDER_UPDATE: "order_update",
    STOP_ALERT: "alert",
    STOP_TRADE: "trade",
    STOP_TIME: "time",
    STOP_BUFFER_FULL: "buffer_full",
}
# breakpoint mask bits for run_chunk
BREAK_FILL: Final = 1
BREAK_ORDER_UPDATE: Final = 2
BREAK_ALERT: Final = 4
BREAK_TRADE: Final = 8
BREAK_TIME: Final = 16

# --- liquidity flags of a fill ---
LIQ_MAKER: Final = 0
LIQ_TAKER: Final = 1

# --- queue models ---
QM_TRADES_ONLY: Final = 0  # conservative: only trades at our price move us forward
QM_PROPORTIONAL: Final = 1  # cancels ahead of us in proportion to the queue in front
QUEUE_MODEL_NAMES: Final = {QM_TRADES_ONLY: "trades_only", QM_PROPORTIONAL: "proportional"}
