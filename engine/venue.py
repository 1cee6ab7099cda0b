"""The simulated venue: matching our orders against recorded liquidity, realistically.

Model (documented in ARCHITECTURE.md, "Simulated venue"):
- The recorded book is the market without us. An order reaching the venue first takes
  liquidity: it walks the opposite side level by level up to its limit (market orders walk
  without a limit). What our taker fills consume at a level stays consumed until the data
  refreshes that level (a delta or snapshot row at that price), so two of our orders never
  fill from the same displayed liquidity.
- The remainder of a GTC limit order rests at its price, behind the displayed size there
  (`queue_ahead`). IOC, FOK and market remainders expire; FOK checks the whole quantity first;
  post-only orders that would cross are rejected.
- A resting order fills only on trades the data shows: a trade through a better price than
  ours fills us outright, a trade at our price first eats the queue ahead of us. Each trade's
  volume is handed out once, best price then earliest order first, so two of our orders never
  fill from the same traded volume. A book that merely moves through our price, without a
  trade, does not fill us (conservative: the data cannot prove a counterparty).
- Queue models (`CI_QUEUE_MODEL`): QM_TRADES_ONLY (cancels never move us forward; the queue
  ahead only shrinks to the level's new size) and QM_PROPORTIONAL (a size decrease not
  explained by trades counts as cancels spread evenly across the level, so the share in front
  of us moves us forward by decrease * ahead / level).
- Self-trade prevention: an order that would match one of our own resting orders expires
  (cancel-newest) and raises a self-trade alert.
- Every venue outcome reaches the engine as a report after the report latency.
"""

from __future__ import annotations

from engine.book import NO_PRICE, depth_at
from engine.codes import (
    A_SELF_TRADE,
    EV_FILL_REPORT,
    EV_REPORT,
    LIQ_MAKER,
    LIQ_TAKER,
    OF_POST_ONLY,
    OT_MARKET,
    QM_PROPORTIONAL,
    R_AMEND_BAD_QUANTITY,
    R_AMEND_REJECTED,
    R_AMEND_WOULD_CROSS,
    R_AMENDED,
    R_CANCEL_REJECTED,
    R_CANCELED,
    R_FOK_UNFILLABLE,
    R_IOC_REMAINDER,
    R_NO_LIQUIDITY,
    R_POST_ONLY_WOULD_CROSS,
    R_SELF_TRADE_PREVENTED,
    R_TOO_MANY_LEVELS,
    R_VENUE_ACK,
    SEV_WARNING,
    SIDE_BUY_CODE,
    SIDE_SELL_CODE,
    ST_ACCEPTED,
    ST_CANCELED,
    ST_EXPIRED,
    ST_REJECTED,
    TIF_FOK,
    TIF_IOC,
)
from engine.jit import hot, kernel
from engine.oms import alert
from engine.portfolio import fee_of
from engine.scheduler import schedule
from engine.state import (
    CF_MAKER_FEE,
    CF_TAKER_FEE,
    CI_QUEUE_MODEL,
    CI_REPORT_LATENCY,
    CK_NOW,
    CS_PX,
    CS_QTY,
    CS_SIDE,
    F_CID,
    F_INST,
    F_LIQ,
    F_OID,
    F_PRICE,
    F_QTY,
    F_SIDE,
    F_STRAT,
    F_TS,
    LV_COUNT,
    LV_FIRST,
    LV_LAST,
    LV_N,
    LV_PX,
    MK_CONS_N,
    MK_LV_ASK,
    MK_LV_BID,
    MK_QASK_PX,
    MK_QASK_QTY,
    MK_QBID_PX,
    MK_QBID_QTY,
    N_FILLS,
    O_CID,
    O_FLAGS,
    O_INFLIGHT,
    O_INST,
    O_NXT,
    O_OID,
    O_OTYPE,
    O_PRICE,
    O_PRV,
    O_PTRADE,
    O_QAHEAD,
    O_QTY,
    O_SIDE,
    O_STRAT,
    O_TIF,
    O_TS_VENUE,
    O_VFILLED,
    O_VSTATE,
)
from engine.stats import (
    C_BUFFER_OVERFLOW,
    C_CONSUMED_EVICTED,
    C_FILLED_LOTS,
    C_MAKER_FILLS,
    C_TAKER_FILLS,
)

