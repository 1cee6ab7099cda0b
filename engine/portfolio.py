"""Positions, average price, realised and unrealised PnL, fees, equity curve and drawdown.

Accounting is per strategy instance and instrument (the last row is manual trading from the
cockpit). Positions are integer lots; the open position's cost is kept in ticks*lots so the
average price is exact until it is divided. Money (PnL, fees, equity) is float64 in quote
currency: price_ticks * tick * lots * lot * multiplier.
"""

from __future__ import annotations

from engine.codes import A_DRAWDOWN, R_DRAWDOWN, SEV_CRITICAL, SIDE_BUY_CODE, TS_ACTIVE
from engine.jit import hot, kernel
from engine.oms import alert
from engine.state import (
    CF_MAX_DRAWDOWN,
    CI_DRAWDOWN_ACTION,
    CI_N_INSTRUMENTS,
    CK_NOW,
    IF_LOT,
    IF_MULT,
    IF_TICK,
    MK_MARK_X2,
    N_EQUITY,
    PF_COST,
    PF_FEES,
    PF_REALIZED,
    PI_POS,
    PI_VOLUME,
    RF_MAX_DD,
    RF_PEAK,
    RI_STATE,
)
from engine.stats import C_BUFFER_OVERFLOW


@hot
def money(st, inst: int, ticks_lots: float) -> float:
    """Quote-currency value of ticks*lots of an instrument."""
    f = st.instf[inst]
    return ticks_lots * f[IF_TICK] * f[IF_LOT] * f[IF_MULT]


@hot
def fee_of(st, inst: int, price: int, qty: int, rate: float) -> float:
    """Fee in quote currency for a fill (rate on notional; negative is a rebate)."""
    return money(st, inst, float(price) * float(qty)) * rate


@hot
def apply_fill(st, row: int, inst: int, side: int, price: int, qty: int, fee: float) -> None:
    """Book a fill into the position, average cost, realised PnL and fees of `row`."""
    pi = st.pi[row, inst]
    pf = st.pf[row, inst]
    pos = pi[PI_POS]
    signed = qty if side == SIDE_BUY_CODE else -qty
    if pos == 0 or (pos > 0) == (signed > 0):
        pf[PF_COST] += float(price) * float(signed)
    else:
        closed = min(abs(pos), qty)
        avg = pf[PF_COST] / float(pos)
        direction = 1.0 if pos > 0 else -1.0
        pf[PF_REALIZED] += money(st, inst, (float(price) - avg) * float(closed) * direction)
        pf[PF_COST] -= avg * float(closed) * direction
        rest = qty - closed
        if rest > 0:  # the fill flips the position: the remainder opens at the fill price
            pf[PF_COST] = float(price) * float(rest if signed > 0 else -rest)
        elif pos + signed == 0:
            pf[PF_COST] = 0.0
    pi[PI_POS] = pos + signed
    pi[PI_VOLUME] += qty
    pf[PF_FEES] += fee


@hot
def unrealized(st, row: int, inst: int) -> float:
    """Open PnL of `row` in `inst` at the mark (0 without a mark)."""
    pos = st.pi[row, inst, PI_POS]
    mark_x2 = st.mk[inst, MK_MARK_X2]
    if pos == 0 or mark_x2 == 0:
        return 0.0
    return money(st, inst, float(mark_x2) * 0.5 * float(pos) - st.pf[row, inst, PF_COST])


@hot
def equity(st, row: int) -> float:
    """Realised + unrealised - fees of one strategy row over all instruments."""
    total = 0.0
    for inst in range(st.ctl[CI_N_INSTRUMENTS]):
        pf = st.pf[row, inst]
        total += pf[PF_REALIZED] - pf[PF_FEES] + unrealized(st, row, inst)
    return total


@hot
def track_drawdown(st, row: int, eq: float) -> bool:
    """Track peak equity and drawdown of a row at equity `eq`; trip it past the limit."""
    rf = st.rf[row]
    if eq > rf[RF_PEAK]:
        rf[RF_PEAK] = eq
    dd = rf[RF_PEAK] - eq
    if dd > rf[RF_MAX_DD]:
        rf[RF_MAX_DD] = dd
    limit = st.cfg[CF_MAX_DRAWDOWN]
    if limit > 0.0 and dd > limit and st.ri[row, RI_STATE] == TS_ACTIVE:
        st.ri[row, RI_STATE] = st.ctl[CI_DRAWDOWN_ACTION]
        alert(st, A_DRAWDOWN, SEV_CRITICAL, R_DRAWDOWN, -1, -1, row, int(dd))
        return True
    return False


@hot
def check_drawdown(st, row: int) -> bool:
    """Drawdown check after a fill (track_drawdown at the row's equity now)."""
    return track_drawdown(st, row, equity(st, row))


@kernel
def sample_equity(st) -> None:
    """Append one point of the equity curve (all rows) if there is room.

    Each sample also checks every row's drawdown at the mark: a position losing value while
    nothing trades must trip the limit too, not only at its next fill.
    """
    total = 0.0
    net = 0
    for row in range(st.pi.shape[0]):
        eq = equity(st, row)
        track_drawdown(st, row, eq)
        total += eq
        net += st.pi[row, 0, PI_POS]
    k = st.ctl[N_EQUITY]
    if k >= st.eq.shape[0]:
        st.ctl[C_BUFFER_OVERFLOW] += 1
        return
    st.eq[k, 0] = st.ctl[CK_NOW]
    st.eq[k, 1] = net
    st.eqf[k] = total
    st.ctl[N_EQUITY] = k + 1
