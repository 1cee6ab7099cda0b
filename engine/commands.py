"""Commands from outside the loop (a person in the cockpit, a script): applied between chunks.

Each command is stamped with the engine time and the number of events processed when it was
applied, and kept in the command journal, so a session including a person's interventions
replays exactly (engine.runner.Engine.replay_commands).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.codes import (
    A_KILL_SWITCH,
    OF_MANUAL,
    OT_LIMIT,
    OT_MARKET,
    R_CANCEL_ALL,
    R_FLATTEN,
    R_KILL_SWITCH,
    R_RESUME,
    R_STRATEGY_STOPPED,
    SEV_CRITICAL,
    SEV_INFO,
    TIF_GTC,
    TIF_IOC,
    TS_ACTIVE,
    TS_HALTED,
    TS_REDUCE_ONLY,
)
from engine.execution import amend_order, cancel_all, cancel_order, flatten, submit_order
from engine.jit import entry
from engine.oms import alert
from engine.state import CK_TRADING_STATE, RI_ENABLED
from engine.stats import C_COMMANDS

CMD_CANCEL_ALL = 1
CMD_FLATTEN = 2
CMD_HALT = 3  # kill switch: halt trading, cancel everything
CMD_RESUME = 4
CMD_REDUCE_ONLY = 5
CMD_MANUAL_LIMIT = 6  # a = inst, b = side, c = price, d = qty
CMD_MANUAL_MARKET = 7  # a = inst, b = side, d = qty
CMD_CANCEL = 8  # a = order id
CMD_AMEND = 9  # a = order id, c = new price, d = new total quantity
CMD_SET_PARAM = 10  # a = instance (-1: all), text = JSON {name: value} (applied in Python)
CMD_STOP_STRATEGY = 11  # a = instance: on_stop, no more calls, its orders canceled
CMD_START_STRATEGY = 12  # a = instance: calls again, on_start

COMMAND_NAMES = {
    CMD_CANCEL_ALL: "cancel_all",
    CMD_FLATTEN: "flatten",
    CMD_HALT: "halt",
    CMD_RESUME: "resume",
    CMD_REDUCE_ONLY: "reduce_only",
    CMD_MANUAL_LIMIT: "manual_limit",
    CMD_MANUAL_MARKET: "manual_market",
    CMD_CANCEL: "cancel",
    CMD_AMEND: "amend",
    CMD_SET_PARAM: "set_param",
    CMD_STOP_STRATEGY: "stop_strategy",
    CMD_START_STRATEGY: "start_strategy",
}


@dataclass(frozen=True)
class Command:
    """One command as journaled: what, with which arguments, applied when."""

    kind: int
    a: int = 0
    b: int = 0
    c: int = 0
    d: int = 0
    text: str = ""
    """Arguments that are not integers (set_param: the values as JSON)."""
    ts: int = -1
    """Engine time when applied (filled in by the runner)."""
    after_events: int = -1
    """Events (data + scheduled) processed when applied (filled in by the runner)."""

    @property
    def name(self) -> str:
        """Readable command name."""
        return COMMAND_NAMES.get(self.kind, str(self.kind))


@entry
def apply_command(st, kind: int, a: int, b: int, c: int, d: int) -> int:
    """Apply one command now; returns orders or cancels sent, or an order id."""
    st.ctl[C_COMMANDS] += 1
    if kind == CMD_CANCEL_ALL:
        return cancel_all(st, -1, R_CANCEL_ALL, True)
    if kind == CMD_FLATTEN:
        return flatten(st, R_FLATTEN)
    if kind == CMD_HALT:
        already = st.ctl[CK_TRADING_STATE] == TS_HALTED
        st.ctl[CK_TRADING_STATE] = TS_HALTED
        if not already:
            alert(st, A_KILL_SWITCH, SEV_CRITICAL, R_KILL_SWITCH, -1, -1, -1, 0)
        return cancel_all(st, -1, R_KILL_SWITCH, True)
    if kind == CMD_RESUME:
        if st.ctl[CK_TRADING_STATE] != TS_ACTIVE:
            st.ctl[CK_TRADING_STATE] = TS_ACTIVE
            alert(st, A_KILL_SWITCH, SEV_INFO, R_RESUME, -1, -1, -1, 0)
        return 0
    if kind == CMD_REDUCE_ONLY:
        st.ctl[CK_TRADING_STATE] = TS_REDUCE_ONLY
        return 0
    if kind == CMD_MANUAL_LIMIT:
        return submit_order(st, -1, a, b, c, d, OT_LIMIT, TIF_GTC, OF_MANUAL)
    if kind == CMD_MANUAL_MARKET:
        return submit_order(st, -1, a, b, 0, d, OT_MARKET, TIF_IOC, OF_MANUAL)
    if kind == CMD_CANCEL:
        return 1 if cancel_order(st, a, R_CANCEL_ALL) else 0
    if kind == CMD_AMEND:
        return amend_order(st, a, c, d)
    if kind == CMD_STOP_STRATEGY:
        st.ri[a, RI_ENABLED] = 0
        return cancel_all(st, a, R_STRATEGY_STOPPED, False)
    if kind == CMD_START_STRATEGY:
        st.ri[a, RI_ENABLED] = 1
        return 0
    return -1
