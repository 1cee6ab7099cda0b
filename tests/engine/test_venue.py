"""The simulated venue, driven through Engine with manual commands and a scripted strategy.

Markets are hand-made (tests/engine/market.py): tick 0.01, lot 1, so a fill of q lots at
p ticks has a notional of p * q / 100 and a fee of that times the rate.
"""

from __future__ import annotations

import pytest

from engine.codes import (
    A_SELF_TRADE,
    LIQ_MAKER,
    LIQ_TAKER,
    OF_POST_ONLY,
    R_CANCEL_ALL,
    R_CANCELED,
    R_FILL,
    R_FOK_UNFILLABLE,
    R_IOC_REMAINDER,
    R_NEW,
    R_NO_LIQUIDITY,
    R_POST_ONLY_WOULD_CROSS,
    R_SELF_TRADE_PREVENTED,
    R_VENUE_ACK,
    ST_ACCEPTED,
    ST_CANCELED,
    ST_EXPIRED,
    ST_FILLED,
    ST_PARTIALLY_FILLED,
    ST_PENDING_CANCEL,
    ST_REJECTED,
    ST_SUBMITTED,
    TIF_FOK,
    TIF_IOC,
)
from engine.commands import CMD_CANCEL, CMD_MANUAL_LIMIT, CMD_MANUAL_MARKET, Command
from engine.config import EngineConfig
from engine.runner import Engine
from engine.state import PF_FEES, PI_OPEN_BUY, PI_POS, RI_OPEN_ORDERS
from engine.strategy_api import queue_ahead
from tests.engine import strategies
from tests.engine.market import (
    BUY,
    MS,
    SELL,
    Market,
    book_market,
    fills_of,
    journal_of,
    run_to,
    status,
)

MAKER = 0.0002
TAKER = 0.0005
MANUAL = -1  # the manual trading row of the portfolio


def fee(price: int, qty: int, rate: float) -> float:
    return price * qty * 0.01 * rate


def limit(eng: Engine, side: int, price: int, qty: int) -> int:
    return eng.command(Command(CMD_MANUAL_LIMIT, 0, side, price, qty))


def market(eng: Engine, side: int, qty: int) -> int:
    return eng.command(Command(CMD_MANUAL_MARKET, 0, side, 0, qty))


def scripted(stream, config=None, **order) -> Engine:
    """One Scripted instance that sends its order on the first message (t = 1 ms)."""
    eng = Engine(stream, strategies.Scripted, [order], config or EngineConfig())
    eng.run()
    return eng


# ------------------------------------------------------------------------------ latency


def test_fill_time_is_submit_plus_entry_latency_and_oms_sees_it_after_report_latency():
    cfg = EngineConfig(entry_latency_ns=3 * MS, report_latency_ns=2 * MS)
    eng = Engine(book_market().stream(), config=cfg)
    run_to(eng, 2 * MS)
    oid = market(eng, BUY, 8)
    assert oid >= 0
    run_to(eng, 5 * MS - 1)
    assert fills_of(eng) == []
    run_to(eng, 5 * MS)
    assert fills_of(eng) == [
        (5 * MS, BUY, LIQ_TAKER, 10_010, 5),
        (5 * MS, BUY, LIQ_TAKER, 10_020, 3),
    ]
    run_to(eng, 7 * MS - 1)
    assert status(eng, oid) == ST_SUBMITTED  # the venue filled it; the OMS does not know yet
    assert eng.state.pi[MANUAL, 0, PI_POS] == 0
    run_to(eng, 7 * MS)
    assert journal_of(eng, oid) == [
        (2 * MS, 0, ST_SUBMITTED, R_NEW, 0, 8),
        (7 * MS, ST_SUBMITTED, ST_ACCEPTED, R_VENUE_ACK, 0, 8),
        (7 * MS, ST_ACCEPTED, ST_PARTIALLY_FILLED, R_FILL, 10_010, 5),
        (7 * MS, ST_PARTIALLY_FILLED, ST_FILLED, R_FILL, 10_020, 3),
    ]
    assert eng.state.pi[MANUAL, 0, PI_POS] == 8
    assert status(eng, oid) == -1  # done, slot freed


