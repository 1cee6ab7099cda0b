"""Positions, average price, realised and unrealised PnL, fees, equity curve and drawdown.

Accounting is per strategy instance and instrument (row S of every array is manual trading
from the cockpit). Positions are integer lots; the open position's cost is kept in
ticks*lots so the average price is exact until it is divided. Money (PnL, fees, equity) is
float64 in quote currency: price_ticks * tick * lots * lot * multiplier.
"""

from __future__ import annotations

from engine.codes import A_DRAWDOWN, R_DRAWDOWN, SEV_CRITICAL, SIDE_BUY_CODE, TS_ACTIVE
from engine.jit import kernel
from engine.oms import alert
from engine.state import (
    CF_MAX_DRAWDOWN,
    CI_DRAWDOWN_ACTION,
    CI_N_INSTRUMENTS,
    CK_NOW,
    IF_LOT,
    IF_MULT,
    IF_TICK,
)


@kernel
def money(st, inst: int, ticks_lots: float) -> float:
    """Quote-currency value of ticks*lots of an instrument."""
    f = st.inst_f
    return ticks_lots * f[inst, IF_TICK] * f[inst, IF_LOT] * f[inst, IF_MULT]


@kernel
def fee_of(st, inst: int, price: int, qty: int, rate: float) -> float:
    """Fee in quote currency for a fill (rate on notional; negative is a rebate)."""
    return money(st, inst, float(price) * float(qty)) * rate


@kernel
def apply_fill(st, row: int, inst: int, side: int, price: int, qty: int, fee: float) -> None:
    """Book a fill into the position, average cost, realised PnL and fees of `row`."""
    p = st.port
    pos = p.pos[row, inst]
    signed = qty if side == SIDE_BUY_CODE else -qty
    if pos == 0 or (pos > 0) == (signed > 0):
        p.cost[row, inst] += float(price) * float(signed)
    else:
        closed = min(abs(pos), qty)
        avg = p.cost[row, inst] / float(pos)
        direction = 1.0 if pos > 0 else -1.0
        p.realized[row, inst] += money(st, inst, (float(price) - avg) * float(closed) * direction)
        p.cost[row, inst] -= avg * float(closed) * direction
        rest = qty - closed
        if rest > 0:  # the fill flips the position: the remainder opens at the fill price
            p.cost[row, inst] = float(price) * float(rest if signed > 0 else -rest)
        elif pos + signed == 0:
            p.cost[row, inst] = 0.0
    p.pos[row, inst] = pos + signed
    p.fees[row, inst] += fee
    p.volume[row, inst] += qty


@kernel
def unrealized(st, row: int, inst: int) -> float:
    """Open PnL of `row` in `inst` at the mark (0 without a mark)."""
    p = st.port
    pos = p.pos[row, inst]
    if pos == 0 or p.mark_x2[inst] == 0:
        return 0.0
    return money(st, inst, float(p.mark_x2[inst]) * 0.5 * float(pos) - p.cost[row, inst])


@kernel
def equity(st, row: int) -> float:
    """Realised + unrealised - fees of one strategy row over all instruments."""
    total = 0.0
    for inst in range(st.cfg_i[CI_N_INSTRUMENTS]):
        total += st.port.realized[row, inst] - st.port.fees[row, inst] + unrealized(st, row, inst)
    return total


@kernel
def check_drawdown(st, row: int) -> bool:
    """Track peak equity and drawdown; trip the row's trading state past the limit."""
    p = st.port
    eq = equity(st, row)
    if eq > p.peak[row]:
        p.peak[row] = eq
    dd = p.peak[row] - eq
    if dd > p.max_dd[row]:
        p.max_dd[row] = dd
    limit = st.cfg_f[CF_MAX_DRAWDOWN]
    if limit > 0.0 and dd > limit and p.strat_state[row] == TS_ACTIVE:
        p.strat_state[row] = st.cfg_i[CI_DRAWDOWN_ACTION]
        alert(st, A_DRAWDOWN, SEV_CRITICAL, R_DRAWDOWN, -1, -1, row, int(dd))
        return True
    return False


@kernel
def sample_equity(st) -> None:
    """Append one point of the equity curve (all rows) if there is room."""
    p = st.port
    k = p.eq_n[0]
    if k >= p.eq_ts.shape[0]:
        return
    total = 0.0
    for row in range(p.pos.shape[0]):
        total += equity(st, row)
    p.eq_ts[k] = st.clock[CK_NOW]
    p.eq_total[k] = total
    net = 0
    for row in range(p.pos.shape[0]):
        net += p.pos[row, 0]
    p.eq_pos[k] = net
    p.eq_n[0] = k + 1