V_NOT_THERE = 0
V_RESTING = 1
V_DONE = 2
CANCEL_REJECT_STATE = -1
AMEND_ACK_STATE = -2  # report state of an applied amend (the order keeps working)
AMEND_REJECT_STATE = -3  # report state of a refused amend (the order is unchanged)
"""`aux` of a report that says a cancel failed (too late or unknown at the venue)."""


# ----------------------------------------------------------------------------- reports


@hot
def report(st, slot: int, state: int, reason: int) -> None:
    """Send a state report to the engine (arrives after the report latency)."""
    schedule(
        st,
        st.ctl[CK_NOW] + st.ctl[CI_REPORT_LATENCY],
        EV_REPORT,
        st.o[slot, O_OID],
        state,
        reason,
        0,
    )
    st.o[slot, O_INFLIGHT] += 1


@hot
def fill_row(st, slot: int, ts: int, price: int, qty: int, liq: int) -> None:
    """Append a fill of order `slot` to the fills table (with its fee) and count it."""
    o = st.o[slot]
    inst = o[O_INST]
    rate = st.cfg[CF_MAKER_FEE] if liq == LIQ_MAKER else st.cfg[CF_TAKER_FEE]
    k = st.ctl[N_FILLS]
    if k < st.fl.shape[0]:
        f = st.fl[k]
        f[F_TS] = ts
        f[F_OID] = o[O_OID]
        f[F_CID] = o[O_CID]
        f[F_INST] = inst
        f[F_STRAT] = o[O_STRAT]
        f[F_SIDE] = o[O_SIDE]
        f[F_LIQ] = liq
        f[F_PRICE] = price
        f[F_QTY] = qty
        st.fee[k] = fee_of(st, inst, price, qty, rate)
        st.ctl[N_FILLS] = k + 1
    else:
        st.ctl[C_BUFFER_OVERFLOW] += 1
    if liq == LIQ_MAKER:
        st.ctl[C_MAKER_FILLS] += 1
    else:
        st.ctl[C_TAKER_FILLS] += 1
    st.ctl[C_FILLED_LOTS] += qty


@hot
def fill(st, slot: int, price: int, qty: int, liq: int) -> None:
    """Record a venue fill and send its report."""
    o = st.o[slot]
    o[O_VFILLED] += qty
    fill_row(st, slot, st.ctl[CK_NOW], price, qty, liq)
    schedule(
        st, st.ctl[CK_NOW] + st.ctl[CI_REPORT_LATENCY], EV_FILL_REPORT, o[O_OID], qty, price, liq
    )
    o[O_INFLIGHT] += 1


# ------------------------------------------------------------------ consumed liquidity


@hot
def consumed(st, inst: int, side: int, price: int) -> int:
    """Lots of the displayed level (side, price) our taker fills already used."""
    c = st.cons[inst]
    for k in range(st.mk[inst, MK_CONS_N]):
        if c[k, CS_PX] == price and c[k, CS_SIDE] == side:
            return c[k, CS_QTY]
    return 0


@hot
def _drop_entry(st, inst: int, k: int) -> None:
    c = st.cons[inst]
    n = st.mk[inst, MK_CONS_N]
    for j in range(k, n - 1):
        c[j, CS_PX] = c[j + 1, CS_PX]
        c[j, CS_SIDE] = c[j + 1, CS_SIDE]
        c[j, CS_QTY] = c[j + 1, CS_QTY]
    c[n - 1, CS_PX] = 0
    c[n - 1, CS_SIDE] = 0
    c[n - 1, CS_QTY] = 0
    st.mk[inst, MK_CONS_N] = n - 1


@hot
def consume(st, inst: int, side: int, price: int, qty: int) -> None:
    """Mark `qty` of the displayed level as used by us until the data refreshes it."""
    c = st.cons[inst]
    for k in range(st.mk[inst, MK_CONS_N]):
        if c[k, CS_PX] == price and c[k, CS_SIDE] == side:
            c[k, CS_QTY] += qty
            return
    if st.mk[inst, MK_CONS_N] >= c.shape[0]:
        # Table full: forget the oldest entry (counted; the data has most likely refreshed it).
        _drop_entry(st, inst, 0)
        st.ctl[C_CONSUMED_EVICTED] += 1
    n = st.mk[inst, MK_CONS_N]
    c[n, CS_PX] = price
    c[n, CS_SIDE] = side
    c[n, CS_QTY] = qty
    st.mk[inst, MK_CONS_N] = n + 1


