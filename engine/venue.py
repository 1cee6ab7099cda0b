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
    R_CANCEL_REJECTED,
    R_CANCELED,
    R_FOK_UNFILLABLE,
    R_IOC_REMAINDER,
    R_NO_LIQUIDITY,
    R_POST_ONLY_WOULD_CROSS,
    R_SELF_TRADE_PREVENTED,
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
from engine.jit import kernel
from engine.oms import alert
from engine.portfolio import fee_of
from engine.scheduler import schedule
from engine.state import CF_MAKER_FEE, CF_TAKER_FEE, CI_QUEUE_MODEL, CI_REPORT_LATENCY, CK_NOW
from engine.stats import C_FILLED_LOTS, C_MAKER_FILLS, C_TAKER_FILLS

V_NOT_THERE = 0
V_RESTING = 1
V_DONE = 2
CANCEL_REJECT_STATE = -1
"""`aux` of a report that says a cancel failed (too late or unknown at the venue)."""


# ----------------------------------------------------------------------------- reports


@kernel
def report(st, slot: int, state: int, reason: int) -> None:
    """Send a state report to the engine (arrives after the report latency)."""
    schedule(
        st,
        st.clock[CK_NOW] + st.cfg_i[CI_REPORT_LATENCY],
        EV_REPORT,
        st.orders.oid[slot],
        state,
        reason,
        0,
    )
    st.orders.inflight[slot] += 1


@kernel
def fill(st, slot: int, price: int, qty: int, liq: int) -> None:
    """Record a venue fill and send its report."""
    o = st.orders
    o.v_filled[slot] += qty
    inst = o.inst[slot]
    rate = st.cfg_f[CF_MAKER_FEE] if liq == LIQ_MAKER else st.cfg_f[CF_TAKER_FEE]
    f = st.fills
    k = f.n[0]
    if k < f.ts.shape[0]:
        f.ts[k] = st.clock[CK_NOW]
        f.oid[k] = o.oid[slot]
        f.cid[k] = o.cid[slot]
        f.inst[k] = inst
        f.strat[k] = o.strat[slot]
        f.side[k] = o.side[slot]
        f.liq[k] = liq
        f.price[k] = price
        f.qty[k] = qty
        f.fee[k] = fee_of(st, inst, price, qty, rate)
        f.n[0] = k + 1
    if liq == LIQ_MAKER:
        st.counters[C_MAKER_FILLS] += 1
    else:
        st.counters[C_TAKER_FILLS] += 1
    st.counters[C_FILLED_LOTS] += qty
    schedule(
        st,
        st.clock[CK_NOW] + st.cfg_i[CI_REPORT_LATENCY],
        EV_FILL_REPORT,
        o.oid[slot],
        qty,
        price,
        liq,
    )
    o.inflight[slot] += 1


# ------------------------------------------------------------------ consumed liquidity


@kernel
def consumed(st, inst: int, side: int, price: int) -> int:
    """Lots of the displayed level (side, price) our taker fills already used."""
    m = st.market
    for k in range(m.cons_n[inst]):
        if m.cons_px[inst, k] == price and m.cons_side[inst, k] == side:
            return m.cons_qty[inst, k]
    return 0


@kernel
def consume(st, inst: int, side: int, price: int, qty: int) -> None:
    """Mark `qty` of the displayed level as used by us until the data refreshes it."""
    m = st.market
    for k in range(m.cons_n[inst]):
        if m.cons_px[inst, k] == price and m.cons_side[inst, k] == side:
            m.cons_qty[inst, k] += qty
            return
    n = m.cons_n[inst]
    if n >= m.cons_px.shape[1]:
        # Table full: forget the oldest entry (the data has most likely refreshed it).
        for k in range(n - 1):
            m.cons_px[inst, k] = m.cons_px[inst, k + 1]
            m.cons_side[inst, k] = m.cons_side[inst, k + 1]
            m.cons_qty[inst, k] = m.cons_qty[inst, k + 1]
        n -= 1
    m.cons_px[inst, n] = price
    m.cons_side[inst, n] = side
    m.cons_qty[inst, n] = qty
    m.cons_n[inst] = n + 1


@kernel
def refresh_level(st, inst: int, side: int, price: int) -> None:
    """The data set this level anew: what we consumed there is no longer subtracted."""
    m = st.market
    n = m.cons_n[inst]
    for k in range(n):
        if m.cons_px[inst, k] == price and m.cons_side[inst, k] == side:
            for j in range(k, n - 1):
                m.cons_px[inst, j] = m.cons_px[inst, j + 1]
                m.cons_side[inst, j] = m.cons_side[inst, j + 1]
                m.cons_qty[inst, j] = m.cons_qty[inst, j + 1]
            m.cons_px[inst, n - 1] = 0
            m.cons_side[inst, n - 1] = 0
            m.cons_qty[inst, n - 1] = 0
            m.cons_n[inst] = n - 1
            return


@kernel
def refresh_all(st, inst: int) -> None:
    """A clear or snapshot: forget everything consumed on the instrument."""
    m = st.market
    for k in range(m.cons_n[inst]):
        m.cons_px[inst, k] = 0
        m.cons_side[inst, k] = 0
        m.cons_qty[inst, k] = 0
    m.cons_n[inst] = 0