def test_cancel_latency_is_its_own_setting():
    cfg = EngineConfig(entry_latency_ns=MS, cancel_latency_ns=4 * MS, report_latency_ns=MS)
    eng = Engine(book_market().stream(), config=cfg)
    run_to(eng, 2 * MS)
    oid = limit(eng, BUY, 9_900, 1)
    run_to(eng, 5 * MS)
    assert eng.command(Command(CMD_CANCEL, oid)) == 1
    run_to(eng, 20 * MS)
    assert journal_of(eng, oid)[-2:] == [
        (5 * MS, ST_ACCEPTED, ST_PENDING_CANCEL, R_CANCEL_ALL, 9_900, 1),
        (10 * MS, ST_PENDING_CANCEL, ST_CANCELED, R_CANCELED, 9_900, 1),
    ]


# ------------------------------------------------------------------------ taking liquidity


def test_market_order_walks_the_book_with_exact_prices_and_taker_fees():
    eng = Engine(book_market().stream())
    run_to(eng, 2 * MS)
    oid = market(eng, BUY, 15)
    eng.run()
    assert fills_of(eng, oid) == [
        (3 * MS, BUY, LIQ_TAKER, 10_010, 5),
        (3 * MS, BUY, LIQ_TAKER, 10_020, 7),
        (3 * MS, BUY, LIQ_TAKER, 10_030, 3),
    ]
    fees = eng.fills()["fee"]
    assert fees.tolist() == pytest.approx(
        [fee(10_010, 5, TAKER), fee(10_020, 7, TAKER), fee(10_030, 3, TAKER)], rel=1e-12
    )
    assert eng.state.pf[MANUAL, 0, PF_FEES] == pytest.approx(sum(fees), rel=1e-12)
    assert eng.state.pi[MANUAL, 0, PI_POS] == 15


def test_market_sell_walks_the_bids_and_an_unfilled_remainder_expires():
    eng = Engine(book_market().stream())
    run_to(eng, 2 * MS)
    oid = market(eng, SELL, 40)  # 30 lots displayed
    eng.run()
    assert fills_of(eng, oid) == [
        (3 * MS, SELL, LIQ_TAKER, 9_990, 10),
        (3 * MS, SELL, LIQ_TAKER, 9_980, 20),
    ]
    assert journal_of(eng, oid)[-1] == (
        4 * MS,
        ST_PARTIALLY_FILLED,
        ST_EXPIRED,
        R_NO_LIQUIDITY,
        0,
        10,
    )
    assert eng.state.pi[MANUAL, 0, PI_POS] == -30


def consumed_market(refresh: bool) -> Market:
    m = Market()
    m.snapshot(MS, bids=[(9_990, 10)], asks=[(10_010, 5), (10_020, 7), (10_030, 9)])
    m.tick(11 * MS)
    if refresh:
        m.delta(25 * MS, SELL, 10_010, 5)  # the data restates the level: it is fresh again
    else:
        m.tick(25 * MS)
    m.tick(41 * MS)
    return m


@pytest.mark.parametrize("refresh", [False, True])
def test_liquidity_our_fills_consumed_stays_consumed_until_the_level_is_refreshed(refresh):
    eng = Engine(consumed_market(refresh).stream())
    run_to(eng, 2 * MS)
    first = market(eng, BUY, 5)
    second = market(eng, BUY, 5)  # same instant: cannot take the same 5 lots at 10_010
    run_to(eng, 30 * MS)
    third = market(eng, BUY, 3)
    eng.run()
    assert fills_of(eng, first) == [(3 * MS, BUY, LIQ_TAKER, 10_010, 5)]
    assert fills_of(eng, second) == [(3 * MS, BUY, LIQ_TAKER, 10_020, 5)]
    if refresh:
        assert fills_of(eng, third) == [(31 * MS, BUY, LIQ_TAKER, 10_010, 3)]
    else:  # 10_010 still used up, 2 lots left at 10_020
        assert fills_of(eng, third) == [
            (31 * MS, BUY, LIQ_TAKER, 10_020, 2),
            (31 * MS, BUY, LIQ_TAKER, 10_030, 1),
        ]


