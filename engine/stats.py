"""Indices of EngineState.counters: run statistics the reports and the cockpit show."""

from __future__ import annotations

from typing import Final

C_ORDERS_SUBMITTED: Final = 0
C_ORDERS_DENIED: Final = 1
C_ORDERS_REJECTED: Final = 2
C_FILLS: Final = 3
C_CANCELS: Final = 4
C_INVALID_TRANSITIONS: Final = 5
C_ALERTS: Final = 6
C_TRADES_SEEN: Final = 7
C_HEAP_OVERFLOW: Final = 8
C_COMMANDS: Final = 9
C_MAKER_FILLS: Final = 10
C_TAKER_FILLS: Final = 11
C_FILLED_LOTS: Final = 12
C_STRATEGY_CALLS: Final = 13

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
}