@hot
def refresh_level(st, inst: int, side: int, price: int) -> None:
    """The data set this level anew: what we consumed there is no longer subtracted."""
    c = st.cons[inst]
    for k in range(st.mk[inst, MK_CONS_N]):
        if c[k, CS_PX] == price and c[k, CS_SIDE] == side:
            _drop_entry(st, inst, k)
            return


@hot
def refresh_all(st, inst: int) -> None:
    """A clear or snapshot: forget everything consumed on the instrument."""
    c = st.cons[inst]
    for k in range(st.mk[inst, MK_CONS_N]):
        c[k, CS_PX] = 0
        c[k, CS_SIDE] = 0
        c[k, CS_QTY] = 0
    st.mk[inst, MK_CONS_N] = 0


# ------------------------------------------------------------------ opposite liquidity


@hot
def _n_levels(st, inst: int, side: int) -> int:
    """Levels on `side` (the book, else the quote as a one-level book)."""
    b = st.book
    n = b.bid_n[inst] if side == SIDE_BUY_CODE else b.ask_n[inst]
    if n > 0:
        return n
    q = st.mk[inst, MK_QBID_QTY] if side == SIDE_BUY_CODE else st.mk[inst, MK_QASK_QTY]
    return 1 if q > 0 else 0


@hot
def _level(st, inst: int, side: int, k: int):
    """The k-th best level on `side` as (price, displayed lots)."""
    b = st.book
    if side == SIDE_BUY_CODE:
        n = b.bid_n[inst]
        if n > 0:
            return b.bid_px[inst, n - 1 - k], b.bid_qty[inst, n - 1 - k]
        return st.mk[inst, MK_QBID_PX], st.mk[inst, MK_QBID_QTY]
    n = b.ask_n[inst]
    if n > 0:
        return b.ask_px[inst, n - 1 - k], b.ask_qty[inst, n - 1 - k]
    return st.mk[inst, MK_QASK_PX], st.mk[inst, MK_QASK_QTY]


@hot
def _within(side: int, level_px: int, limit: int, is_market: bool) -> bool:
    """Whether an opposite level at level_px is reachable by an order of `side` at `limit`."""
    if is_market:
        return True
    if side == SIDE_BUY_CODE:
        return level_px <= limit
    return level_px >= limit


@hot
def displayed(st, inst: int, side: int, price: int) -> int:
    """Displayed lots at (side, price): the book, else the quote."""
    b = st.book
    n = b.bid_n[inst] if side == SIDE_BUY_CODE else b.ask_n[inst]
    if n > 0:
        return depth_at(b, inst, side, price)
    mk = st.mk[inst]
    if side == SIDE_BUY_CODE:
        return mk[MK_QBID_QTY] if mk[MK_QBID_PX] == price else 0
    return mk[MK_QASK_QTY] if mk[MK_QASK_PX] == price else 0


@hot
def available_to(st, inst: int, side: int, limit: int, is_market: bool, want: int) -> int:
    """Opposite lots an order could take up to its limit (stops counting at `want`)."""
    opp = -side
    total = 0
    for k in range(_n_levels(st, inst, opp)):
        px, qty = _level(st, inst, opp, k)
        if not _within(side, px, limit, is_market):
            break
        avail = qty - consumed(st, inst, opp, px)
        if avail > 0:
            total += avail
            if total >= want:
                break
    return total


# --------------------------------------------------------------- resting orders by level


@hot
def _si(side: int) -> int:
    return 0 if side == SIDE_BUY_CODE else 1


@hot
def _count_col(side: int) -> int:
    return MK_LV_BID if side == SIDE_BUY_CODE else MK_LV_ASK


@hot
def _better(side: int, a: int, b: int) -> bool:
    """Whether price a has priority over price b on `side`."""
    return a > b if side == SIDE_BUY_CODE else a < b


@hot
def find_level(st, inst: int, side: int, price: int) -> int:
    """Index of our level at `price` on `side` if present, else -(insertion index) - 1.

    Levels are sorted with the best at the end, so a binary search on "is worse than".
    """
    lv = st.lv[inst, _si(side)]
    lo, hi = 0, st.mk[inst, _count_col(side)]
    while lo < hi:
        mid = (lo + hi) >> 1
        px = lv[mid, LV_PX]
        if px == price:
            return mid
        if _better(side, price, px):
            lo = mid + 1
        else:
            hi = mid
    return -lo - 1


