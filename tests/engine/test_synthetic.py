"""The synthetic market: a valid, realistic and byte-reproducible event stream."""

from __future__ import annotations

import hashlib
import math
from decimal import Decimal

import numpy as np
import pytest

from engine.errors import UsageError
from engine.events import (
    EVENT_DTYPE,
    FLAG_LAST,
    FLAG_SNAPSHOT,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    KIND_NAMES,
    KIND_QUOTE,
    KIND_TRADE,
    SIDE_BUY,
    SIDE_NONE,
    SIDE_SELL,
)
from engine.synthetic import (
    EPOCH_2024_NS,
    SyntheticConfig,
    _ln,
    _next,
    _rng_states,
    default_market,
    generate,
)

GOLDEN_SHA256 = "c2cebde8ac262985d19f0959573fbad92dff16c56a36a86970d846d97a6df240"
"""sha256 of generate(SyntheticConfig(n_events=20_000, seed=7)).events: the same on every
platform and numpy/numba version. Change it only on purpose, when the model changes."""


def sha(stream) -> str:
    return hashlib.sha256(stream.events.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def market():
    """100k events of one instrument, the size the realism checks are stated for."""
    return generate(SyntheticConfig(n_events=100_000, seed=11))


@pytest.fixture(scope="module")
def market_stats(market):
    """The replay of `market` (it asserts every invariant on the way)."""
    return replay(market.events)


def quote_mids(events: np.ndarray, inst: int = 0) -> np.ndarray:
    """Mid in ticks at every quote of one instrument."""
    q = events[(events["kind"] == KIND_QUOTE) & (events["instrument"] == inst)]
    return (q["price"][0::2] + q["price"][1::2]) / 2


@pytest.fixture(scope="module")
def pair():
    """Two instruments at different prices, interleaved."""
    return generate(
        SyntheticConfig(n_events=60_000, seed=5, n_instruments=2, start_price=("100.00", "25.37"))
    )


class RefBook:
    """A dict reference book per instrument: {side: {price: size}}, independent of engine.book."""

    def __init__(self) -> None:
        self.sides = {SIDE_BUY: {}, SIDE_SELL: {}}

    def best(self, side: int) -> tuple[int, int] | None:
        levels = self.sides[side]
        if not levels:
            return None
        p = max(levels) if side == SIDE_BUY else min(levels)
        return p, levels[p]


def replay(events: np.ndarray) -> dict:
    """Rebuild every book from the events, asserting each invariant row by row.

    Returns statistics for the realism checks: spreads and mids at every quote.
    """
    books: dict[int, RefBook] = {}
    quoted: dict[int, tuple] = {}
    spreads: dict[int, list[int]] = {}
    mids: dict[int, list[float]] = {}
    msg_start = True
    msg_key = None
    touch_before = None
    pending_trade = None  # (side of the book, price, size left after the trade)
    pending_bid_quote = None
    quote_in_msg = False
    for n, row in enumerate(events.tolist()):
        ts_exch, ts_local, price, size, inst, kind, side, flags = row
        where = f"row {n}: {row}"
        book = books.setdefault(inst, RefBook())
        if msg_start:
            msg_key = (inst, ts_exch, ts_local)
            touch_before = (book.best(SIDE_BUY), book.best(SIDE_SELL))
            quote_in_msg = False
            first_trade = True
        else:
            # A venue message is one instrument at one instant.
            assert (inst, ts_exch, ts_local) == msg_key, where
        assert size >= 0, where
        if pending_trade is not None:
            # The delta of the level a trade printed at follows the trade.
            assert kind == KIND_BOOK_DELTA, where
            assert (side, price, size) == pending_trade, where
            pending_trade = None
        if kind == KIND_BOOK_CLEAR:
            assert flags & FLAG_SNAPSHOT and msg_start and side == SIDE_NONE, where
            book.sides = {SIDE_BUY: {}, SIDE_SELL: {}}
        elif kind == KIND_BOOK_SNAPSHOT:
            assert flags & FLAG_SNAPSHOT and not msg_start, where
            assert size > 0 and price > 0 and price not in book.sides[side], where
            book.sides[side][price] = size
        elif kind == KIND_BOOK_DELTA:
            assert side in (SIDE_BUY, SIDE_SELL) and price > 0, where
            if size == 0:
                assert price in book.sides[side], f"removes a missing level, {where}"
                del book.sides[side][price]
            else:
                book.sides[side][price] = size
        elif kind == KIND_TRADE:
            assert side in (SIDE_BUY, SIDE_SELL) and size > 0, where
            hit = -side  # the aggressor trades against the other side
            best = book.best(hit)
            assert best is not None and best[0] == price, f"trade off the touch, {where}"
            assert size <= best[1], f"trade larger than the level, {where}"
            if first_trade:
                assert best == touch_before[0 if hit == SIDE_BUY else 1], where
                first_trade = False
            pending_trade = (hit, price, best[1] - size)
        elif kind == KIND_QUOTE:
            quote_in_msg = True
            if side == SIDE_BUY:
                assert not flags & FLAG_LAST, where
                pending_bid_quote = (price, size)
            else:
                assert side == SIDE_SELL and flags & FLAG_LAST, where
                assert pending_bid_quote is not None, where
                bid, ask = book.best(SIDE_BUY), book.best(SIDE_SELL)
                assert (pending_bid_quote, (price, size)) == (bid, ask), f"stale quote, {where}"
                quoted[inst] = (bid, ask)
                spreads.setdefault(inst, []).append(ask[0] - bid[0])
                mids.setdefault(inst, []).append((ask[0] + bid[0]) / 2)
                pending_bid_quote = None
        else:
            raise AssertionError(f"unexpected kind, {where}")
        msg_start = bool(flags & FLAG_LAST)
        if msg_start:
            assert pending_trade is None and pending_bid_quote is None, where
            bid, ask = book.best(SIDE_BUY), book.best(SIDE_SELL)
            assert bid is not None and ask is not None, f"empty side, {where}"
            assert bid[0] < ask[0], f"crossed book, {where}"
            # Every change of the touch was quoted within its message (a snapshot's quote
            # is the message right after it).
            if not flags & FLAG_SNAPSHOT:
                assert quoted.get(inst) == (bid, ask), f"touch changed without a quote, {where}"
            if kind != KIND_QUOTE:
                assert not quote_in_msg, where
    assert msg_start, "the stream ends inside a message"
    return {"spreads": spreads, "mids": mids}


def test_book_rebuilt_from_the_events_is_always_valid(market_stats):
    assert set(market_stats["spreads"]) == {0}


def test_spread_is_mostly_one_to_three_ticks(market_stats):
    spreads = np.array(market_stats["spreads"][0])
    assert spreads.min() >= 1
    assert np.mean(spreads <= 3) > 0.95
    assert np.mean(spreads == 1) > 0.5
    assert np.mean(spreads > 1) > 0.01  # the touch does get taken out now and then


def test_mid_wanders(market_stats):
    mids = np.array(market_stats["mids"][0])
    assert mids.max() - mids.min() > 10  # ticks, over 100k events
    assert np.abs(np.diff(mids)).max() < 50


def test_mid_stays_near_a_fixed_fundamental():
    """Without volatility and jumps the flow pulls the mid back to where it started."""
    stream = generate(SyntheticConfig(n_events=100_000, seed=3, volatility=0.0, jump_rate=0.0))
    mids = quote_mids(stream.events)
    assert np.abs(mids - 10_000.5).max() < 20


def test_jumps_move_the_mid():
    calm = SyntheticConfig(n_events=50_000, seed=3, volatility=0.0, jump_rate=0.0)
    jumpy = SyntheticConfig(
        n_events=50_000, seed=3, volatility=0.0, jump_rate=0.05, jump_size=0.005
    )
    calm_mids = quote_mids(generate(calm).events)
    jumpy_mids = quote_mids(generate(jumpy).events)
    assert np.ptp(jumpy_mids) > 50 > 20 > np.ptp(calm_mids)  # 50 ticks is one jump


def test_counts_are_plausible(market):
    e = market.events
    counts = market.meta["counts"]
    kinds = np.bincount(e["kind"], minlength=6)
    for code, name in KIND_NAMES.items():
        assert counts[name] == kinds[code] > 0, name
    assert counts["book_clear"] == 1
    assert counts["book_snapshot"] == 40
    assert counts["messages"] == np.count_nonzero(e["flags"] & FLAG_LAST)
    n = len(e)
    assert 0.4 < counts["book_delta"] / n < 0.8
    assert 0.15 < counts["quote"] / n < 0.5
    assert 0.02 < counts["trade"] / n < 0.15
    trades = e[e["kind"] == KIND_TRADE]
    assert 0.4 < np.mean(trades["side"] == SIDE_BUY) < 0.6


def test_large_market_orders_walk_the_book(market):
    e = market.events
    msg = np.concatenate([[0], np.cumsum(e["flags"][:-1] & FLAG_LAST)])
    _, per_msg = np.unique(msg[e["kind"] == KIND_TRADE], return_counts=True)
    assert np.mean(per_msg == 1) > 0.6  # most take from the touch only
    assert (per_msg >= 3).sum() > 10  # and some sweep several levels


def test_exactly_n_events_ending_with_a_whole_message():
    cfg = SyntheticConfig(n_events=43, seed=1)  # the smallest: book and quote only
    assert len(generate(cfg)) == 43
    for n in list(range(44, 60)) + list(range(5_000, 5_040)):
        e = generate(SyntheticConfig(n_events=n, seed=n)).events
        assert len(e) == n
        assert e["flags"][-1] & FLAG_LAST
        replay(e)


def test_snapshot_then_quote_first(market):
    e = market.events
    assert e["kind"][0] == KIND_BOOK_CLEAR
    assert (e["kind"][1:41] == KIND_BOOK_SNAPSHOT).all()
    assert (e["flags"][:41] & FLAG_SNAPSHOT).all()
    assert np.flatnonzero(e["flags"][:41] & FLAG_LAST).tolist() == [40]
    assert e["kind"][41:43].tolist() == [KIND_QUOTE, KIND_QUOTE]
    assert e["price"][41:43].tolist() == [10_000, 10_001]  # bid at the start price
    assert not (e["flags"][43:] & FLAG_SNAPSHOT).any()


def test_timestamps(market):
    e = market.events
    assert e["ts_exch"][0] == EPOCH_2024_NS
    assert (np.diff(e["ts_local"]) >= 0).all()
    assert (np.diff(e["ts_exch"]) >= 0).all()  # one instrument: its exchange clock
    latency = e["ts_local"] - e["ts_exch"]
    assert latency.min() >= 150_000
    assert 190_000 < latency.mean() < 260_000
    last = e[e["flags"] & FLAG_LAST != 0]
    assert (np.diff(last["ts_exch"][1:]) > 0).all()  # one message an instant
    gaps = np.diff(last["ts_exch"][1:]) / 1e9
    assert 0.002 < gaps.mean() < 0.1  # tens of messages a second
    assert gaps.std() > 0.5 * gaps.mean()  # Poisson-like, not a metronome


def test_two_instruments_interleaved(pair):
    e = pair.events
    assert len(e) == 60_000
    assert set(np.unique(e["instrument"]).tolist()) == {0, 1}
    assert (np.diff(e["ts_local"]) >= 0).all()
    stats = replay(e)
    assert set(stats["mids"]) == {0, 1}
    assert abs(np.mean(stats["mids"][1]) - 2_537) < 100
    for i in (0, 1):
        rows = e[e["instrument"] == i]
        assert 0.3 < len(rows) / len(e) < 0.7
        assert (np.diff(rows["ts_exch"]) >= 0).all()
    # Ties in local time go to the lower instrument id.
    last = e[e["flags"] & FLAG_LAST != 0]
    tie = np.flatnonzero(np.diff(last["ts_local"]) == 0)
    assert (last["instrument"][tie] <= last["instrument"][tie + 1]).all()
    assert [i.symbol for i in pair.instruments] == ["SYN0", "SYN1"]


def test_an_instruments_flow_does_not_depend_on_the_others():
    one = generate(SyntheticConfig(n_events=30_000, seed=9)).events
    two = generate(SyntheticConfig(n_events=60_000, seed=9, n_instruments=2)).events
    syn0 = two[two["instrument"] == 0]
    k = min(len(syn0), len(one)) - 100  # the final messages may be end-of-stream fillers
    assert one[:k].tobytes() == syn0[:k].tobytes()


def test_same_seed_same_bytes():
    a = generate(SyntheticConfig(n_events=50_000, seed=42, n_instruments=3))
    b = generate(SyntheticConfig(n_events=50_000, seed=42, n_instruments=3))
    assert sha(a) == sha(b)


def test_different_seeds_differ():
    hashes = {sha(generate(SyntheticConfig(n_events=10_000, seed=s))) for s in (0, 1, 2, 2**64 - 1)}
    assert len(hashes) == 4


def test_golden_bytes():
    """The bytes are pinned: our own RNG and IEEE-exact arithmetic make them portable."""
    assert sha(generate(SyntheticConfig(n_events=20_000, seed=7))) == GOLDEN_SHA256


def test_default_market():
    stream = default_market(n_events=5_000)
    assert len(stream) == 5_000
    assert stream.events.dtype == EVENT_DTYPE
    assert stream.meta["source"] == "synthetic"
    assert stream.meta["seed"] == 7
    assert stream.meta["config"]["n_events"] == 5_000
    inst = stream.instruments[0]
    assert (inst.symbol, inst.venue) == ("SYN0", "synthetic")
    assert (inst.tick_size, inst.lot_size) == (Decimal("0.01"), Decimal("0.001"))
    assert sha(stream) == sha(generate(SyntheticConfig(n_events=5_000, seed=7)))


def test_meta_is_json_ready(pair):
    import json

    text = json.dumps(pair.meta)
    assert json.loads(text)["config"]["start_price"] == ["100.00", "25.37"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_events", 0),
        ("n_events", -5),
        ("n_events", 1.5),
        ("n_events", True),
        ("n_events", 42),  # smaller than the initial book and quote
        ("seed", -1),
        ("seed", 2**64),
        ("seed", "7"),
        ("n_instruments", 0),
        ("limit_rate", 0.0),
        ("market_rate", -1.0),
        ("cancel_rate", math.nan),
        ("cancel_rate", "fast"),
        ("volatility", math.inf),
        ("jump_rate", -0.1),
        ("jump_size", 0.9),
        ("book_levels", 0),
        ("max_depth", 0),
        ("mean_order_lots", 0),
        ("latency_ns", -1),
        ("latency_jitter_ns", 300_000),  # more than the latency: it could go negative
        ("start_price", "abc"),
        ("start_price", "100.005"),  # off the tick grid
        ("start_price", "-3"),
        ("start_price", "0.30"),  # too low for a 20-level book
        ("start_price", ("100.00", "50.00")),  # two prices, one instrument
        ("tick_size", "0"),
        ("lot_size", "x"),
        ("symbol_prefix", ""),
    ],
)
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(UsageError, match=field):
        SyntheticConfig(**{field: value})