def test_ioc_remainder_expires():
    eng = scripted(book_market().stream(), side=BUY, price=10_010, qty=8, tif=TIF_IOC)
    oid = int(eng.rows[0]["oid"])
    assert fills_of(eng, oid) == [(2 * MS, BUY, LIQ_TAKER, 10_010, 5)]
    assert journal_of(eng, oid) == [
        (MS, 0, ST_SUBMITTED, R_NEW, 10_010, 8),
        (3 * MS, ST_SUBMITTED, ST_ACCEPTED, R_VENUE_ACK, 10_010, 8),
        (3 * MS, ST_ACCEPTED, ST_PARTIALLY_FILLED, R_FILL, 10_010, 5),
        (3 * MS, ST_PARTIALLY_FILLED, ST_EXPIRED, R_IOC_REMAINDER, 10_010, 3),
    ]
    row = eng.rows[0]
    assert row["hist"] == 0x359  # accepted, partially filled, expired
    assert eng.state.pi[0, 0, PI_POS] == 5
    assert eng.state.pi[0, 0, PI_OPEN_BUY] == 0
    assert eng.state.ri[0, RI_OPEN_ORDERS] == 0


def test_fok_that_cannot_fill_entirely_expires_without_any_fill():
    eng = scripted(book_market().stream(), side=BUY, price=10_020, qty=13, tif=TIF_FOK)
    oid = int(eng.rows[0]["oid"])
    assert fills_of(eng) == []
    assert journal_of(eng, oid)[1:] == [
        (3 * MS, ST_SUBMITTED, ST_EXPIRED, R_FOK_UNFILLABLE, 10_020, 13)
    ]
    assert eng.rows[0]["hist"] == ST_EXPIRED
    assert eng.state.pi[0, 0, PI_POS] == 0


def test_fok_that_can_fill_fills_entirely():
    eng = scripted(book_market().stream(), side=BUY, price=10_020, qty=12, tif=TIF_FOK)
    oid = int(eng.rows[0]["oid"])
    assert fills_of(eng, oid) == [
        (2 * MS, BUY, LIQ_TAKER, 10_010, 5),
        (2 * MS, BUY, LIQ_TAKER, 10_020, 7),
    ]
    assert eng.rows[0]["hist"] == 0x356


def test_post_only_that_would_cross_is_rejected():
    eng = scripted(book_market().stream(), side=BUY, price=10_010, qty=1, flags=OF_POST_ONLY)
    oid = int(eng.rows[0]["oid"])
    assert fills_of(eng) == []
    assert journal_of(eng, oid)[1:] == [
        (3 * MS, ST_SUBMITTED, ST_REJECTED, R_POST_ONLY_WOULD_CROSS, 10_010, 1)
    ]
    assert eng.rows[0]["hist"] == ST_REJECTED
    assert eng.counters()["orders_rejected"] == 1


def test_post_only_that_does_not_cross_rests():
    eng = scripted(book_market().stream(), side=BUY, price=10_000, qty=1, flags=OF_POST_ONLY)
    oid = int(eng.rows[0]["oid"])
    assert status(eng, oid) == ST_ACCEPTED
    assert queue_ahead(eng.state, oid) == 0  # a new best bid: nobody ahead
    assert eng.state.pi[0, 0, PI_OPEN_BUY] == 1


# ------------------------------------------------------------------------- resting orders


