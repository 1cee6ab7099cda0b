"""Run statistics: their slots in the control vector (ctl[STATS_BASE + C_*]) and names."""

from __future__ import annotations

from typing import Final

from engine.state import STATS_BASE

C_ORDERS_SUBMITTED: Final = STATS_BASE + 0
C_ORDERS_DENIED: Final = STATS_BASE + 1
C_ORDERS_REJECTED: Final = STATS_BASE + 2
C_FILLS: Final = STATS_BASE + 3
C_CANCELS: Final = STATS_BASE + 4
C_INVALID_TRANSITIONS: Final = STATS_BASE + 5
C_ALERTS: Final = STATS_BASE + 6
C_TRADES_SEEN: Final = STATS_BASE + 7
C_HEAP_OVERFLOW: Final = STATS_BASE + 8
C_COMMANDS: Final = STATS_BASE + 9
C_MAKER_FILLS: Final = STATS_BASE + 10
C_TAKER_FILLS: Final = STATS_BASE + 11
C_FILLED_LOTS: Final = STATS_BASE + 12
C_STRATEGY_CALLS: Final = STATS_BASE + 13
C_CONSUMED_EVICTED: Final = STATS_BASE + 14
C_BUFFER_OVERFLOW: Final = STATS_BASE + 15  # rows lost: one event outgrew a buffer
C_AMENDS: Final = STATS_BASE + 16
C_TIMERS_AFTER_END: Final = STATS_BASE + 17  # timers due after the data ended (not fired)

COUNTER_NAMES: Final = {
    C_ORDERS_SUBMITTED: "orders_submitted",
    C_ORDERS_DENIED: "orders_denied",
    C_ORDERS_REJECTED: "orders_rejected",
    C_FILLS: "fills",
    C_CANCELS: "cancels",
    C_INVALID_TRANSITIONS: "invalid_transitions",
    C_ALERTS: "alerts",
    C_TRADES_SEEN: "trades_seen",
    C_HEAP_OVERFLOW: "heap_overflow",
    C_COMMANDS: "commands",
    C_MAKER_FILLS: "maker_fills",
    C_TAKER_FILLS: "taker_fills",
    C_FILLED_LOTS: "filled_lots",
    C_STRATEGY_CALLS: "strategy_calls",
    C_CONSUMED_EVICTED: "consumed_entries_evicted",
    C_BUFFER_OVERFLOW: "buffer_overflow",
    C_AMENDS: "amends",
    C_TIMERS_AFTER_END: "timers_after_end",
}