def test_generate_needs_a_config():
    with pytest.raises(UsageError, match="SyntheticConfig"):
        generate({"n_events": 10})  # type: ignore[arg-type]


def _xoshiro_reference(state: list[int], n: int) -> list[int]:
    """xoshiro256** in Python integers, as published by Blackman and Vigna."""
    mask = (1 << 64) - 1

    def rotl(x: int, k: int) -> int:
        return ((x << k) | (x >> (64 - k))) & mask

    s = list(state)
    out = []
    for _ in range(n):
        out.append((rotl((s[1] * 5) & mask, 7) * 9) & mask)
        t = (s[1] << 17) & mask
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
    return out


def test_rng_is_xoshiro256starstar():
    st = _rng_states(123, 2)
    expected = _xoshiro_reference([int(x) for x in st[1]], 1000)
    assert [int(_next(st, 1)) for _ in range(1000)] == expected
    st = np.array([[1, 2, 3, 4]], dtype=np.uint64)
    assert int(_next(st, 0)) == 11520  # the reference output for state (1, 2, 3, 4)


def test_own_log_matches_libm():
    for x in np.concatenate([np.linspace(1e-6, 1.0, 997), [2.0**-53, 0.5, 3.0, 1e300]]):
        assert _ln(float(x)) == pytest.approx(math.log(x), rel=1e-15, abs=1e-15)