def queue_market() -> Market:
    """Bid 9_990 x 10; trades at the bid (sellers hitting it) of 6, 6 and 5 lots."""
    m = Market()
    m.snapshot(MS, bids=[(9_990, 10), (9_980, 20)], asks=[(10_010, 5)])
    m.trade(11 * MS, 9_990, 6, SELL)
    m.delta(11 * MS, BUY, 9_990, 4)
    m.trade(21 * MS, 9_990, 6, SELL)
    m.delta(21 * MS, BUY, 9_990, 0)
    m.trade(31 * MS, 9_990, 5, SELL)
    m.tick(41 * MS)
    return m


def test_resting_buy_fills_only_after_the_queue_ahead_traded():
    eng = Engine(queue_market().stream())
    run_to(eng, MS)
    oid = limit(eng, BUY, 9_990, 3)
    run_to(eng, 10 * MS)
    assert status(eng, oid) == ST_ACCEPTED
    assert queue_ahead(eng.state, oid) == 10
    run_to(eng, 11 * MS)
    assert queue_ahead(eng.state, oid) == 4
    assert fills_of(eng) == []
    run_to(eng, 21 * MS)
    assert fills_of(eng, oid) == [(21 * MS, BUY, LIQ_MAKER, 9_990, 2)]
    eng.run()
    assert fills_of(eng, oid) == [
        (21 * MS, BUY, LIQ_MAKER, 9_990, 2),
        (31 * MS, BUY, LIQ_MAKER, 9_990, 1),
    ]
    assert eng.fills()["fee"].tolist() == pytest.approx(
        [fee(9_990, 2, MAKER), fee(9_990, 1, MAKER)], rel=1e-12
    )
    assert [r[2] for r in journal_of(eng, oid)] == [
        ST_SUBMITTED,
        ST_ACCEPTED,
        ST_PARTIALLY_FILLED,
        ST_FILLED,
    ]


def test_trade_through_a_better_price_fills_the_resting_order_at_its_price():
    m = Market()
    m.snapshot(MS, bids=[(9_990, 10), (9_980, 20)], asks=[(10_010, 5)])
    m.trade(11 * MS, 9_980, 2, SELL)
    m.tick(21 * MS)
    eng = Engine(m.stream())
    run_to(eng, MS)
    oid = limit(eng, BUY, 9_990, 3)
    eng.run()
    assert fills_of(eng, oid) == [(11 * MS, BUY, LIQ_MAKER, 9_990, 2)]


def test_buy_aggressor_trade_does_not_fill_a_resting_buy():
    m = Market()
    m.snapshot(MS, bids=[(9_990, 10)], asks=[(10_010, 5)])
    m.trade(11 * MS, 9_980, 50, BUY)  # a buyer's print cannot have hit our bid
    m.tick(21 * MS)
    eng = Engine(m.stream())
    run_to(eng, MS)
    limit(eng, BUY, 9_990, 3)
    eng.run()
    assert fills_of(eng) == []


def proportional_market() -> Market:
    m = Market()
    m.snapshot(MS, bids=[(9_990, 10)], asks=[(10_010, 5)])
    m.delta(11 * MS, BUY, 9_990, 20)  # 10 lots join behind us
    m.delta(21 * MS, BUY, 9_990, 16)  # 4 lots cancelled somewhere in the queue
    m.delta(31 * MS, BUY, 9_990, 5)  # 11 more
    m.trade(41 * MS, 9_990, 4, SELL)
    m.tick(51 * MS)
    return m


@pytest.mark.parametrize(
    ("model", "aheads", "fills"),
    [
        ("trades_only", [10, 10, 10, 5], []),
        # 10 - 4 * 10 // 20 = 8; then 8 - 11 * 8 // 16 = 3; the trade of 4 eats 3, fills 1
        ("proportional", [10, 10, 8, 3], [(41 * MS, BUY, LIQ_MAKER, 9_990, 1)]),
    ],
)
def test_cancels_ahead_move_the_queue_only_in_the_proportional_model(model, aheads, fills):
    eng = Engine(proportional_market().stream(), config=EngineConfig(queue_model=model))
    run_to(eng, MS)
    oid = limit(eng, BUY, 9_990, 1)
    seen = []
    for t in (2, 11, 21, 31):
        run_to(eng, t * MS)
        seen.append(int(queue_ahead(eng.state, oid)))
    assert seen == aheads
    eng.run()
    assert fills_of(eng) == fills