@hot
def link(st, slot: int) -> bool:
    """Queue a resting order at the back of its price level; False if no level slot is free."""
    o = st.o
    inst, side, price = o[slot, O_INST], o[slot, O_SIDE], o[slot, O_PRICE]
    lv = st.lv[inst, _si(side)]
    col = _count_col(side)
    k = find_level(st, inst, side, price)
    if k < 0:
        n = st.mk[inst, col]
        if n >= lv.shape[0]:
            return False
        k = -k - 1
        for j in range(n, k, -1):
            for c in range(LV_N):
                lv[j, c] = lv[j - 1, c]
        lv[k, LV_PX] = price
        lv[k, LV_FIRST] = slot
        lv[k, LV_LAST] = slot
        lv[k, LV_COUNT] = 1
        st.mk[inst, col] = n + 1
        o[slot, O_PRV] = -1
    else:
        last = lv[k, LV_LAST]
        o[last, O_NXT] = slot
        o[slot, O_PRV] = last
        lv[k, LV_LAST] = slot
        lv[k, LV_COUNT] += 1
    o[slot, O_NXT] = -1
    o[slot, O_VSTATE] = V_RESTING
    return True


@hot
def unlink(st, slot: int) -> None:
    """Take a resting order off its level (and the level off the list when it empties)."""
    o = st.o
    inst, side, price = o[slot, O_INST], o[slot, O_SIDE], o[slot, O_PRICE]
    lv = st.lv[inst, _si(side)]
    k = find_level(st, inst, side, price)
    nxt, prv = o[slot, O_NXT], o[slot, O_PRV]
    if prv >= 0:
        o[prv, O_NXT] = nxt
    else:
        lv[k, LV_FIRST] = nxt
    if nxt >= 0:
        o[nxt, O_PRV] = prv
    else:
        lv[k, LV_LAST] = prv
    lv[k, LV_COUNT] -= 1
    if lv[k, LV_COUNT] == 0:
        col = _count_col(side)
        n = st.mk[inst, col]
        for j in range(k, n - 1):
            for c in range(LV_N):
                lv[j, c] = lv[j + 1, c]
        for c in range(LV_N):
            lv[n - 1, c] = 0
        st.mk[inst, col] = n - 1
    o[slot, O_NXT] = -1
    o[slot, O_PRV] = -1
    o[slot, O_VSTATE] = V_DONE


@hot
def _own_cross(st, inst: int, side: int, limit: int, is_market: bool) -> int:
    """A resting order of ours on the other side that this order would trade with, or -1."""
    opp = -side
    n = st.mk[inst, _count_col(opp)]
    if n == 0:
        return -1
    best = st.lv[inst, _si(opp), n - 1]
    if _within(side, best[LV_PX], limit, is_market):
        return best[LV_FIRST]
    return -1


# ------------------------------------------------------------------------ order entry