# ------------------------------------------------------------------ opposite liquidity


@kernel
def _n_levels(st, inst: int, side: int) -> int:
    """Levels on `side` (book, else the quote as a one-level book)."""
    b = st.book
    n = b.bid_n[inst] if side == SIDE_BUY_CODE else b.ask_n[inst]
    if n > 0:
        return n
    m = st.market
    q = m.q_bid_qty[inst] if side == SIDE_BUY_CODE else m.q_ask_qty[inst]
    return 1 if q > 0 else 0


@kernel
def _level(st, inst: int, side: int, k: int):
    """The k-th best level on `side` as (price, displayed lots)."""
    b = st.book
    if side == SIDE_BUY_CODE:
        n = b.bid_n[inst]
        if n > 0:
            return b.bid_px[inst, n - 1 - k], b.bid_qty[inst, n - 1 - k]
        return st.market.q_bid_px[inst], st.market.q_bid_qty[inst]
    n = b.ask_n[inst]
    if n > 0:
        return b.ask_px[inst, n - 1 - k], b.ask_qty[inst, n - 1 - k]
    return st.market.q_ask_px[inst], st.market.q_ask_qty[inst]


@kernel
def _within(side: int, level_px: int, limit: int, is_market: bool) -> bool:
    """Whether an opposite level at level_px is reachable by an order of `side` at `limit`."""
    if is_market:
        return True
    if side == SIDE_BUY_CODE:
        return level_px <= limit
    return level_px >= limit


@kernel
def displayed(st, inst: int, side: int, price: int) -> int:
    """Displayed lots at (side, price): the book, else the quote."""
    b = st.book
    n = b.bid_n[inst] if side == SIDE_BUY_CODE else b.ask_n[inst]
    if n > 0:
        return depth_at(b, inst, side, price)
    m = st.market
    if side == SIDE_BUY_CODE:
        return m.q_bid_qty[inst] if m.q_bid_px[inst] == price else 0
    return m.q_ask_qty[inst] if m.q_ask_px[inst] == price else 0


@kernel
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


# ----------------------------------------------------------------- resting order lists


@kernel
def _side_idx(side: int) -> int:
    return 0 if side == SIDE_BUY_CODE else 1


@kernel
def _ahead_of(st, a: int, b: int) -> bool:
    """Whether resting order a has priority over b (same instrument and side)."""
    o = st.orders
    if o.price[a] != o.price[b]:
        if o.side[a] == SIDE_BUY_CODE:
            return o.price[a] > o.price[b]
        return o.price[a] < o.price[b]
    return o.cid[a] < o.cid[b]


@kernel
def link(st, slot: int) -> None:
    """Insert a resting order into its instrument/side list in price-time priority."""
    o = st.orders
    inst = o.inst[slot]
    si = _side_idx(o.side[slot])
    cur = o.rest_head[inst, si]
    prev = -1
    while cur >= 0 and _ahead_of(st, cur, slot):
        prev = cur
        cur = o.nxt[cur]
    o.nxt[slot] = cur
    o.prv[slot] = prev
    if cur >= 0:
        o.prv[cur] = slot
    if prev >= 0:
        o.nxt[prev] = slot
    else:
        o.rest_head[inst, si] = slot
    o.v_state[slot] = V_RESTING


@kernel
def unlink(st, slot: int) -> None:
    """Take a resting order off its list."""
    o = st.orders
    inst = o.inst[slot]
    si = _side_idx(o.side[slot])
    nxt, prv = o.nxt[slot], o.prv[slot]
    if prv >= 0:
        o.nxt[prv] = nxt
    else:
        o.rest_head[inst, si] = nxt
    if nxt >= 0:
        o.prv[nxt] = prv
    o.nxt[slot] = -1
    o.prv[slot] = -1
    o.v_state[slot] = V_DONE


@kernel
def _own_cross(st, inst: int, side: int, limit: int, is_market: bool) -> int:
    """A resting order of ours on the other side that this order would trade with, or -1."""
    o = st.orders
    cur = o.rest_head[inst, _side_idx(-side)]
    if cur >= 0 and _within(side, o.price[cur], limit, is_market):
        return cur
    return -1


# ------------------------------------------------------------------------ order entry