def test_one_trade_never_fills_our_orders_beyond_its_size():
    m = Market()
    m.snapshot(MS, bids=[(9_990, 10)], asks=[(10_010, 5)])
    m.trade(11 * MS, 9_980, 4, SELL)  # through both our bids
    m.trade(21 * MS, 10_000, 1, SELL)  # at our inside bid only
    m.tick(31 * MS)
    eng = Engine(m.stream())
    run_to(eng, MS)
    a = limit(eng, BUY, 10_000, 3)
    b = limit(eng, BUY, 9_990, 3)
    eng.run()
    assert fills_of(eng, a) == [(11 * MS, BUY, LIQ_MAKER, 10_000, 3)]
    assert fills_of(eng, b) == [(11 * MS, BUY, LIQ_MAKER, 9_990, 1)]  # 4 - 3 left for it
    assert sum(f[4] for f in fills_of(eng)) == 4


def test_one_trade_at_our_price_is_shared_in_time_priority():
    m = Market()
    m.snapshot(MS, bids=[(9_990, 10)], asks=[(10_010, 5)])
    m.trade(11 * MS, 10_000, 4, SELL)
    m.tick(21 * MS)
    eng = Engine(m.stream())
    run_to(eng, MS)
    a = limit(eng, BUY, 10_000, 3)
    b = limit(eng, BUY, 10_000, 3)
    eng.run()
    assert fills_of(eng, a) == [(11 * MS, BUY, LIQ_MAKER, 10_000, 3)]
    assert fills_of(eng, b) == [(11 * MS, BUY, LIQ_MAKER, 10_000, 1)]


def test_self_trade_is_prevented_and_alerted():
    eng = Engine(book_market().stream())
    run_to(eng, MS)
    resting = limit(eng, SELL, 10_000, 2)
    run_to(eng, 3 * MS)
    passive = limit(eng, BUY, 9_995, 1)  # does not reach our offer: no alert
    crossing = limit(eng, BUY, 10_000, 1)
    eng.run()
    assert fills_of(eng) == []
    assert journal_of(eng, crossing)[-1] == (
        5 * MS,
        ST_SUBMITTED,
        ST_EXPIRED,
        R_SELF_TRADE_PREVENTED,
        10_000,
        1,
    )
    assert status(eng, resting) == ST_ACCEPTED
    assert status(eng, passive) == ST_ACCEPTED
    al = eng.alerts()
    assert al["code"].tolist() == [A_SELF_TRADE]
    assert (al["ts"][0], al["oid"][0], al["value"][0]) == (4 * MS, crossing, resting)
    assert al["reason"][0] == R_SELF_TRADE_PREVENTED


def test_book_moving_through_a_resting_order_without_a_trade_does_not_fill_it():
    m = Market()
    m.snapshot(MS, bids=[(9_990, 10), (9_980, 20)], asks=[(10_010, 5)])
    m.delta(11 * MS, BUY, 9_990, 0, last=False)
    m.delta(11 * MS, SELL, 10_010, 0, last=False)
    m.delta(11 * MS, SELL, 9_985, 5)  # the offer is now below our bid: no print, no fill
    m.tick(21 * MS)
    m.trade(31 * MS, 9_985, 5, BUY)  # a buyer lifted the offer: not our bid either
    m.tick(41 * MS)
    eng = Engine(m.stream())
    run_to(eng, MS)
    oid = limit(eng, BUY, 9_990, 3)
    eng.run()
    assert fills_of(eng) == []
    assert status(eng, oid) == ST_ACCEPTED