@hot
def order_arrive(st, slot: int) -> None:
    """A new order reaches the venue: reject, take liquidity, rest or expire."""
    o = st.o[slot]
    inst, side = o[O_INST], o[O_SIDE]
    is_market = o[O_OTYPE] == OT_MARKET
    limit = o[O_PRICE]
    o[O_TS_VENUE] = st.ctl[CK_NOW]
    remaining = o[O_QTY] - o[O_VFILLED]
    opp = -side
    if (o[O_FLAGS] & OF_POST_ONLY) != 0 and not is_market:
        if _n_levels(st, inst, opp) > 0:
            px, _ = _level(st, inst, opp, 0)
            if _within(side, px, limit, False):
                o[O_VSTATE] = V_DONE
                report(st, slot, ST_REJECTED, R_POST_ONLY_WOULD_CROSS)
                return
    mine = _own_cross(st, inst, side, limit, is_market)
    if mine >= 0:
        o[O_VSTATE] = V_DONE
        alert(
            st,
            A_SELF_TRADE,
            SEV_WARNING,
            R_SELF_TRADE_PREVENTED,
            o[O_OID],
            inst,
            o[O_STRAT],
            st.o[mine, O_OID],
        )
        report(st, slot, ST_EXPIRED, R_SELF_TRADE_PREVENTED)
        return
    if o[O_TIF] == TIF_FOK:
        if available_to(st, inst, side, limit, is_market, remaining) < remaining:
            o[O_VSTATE] = V_DONE
            report(st, slot, ST_EXPIRED, R_FOK_UNFILLABLE)
            return
    report(st, slot, ST_ACCEPTED, R_VENUE_ACK)
    for k in range(_n_levels(st, inst, opp)):
        if remaining == 0:
            break
        px, qty = _level(st, inst, opp, k)
        if not _within(side, px, limit, is_market):
            break
        avail = qty - consumed(st, inst, opp, px)
        if avail <= 0:
            continue
        take = avail if avail < remaining else remaining
        fill(st, slot, px, take, LIQ_TAKER)
        consume(st, inst, opp, px, take)
        remaining -= take
    if remaining == 0:
        o[O_VSTATE] = V_DONE
        return
    if is_market or o[O_TIF] == TIF_IOC or o[O_TIF] == TIF_FOK:
        o[O_VSTATE] = V_DONE
        report(st, slot, ST_EXPIRED, R_NO_LIQUIDITY if is_market else R_IOC_REMAINDER)
        return
    # The GTC remainder rests behind what is displayed at its price.
    o[O_QAHEAD] = displayed(st, inst, side, limit)
    o[O_PTRADE] = 0
    if not link(st, slot):
        o[O_VSTATE] = V_DONE
        report(st, slot, ST_EXPIRED, R_TOO_MANY_LEVELS)


@hot
def cancel_arrive(st, slot: int) -> None:
    """A cancel request reaches the venue."""
    if st.o[slot, O_VSTATE] == V_RESTING:
        unlink(st, slot)
        report(st, slot, ST_CANCELED, R_CANCELED)
    else:
        report(st, slot, CANCEL_REJECT_STATE, R_CANCEL_REJECTED)


@hot
def amend_arrive(st, slot: int, price: int, qty: int) -> bool:
    """An amend reaches the venue: move a resting order to a new price and/or quantity.

    The venue model of real exchanges (Binance's order.amend.keepPriority, CME, Eurex):
    reducing the quantity at the same price keeps the order's place in the queue; a new
    price or a larger quantity sends it to the back of its (new) level, behind what is
    displayed there. An amend never takes liquidity: a new price that would cross the other
    side is refused and the order stays as it was. Returns True when applied.
    """
    o = st.o[slot]
    if o[O_VSTATE] != V_RESTING:
        report(st, slot, AMEND_REJECT_STATE, R_AMEND_REJECTED)
        return False
    if qty <= o[O_VFILLED]:
        report(st, slot, AMEND_REJECT_STATE, R_AMEND_BAD_QUANTITY)
        return False
    inst, side = o[O_INST], o[O_SIDE]
    if price != o[O_PRICE]:
        opp = -side
        if _n_levels(st, inst, opp) > 0:
            px, _ = _level(st, inst, opp, 0)
            if _within(side, px, price, False):
                report(st, slot, AMEND_REJECT_STATE, R_AMEND_WOULD_CROSS)
                return False
        if _own_cross(st, inst, side, price, False) >= 0:
            report(st, slot, AMEND_REJECT_STATE, R_AMEND_WOULD_CROSS)
            return False
    if price == o[O_PRICE] and qty <= o[O_QTY]:
        o[O_QTY] = qty  # smaller at the same price: keeps its place
    else:
        old_px, old_qty = o[O_PRICE], o[O_QTY]
        unlink(st, slot)
        o[O_PRICE] = price
        o[O_QTY] = qty
        if not link(st, slot):
            # No level slot for the new price: put it back as it was and refuse.
            o[O_PRICE] = old_px
            o[O_QTY] = old_qty
            link(st, slot)
            report(st, slot, AMEND_REJECT_STATE, R_TOO_MANY_LEVELS)
            return False
        o[O_QAHEAD] = displayed(st, inst, side, price)
        o[O_PTRADE] = 0
    o[O_TS_VENUE] = st.ctl[CK_NOW]
    report(st, slot, AMEND_ACK_STATE, R_AMENDED)
    return True


# ------------------------------------------------------------------------ market data