@kernel
def order_arrive(st, slot: int) -> None:
    """A new order reaches the venue: reject, take liquidity, rest or expire."""
    o = st.orders
    inst, side = o.inst[slot], o.side[slot]
    is_market = o.otype[slot] == OT_MARKET
    limit = o.price[slot]
    o.ts_venue[slot] = st.clock[CK_NOW]
    remaining = o.qty[slot] - o.v_filled[slot]
    opp = -side
    if (o.flags[slot] & OF_POST_ONLY) != 0 and not is_market:
        if _n_levels(st, inst, opp) > 0:
            px, _ = _level(st, inst, opp, 0)
            if _within(side, px, limit, False):
                o.v_state[slot] = V_DONE
                report(st, slot, ST_REJECTED, R_POST_ONLY_WOULD_CROSS)
                return
    mine = _own_cross(st, inst, side, limit, is_market)
    if mine >= 0:
        o.v_state[slot] = V_DONE
        alert(
            st,
            A_SELF_TRADE,
            SEV_WARNING,
            R_SELF_TRADE_PREVENTED,
            o.oid[slot],
            inst,
            o.strat[slot],
            o.oid[mine],
        )
        report(st, slot, ST_EXPIRED, R_SELF_TRADE_PREVENTED)
        return
    if o.tif[slot] == TIF_FOK:
        if available_to(st, inst, side, limit, is_market, remaining) < remaining:
            o.v_state[slot] = V_DONE
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
        o.v_state[slot] = V_DONE
        return
    if is_market or o.tif[slot] == TIF_IOC or o.tif[slot] == TIF_FOK:
        o.v_state[slot] = V_DONE
        why = R_NO_LIQUIDITY if is_market else R_IOC_REMAINDER
        report(st, slot, ST_EXPIRED, why)
        return
    # GTC remainder rests behind what is displayed at its price.
    o.queue_ahead[slot] = displayed(st, inst, side, limit)
    o.pending_trade[slot] = 0
    link(st, slot)


@kernel
def cancel_arrive(st, slot: int) -> None:
    """A cancel request reaches the venue."""
    o = st.orders
    if o.v_state[slot] == V_RESTING:
        unlink(st, slot)
        report(st, slot, ST_CANCELED, R_CANCELED)
    else:
        report(st, slot, CANCEL_REJECT_STATE, R_CANCEL_REJECTED)


# ------------------------------------------------------------------------ market data


@kernel
def has_interest(st, inst: int) -> bool:
    """Whether market data of `inst` can affect our orders (resting ones or consumed levels)."""
    o = st.orders
    return o.rest_head[inst, 0] >= 0 or o.rest_head[inst, 1] >= 0 or st.market.cons_n[inst] > 0


@kernel
def on_level(st, inst: int, side: int, price: int, old_qty: int, new_qty: int) -> None:
    """A data row sets (side, price) from old_qty to new_qty: refresh and move queues."""
    refresh_level(st, inst, side, price)
    o = st.orders
    cur = o.rest_head[inst, _side_idx(side)]
    proportional = st.cfg_i[CI_QUEUE_MODEL] == QM_PROPORTIONAL
    while cur >= 0:
        if o.price[cur] == price:
            ahead = o.queue_ahead[cur]
            if proportional and new_qty < old_qty and ahead > 0:
                dec = old_qty - new_qty
                traded = o.pending_trade[cur]
                explained = traded if traded < dec else dec
                o.pending_trade[cur] = traded - explained
                cancels = dec - explained
                if cancels > 0 and old_qty > 0:
                    ahead -= cancels * ahead // old_qty
            else:
                o.pending_trade[cur] = 0
            if ahead > new_qty:
                ahead = new_qty
            o.queue_ahead[cur] = ahead if ahead > 0 else 0
        cur = o.nxt[cur]


@kernel
def on_snapshot_done(st, inst: int) -> None:
    """After a full snapshot: queues cannot be longer than what is displayed now."""
    o = st.orders
    for si in range(2):
        cur = o.rest_head[inst, si]
        while cur >= 0:
            shown = displayed(st, inst, o.side[cur], o.price[cur])
            if o.queue_ahead[cur] > shown:
                o.queue_ahead[cur] = shown
            cur = o.nxt[cur]


@kernel
def on_trade(
    st, inst: int, aggressor: int, price: int, qty: int, best_bid_px: int, best_ask_px: int
) -> None:
    """A recorded trade: hand its volume to our resting orders it could have hit."""
    if aggressor != SIDE_BUY_CODE and aggressor != SIDE_SELL_CODE:
        # Unknown aggressor: infer from where the print sits against the book.
        if best_ask_px != NO_PRICE and price >= best_ask_px:
            aggressor = SIDE_BUY_CODE
        elif best_bid_px != NO_PRICE and price <= best_bid_px:
            aggressor = SIDE_SELL_CODE
        else:
            return
    maker_side = -aggressor
    o = st.orders
    volume = qty
    cur = o.rest_head[inst, _side_idx(maker_side)]
    while cur >= 0 and volume > 0:
        nxt = o.nxt[cur]
        px = o.price[cur]
        better = px > price if maker_side == SIDE_BUY_CODE else px < price
        if not better and px != price:
            break  # the list is in priority order: nothing further can trade
        if not better:
            ahead = o.queue_ahead[cur]
            eat = ahead if ahead < volume else volume
            o.queue_ahead[cur] = ahead - eat
            o.pending_trade[cur] += eat
            volume -= eat
        if volume > 0 and (better or o.queue_ahead[cur] == 0):
            left = o.qty[cur] - o.v_filled[cur]
            take = left if left < volume else volume
            if take > 0:
                fill(st, cur, px, take, LIQ_MAKER)
                volume -= take
                if not better:
                    o.pending_trade[cur] += take
                if o.v_filled[cur] >= o.qty[cur]:
                    unlink(st, cur)
        cur = nxt