def test_a_fill_racing_a_cancel_wins_and_the_failed_cancel_changes_nothing():
    m = Market()
    m.snapshot(MS, bids=[(9_990, 10)], asks=[(10_010, 5)])
    m.trade(5 * MS + MS // 2, 9_980, 5, SELL)  # fills us before the cancel arrives at 6 ms
    m.tick(21 * MS)
    eng = Engine(m.stream())
    run_to(eng, MS)
    oid = limit(eng, BUY, 9_990, 3)
    run_to(eng, 5 * MS)
    assert eng.command(Command(CMD_CANCEL, oid)) == 1
    assert eng.command(Command(CMD_CANCEL, oid)) == 0  # already pending: nothing sent
    eng.run()
    assert [r[1:4] for r in journal_of(eng, oid)] == [
        (0, ST_SUBMITTED, R_NEW),
        (ST_SUBMITTED, ST_ACCEPTED, R_VENUE_ACK),
        (ST_ACCEPTED, ST_PENDING_CANCEL, R_CANCEL_ALL),
        (ST_PENDING_CANCEL, ST_FILLED, R_FILL),
    ]
    assert eng.counters()["invalid_transitions"] == 0
    assert status(eng, oid) == -1  # freed once the cancel rejection came back
    assert eng.state.ri[MANUAL, RI_OPEN_ORDERS] == 0


def test_a_partial_fill_racing_a_cancel_then_the_cancel_succeeds():
    m = Market()
    m.snapshot(MS, bids=[(9_990, 10)], asks=[(10_010, 5)])
    m.trade(5 * MS + MS // 2, 9_980, 1, SELL)
    m.tick(21 * MS)
    eng = Engine(m.stream())
    run_to(eng, MS)
    oid = limit(eng, BUY, 9_990, 3)
    run_to(eng, 5 * MS)
    eng.command(Command(CMD_CANCEL, oid))
    eng.run()
    assert [r[1:4] for r in journal_of(eng, oid)][2:] == [
        (ST_ACCEPTED, ST_PENDING_CANCEL, R_CANCEL_ALL),
        (ST_PENDING_CANCEL, ST_PARTIALLY_FILLED, R_FILL),
        (ST_PARTIALLY_FILLED, ST_CANCELED, R_CANCELED),
    ]
    assert eng.state.pi[MANUAL, 0, PI_POS] == 1
    assert eng.state.pi[MANUAL, 0, PI_OPEN_BUY] == 0
    assert eng.state.ri[MANUAL, RI_OPEN_ORDERS] == 0


# --------------------------------------------------------------------------- quotes only


def quote_market() -> Market:
    m = Market()
    m.quote(MS, (9_990, 10), (10_010, 5))
    m.tick(11 * MS)
    m.quote(21 * MS, (9_990, 10), (10_010, 4))  # a fresh quote at the same price
    m.trade(31 * MS, 9_990, 12, SELL)
    m.tick(41 * MS)
    return m


def test_quote_only_data_uses_the_quote_as_liquidity():
    eng = Engine(quote_market().stream())
    run_to(eng, 2 * MS)
    first = market(eng, BUY, 8)
    rest = limit(eng, BUY, 9_990, 2)  # behind the 10 lots quoted at the bid
    run_to(eng, 5 * MS)
    second = market(eng, BUY, 2)  # the quoted 5 lots are used up
    run_to(eng, 22 * MS)
    third = market(eng, BUY, 2)  # the new quote restated the level
    eng.run()
    assert fills_of(eng, first) == [(3 * MS, BUY, LIQ_TAKER, 10_010, 5)]
    assert journal_of(eng, first)[-1][2:4] == (ST_EXPIRED, R_NO_LIQUIDITY)
    assert fills_of(eng, second) == []
    assert journal_of(eng, second)[-1][2:4] == (ST_EXPIRED, R_NO_LIQUIDITY)
    assert fills_of(eng, third) == [(23 * MS, BUY, LIQ_TAKER, 10_010, 2)]
    assert fills_of(eng, rest) == [(31 * MS, BUY, LIQ_MAKER, 9_990, 2)]