@hot
def has_interest(st, inst: int) -> bool:
    """Whether market data of `inst` can affect our orders (resting ones or consumed levels)."""
    mk = st.mk[inst]
    return mk[MK_LV_BID] > 0 or mk[MK_LV_ASK] > 0 or mk[MK_CONS_N] > 0


@kernel
def on_level(st, inst: int, side: int, price: int, old_qty: int, new_qty: int) -> None:
    """A data row sets (side, price) from old_qty to new_qty: refresh and move queues."""
    refresh_level(st, inst, side, price)
    k = find_level(st, inst, side, price)
    if k < 0:
        return
    o = st.o
    proportional = st.ctl[CI_QUEUE_MODEL] == QM_PROPORTIONAL
    cur = st.lv[inst, _si(side), k, LV_FIRST]
    while cur >= 0:
        ahead = o[cur, O_QAHEAD]
        if proportional and new_qty < old_qty and ahead > 0:
            dec = old_qty - new_qty
            traded = o[cur, O_PTRADE]
            explained = traded if traded < dec else dec
            o[cur, O_PTRADE] = traded - explained
            cancels = dec - explained
            if cancels > 0 and old_qty > 0:
                ahead -= cancels * ahead // old_qty
        else:
            o[cur, O_PTRADE] = 0
        if ahead > new_qty:
            ahead = new_qty
        o[cur, O_QAHEAD] = ahead if ahead > 0 else 0
        cur = o[cur, O_NXT]


@kernel
def on_snapshot_done(st, inst: int) -> None:
    """After a full snapshot: queues cannot be longer than what is displayed now."""
    for side in (SIDE_BUY_CODE, SIDE_SELL_CODE):
        lv = st.lv[inst, _si(side)]
        for k in range(st.mk[inst, _count_col(side)]):
            shown = displayed(st, inst, side, lv[k, LV_PX])
            cur = lv[k, LV_FIRST]
            while cur >= 0:
                if st.o[cur, O_QAHEAD] > shown:
                    st.o[cur, O_QAHEAD] = shown
                cur = st.o[cur, O_NXT]


@kernel
def on_trade(
    st, inst: int, aggressor: int, price: int, qty: int, best_bid_px: int, best_ask_px: int
) -> None:
    """A recorded trade: hand its volume to our resting orders it could have hit."""
    if aggressor != SIDE_BUY_CODE and aggressor != SIDE_SELL_CODE:
        # Unknown aggressor: infer it from where the print sits against the book.
        if best_ask_px != NO_PRICE and price >= best_ask_px:
            aggressor = SIDE_BUY_CODE
        elif best_bid_px != NO_PRICE and price <= best_bid_px:
            aggressor = SIDE_SELL_CODE
        else:
            return
    maker = -aggressor
    o = st.o
    lv = st.lv[inst, _si(maker)]
    volume = qty
    # Best level first (the end of the sorted levels); levels may vanish as orders fill, so
    # re-read the count and walk down from the top each time.
    while volume > 0:
        n = st.mk[inst, _count_col(maker)]
        if n == 0:
            break
        px = lv[n - 1, LV_PX]
        better = _better(maker, px, price)
        if not better and px != price:
            break  # our best level is worse than the print: nothing of ours traded
        filled_any = False
        cur = lv[n - 1, LV_FIRST]
        while cur >= 0 and volume > 0:
            nxt = o[cur, O_NXT]
            if not better:
                ahead = o[cur, O_QAHEAD]
                eat = ahead if ahead < volume else volume
                o[cur, O_QAHEAD] = ahead - eat
                o[cur, O_PTRADE] += eat
                volume -= eat
            if volume > 0 and (better or o[cur, O_QAHEAD] == 0):
                left = o[cur, O_QTY] - o[cur, O_VFILLED]
                take = left if left < volume else volume
                if take > 0:
                    fill(st, cur, px, take, LIQ_MAKER)
                    volume -= take
                    filled_any = True
                    if not better:
                        o[cur, O_PTRADE] += take
                    if o[cur, O_VFILLED] >= o[cur, O_QTY]:
                        unlink(st, cur)
            cur = nxt
        if not better or not filled_any:
            break  # a print at our price ends here; a better level not emptied keeps the rest
        if st.mk[inst, _count_col(maker)] == n:
            break  # the level did not empty: what is left of the print stayed there
