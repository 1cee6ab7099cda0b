"""The L2 book: jitted kernels against a plain-Python reference book, plus the edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.book import (
    NO_PRICE,
    BookState,
    apply_event,
    apply_events,
    apply_level,
    best_ask,
    best_ask_qty,
    best_bid,
    best_bid_qty,
    book_snapshot,
    check_book_events,
    clear_side,
    copy_book,
    depth_at,
    is_crossed,
    level_count,
    mid_x2,
    new_book,
    spread,
    top_levels,
)
from engine.errors import DataError, UsageError
from engine.events import (
    EVENT_DTYPE,
    FLAG_LAST,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    KIND_ENGINE_FIRST,
    KIND_QUOTE,
    KIND_TRADE,
    SIDE_BUY,
    SIDE_NONE,
    SIDE_SELL,
    empty_events,
)

BOOK_KINDS = (KIND_BOOK_DELTA, KIND_BOOK_SNAPSHOT, KIND_BOOK_CLEAR)


class RefBook:
    """The obvious book: a dict of price -> size per side, the same overflow rule."""

    def __init__(self, n_instruments: int, capacity: int) -> None:
        self.capacity = capacity
        self.sides = {
            SIDE_BUY: [{} for _ in range(n_instruments)],
            SIDE_SELL: [{} for _ in range(n_instruments)],
        }
        self.dropped = [0] * n_instruments

    def set(self, inst: int, side: int, price: int, qty: int) -> None:
        levels = self.sides[side][inst]
        if qty == 0:
            levels.pop(price, None)
        elif price in levels or len(levels) < self.capacity:
            levels[price] = qty
        else:
            self.dropped[inst] += 1
            # The farthest from the touch: the lowest bid, the highest ask.
            far = min(levels) if side == SIDE_BUY else max(levels)
            if (price > far) if side == SIDE_BUY else (price < far):
                del levels[far]
                levels[price] = qty

    def clear(self, inst: int, side: int) -> None:
        for s in (SIDE_BUY, SIDE_SELL):
            if side in (s, SIDE_NONE):
                self.sides[s][inst].clear()

    def apply(self, inst: int, kind: int, side: int, price: int, size: int) -> bool:
        if kind in (KIND_BOOK_DELTA, KIND_BOOK_SNAPSHOT) and side in (SIDE_BUY, SIDE_SELL):
            self.set(inst, side, price, size)
            return True
        if kind == KIND_BOOK_CLEAR:
            self.clear(inst, side)
            return True
        return False

    def levels(self, inst: int, side: int) -> list[tuple[int, int]]:
        """Best first."""
        levels = self.sides[side][inst]
        return sorted(levels.items(), reverse=(side == SIDE_BUY))

    def best(self, inst: int, side: int) -> int:
        levels = self.levels(inst, side)
        return levels[0][0] if levels else NO_PRICE


def make_events(rows: list[tuple[int, int, int, int, int]]) -> np.ndarray:
    """(instrument, kind, side, price, size) rows as an EVENT_DTYPE array."""
    ev = empty_events(len(rows))
    for i, (inst, kind, side, price, size) in enumerate(rows):
        ev[i] = (i, i, price, size, inst, kind, side, 0)
    return ev


def assert_matches(book: BookState, ref: RefBook, inst: int) -> None:
    """Every read of the kernels agrees with the reference for one instrument."""
    cap = ref.capacity
    snap = book_snapshot(book, inst, cap)
    bids, asks = ref.levels(inst, SIDE_BUY), ref.levels(inst, SIDE_SELL)
    assert snap["bids"] == bids
    assert snap["asks"] == asks
    assert snap["dropped"] == ref.dropped[inst]
    assert level_count(book, inst, SIDE_BUY) == len(bids)
    assert level_count(book, inst, SIDE_SELL) == len(asks)
    assert level_count(book, inst, SIDE_NONE) == len(bids) + len(asks)
    bb, ba = ref.best(inst, SIDE_BUY), ref.best(inst, SIDE_SELL)
    assert best_bid(book, inst) == bb
    assert best_ask(book, inst) == ba
    assert best_bid_qty(book, inst) == (bids[0][1] if bids else 0)
    assert best_ask_qty(book, inst) == (asks[0][1] if asks else 0)
    both = bool(bids) and bool(asks)
    assert mid_x2(book, inst) == (bb + ba if both else NO_PRICE)
    assert spread(book, inst) == (ba - bb if both else NO_PRICE)
    assert is_crossed(book, inst) == (both and bb >= ba)
    for side, levels in ((SIDE_BUY, bids), (SIDE_SELL, asks)):
        present = dict(levels)
        probes = set(present) | {p + 1 for p in present} | {p - 1 for p in present} | {0}
        for price in probes:
            assert depth_at(book, inst, side, price) == present.get(price, 0)
        for n in (0, 1, 3, cap):
            out_px = np.full(max(n, 1), -7, np.int64)
            out_qty = np.full(max(n, 1), -7, np.int64)
            count = top_levels(book, inst, side, n, out_px, out_qty)
            assert count == min(n, len(levels))
            got = zip(out_px[:count].tolist(), out_qty[:count].tolist(), strict=True)
            assert list(got) == levels[:count]
    assert_canonical(book, inst)


def assert_canonical(book: BookState, inst: int) -> None:
    """Rows strictly ordered with the best at the end, sizes positive, unused slots zero."""
    for px, qty, n, step in (
        (book.bid_px, book.bid_qty, book.bid_n, 1),
        (book.ask_px, book.ask_qty, book.ask_n, -1),
    ):
        k = int(n[inst])
        assert np.all(np.diff(px[inst, :k]) * step > 0)
        assert np.all(qty[inst, :k] > 0)
        assert not px[inst, k:].any() and not qty[inst, k:].any()


# --- property tests against the reference -------------------------------------------------

N_INST = 3
prices = st.one_of(
    st.integers(-25, 25),  # dense: levels collide, rows get longer than the linear-scan span
    st.sampled_from([-(2**60), -(10**12), 10**12, 2**60]),  # far from zero, either sign
)
sizes = st.one_of(st.just(0), st.integers(1, 5), st.integers(1, 2**40))
level_ops = st.tuples(
    st.integers(0, N_INST - 1),
    st.sampled_from([KIND_BOOK_DELTA, KIND_BOOK_DELTA, KIND_BOOK_DELTA, KIND_BOOK_SNAPSHOT]),
    st.sampled_from([SIDE_BUY, SIDE_SELL]),
    prices,
    sizes,
)
other_ops = st.tuples(
    st.integers(0, N_INST - 1),
    st.sampled_from([KIND_BOOK_CLEAR, KIND_TRADE, KIND_QUOTE, KIND_ENGINE_FIRST, 0]),
    st.sampled_from([SIDE_BUY, SIDE_SELL, SIDE_NONE]),
    prices,
    sizes,
)
# A delta with no side is invalid input (check_book_events refuses it); the kernel ignores it.
sideless = st.tuples(
    st.integers(0, N_INST - 1), st.just(KIND_BOOK_DELTA), st.just(0), prices, sizes
)
ops = st.lists(
    st.one_of(level_ops, level_ops, level_ops, level_ops, other_ops, sideless), max_size=120
)
capacities = st.sampled_from([1, 2, 5, 64])
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(rows=ops, capacity=capacities)
def test_apply_event_matches_reference(rows: list, capacity: int) -> None:
    book = new_book(N_INST, capacity)
    ref = RefBook(N_INST, capacity)
    for inst, kind, side, price, size in rows:
        assert apply_event(book, inst, kind, side, price, size) == ref.apply(
            inst, kind, side, price, size
        )
        assert_canonical(book, inst)
    for inst in range(N_INST):
        assert_matches(book, ref, inst)


@PROPERTY
@given(rows=ops, capacity=capacities, cut=st.integers(0, 120))
def test_apply_events_matches_reference_and_apply_event(
    rows: list, capacity: int, cut: int
) -> None:
    events = make_events(rows)
    ref = RefBook(N_INST, capacity)
    expected = sum(ref.apply(*row) for row in rows)
    book = new_book(N_INST, capacity)
    cut = min(cut, len(rows))
    # Two chunks give the same book as one pass.
    applied = apply_events(book, events, 0, cut) + apply_events(book, events, cut, len(events))
    assert applied == expected
    for inst in range(N_INST):
        assert_matches(book, ref, inst)
    one_by_one = new_book(N_INST, capacity)
    for row in rows:
        apply_event(one_by_one, *row)
    for a, b in zip(book, one_by_one, strict=True):
        assert a.tobytes() == b.tobytes()


@PROPERTY
@given(
    rows=st.lists(
        st.tuples(st.sampled_from([SIDE_BUY, SIDE_SELL]), st.integers(0, 3000), sizes),
        min_size=1,
        max_size=300,
    )
)
def test_deep_book_uses_binary_search_correctly(rows: list) -> None:
    """Rows far longer than the linear-scan span: deep updates go through bisection."""
    book = new_book(1, 4096)
    ref = RefBook(1, 4096)
    for side in (SIDE_BUY, SIDE_SELL):
        for price in range(0, 3000, 3):  # 1000 levels a side to start with
            apply_level(book, 0, side, price, 1)
            ref.set(0, side, price, 1)
    for side, price, qty in rows:
        apply_level(book, 0, side, price, qty)
        ref.set(0, side, price, qty)
    assert_matches(book, ref, 0)


# --- explicit cases ---------------------------------------------------------------------


def test_empty_book_reads() -> None:
    book = new_book(2, 8)
    for inst in range(2):
        assert best_bid(book, inst) == NO_PRICE
        assert best_ask(book, inst) == NO_PRICE
        assert best_bid_qty(book, inst) == 0
        assert best_ask_qty(book, inst) == 0
        assert mid_x2(book, inst) == NO_PRICE
        assert spread(book, inst) == NO_PRICE
        assert not is_crossed(book, inst)
        assert depth_at(book, inst, SIDE_BUY, 100) == 0
        assert level_count(book, inst, SIDE_NONE) == 0
    assert NO_PRICE == np.iinfo(np.int64).min


def test_layout_best_at_the_end() -> None:
    book = new_book(1, 8)
    for price in (100, 98, 99):
        apply_level(book, 0, SIDE_BUY, price, price)
    for price in (103, 101, 102):
        apply_level(book, 0, SIDE_SELL, price, price)
    assert book.bid_px[0, :3].tolist() == [98, 99, 100]
    assert book.ask_px[0, :3].tolist() == [103, 102, 101]
    assert (best_bid(book, 0), best_ask(book, 0)) == (100, 101)
    assert mid_x2(book, 0) == 201  # no half tick lost
    assert spread(book, 0) == 1


def test_overflow_drops_the_level_farthest_from_the_touch_and_counts_it() -> None:
    book = new_book(2, 3)
    for price in (10, 11, 12):
        apply_level(book, 0, SIDE_BUY, price, 1)
    apply_level(book, 0, SIDE_BUY, 13, 5)  # nearer the touch: 10 goes
    assert book_snapshot(book, 0, 5)["bids"] == [(13, 5), (12, 1), (11, 1)]
    assert book.dropped[0] == 1
    apply_level(book, 0, SIDE_BUY, 9, 5)  # farther than everything: the new level goes
    assert book_snapshot(book, 0, 5)["bids"] == [(13, 5), (12, 1), (11, 1)]
    assert book.dropped[0] == 2
    apply_level(book, 0, SIDE_BUY, 12, 7)  # an existing level of a full side: no drop
    assert book.dropped[0] == 2
    assert depth_at(book, 0, SIDE_BUY, 12) == 7

    for price in (20, 21, 22):
        apply_level(book, 0, SIDE_SELL, price, 1)
    apply_level(book, 0, SIDE_SELL, 19, 5)  # nearer the touch: 22 goes
    assert book_snapshot(book, 0, 5)["asks"] == [(19, 5), (20, 1), (21, 1)]
    apply_level(book, 0, SIDE_SELL, 30, 5)
    assert book_snapshot(book, 0, 5)["asks"] == [(19, 5), (20, 1), (21, 1)]
    assert book.dropped[0] == 4
    assert book.dropped[1] == 0  # counted per instrument
    assert_canonical(book, 0)


def test_overflow_inserting_between_levels() -> None:
    book = new_book(1, 3)
    for price in (10, 20, 30):
        apply_level(book, 0, SIDE_BUY, price, 1)
    apply_level(book, 0, SIDE_BUY, 15, 2)
    assert book_snapshot(book, 0, 3)["bids"] == [(30, 1), (20, 1), (15, 2)]
    assert book.dropped[0] == 1


def test_removing_an_absent_level_is_a_no_op() -> None:
    book = new_book(1, 4)
    apply_level(book, 0, SIDE_BUY, 100, 3)
    before = copy_book(book)
    apply_level(book, 0, SIDE_BUY, 101, 0)
    apply_level(book, 0, SIDE_SELL, 100, 0)
    for name in ("bid_px", "bid_qty", "ask_px", "ask_qty", "bid_n", "ask_n", "dropped"):
        assert np.array_equal(getattr(book, name), getattr(before, name)), name
    apply_level(book, 0, SIDE_BUY, 100, 0)
    assert level_count(book, 0, SIDE_BUY) == 0
    assert_canonical(book, 0)


def test_negative_prices() -> None:
    book = new_book(1, 8)
    for price, qty in ((-5, 1), (-3, 2), (-4, 3)):
        apply_level(book, 0, SIDE_BUY, price, qty)
    for price, qty in ((-1, 4), (2, 5)):
        apply_level(book, 0, SIDE_SELL, price, qty)
    assert best_bid(book, 0) == -3
    assert best_ask(book, 0) == -1
    assert mid_x2(book, 0) == -4
    assert spread(book, 0) == 2
    assert depth_at(book, 0, SIDE_BUY, -4) == 3
    assert book_snapshot(book, 0, 2) == {
        "bids": [(-3, 2), (-4, 3)],
        "asks": [(-1, 4), (2, 5)],
        "bid_levels": 3,
        "ask_levels": 2,
        "dropped": 0,
        "updates": 5,
    }
    apply_level(book, 0, SIDE_BUY, -1, 1)
    assert is_crossed(book, 0)  # locked counts as crossed


def test_clear_one_side_or_both() -> None:
    book = new_book(2, 8)
    for inst in range(2):
        apply_level(book, inst, SIDE_BUY, 10, 1)
        apply_level(book, inst, SIDE_SELL, 11, 1)
    clear_side(book, 0, SIDE_BUY)
    assert level_count(book, 0, SIDE_BUY) == 0
    assert level_count(book, 0, SIDE_SELL) == 1
    clear_side(book, 0, SIDE_SELL)
    assert level_count(book, 0, SIDE_NONE) == 0
    assert level_count(book, 1, SIDE_NONE) == 2  # the other instrument is untouched
    clear_side(book, 1, SIDE_NONE)
    assert level_count(book, 1, SIDE_NONE) == 0
    assert not book.bid_px.any() and not book.ask_qty.any()


def test_apply_events_ignores_trades_and_quotes_and_counts_book_events() -> None:
    rows = [
        (0, KIND_BOOK_CLEAR, SIDE_NONE, 0, 0),
        (0, KIND_BOOK_SNAPSHOT, SIDE_BUY, 99, 5),
        (0, KIND_BOOK_SNAPSHOT, SIDE_SELL, 101, 6),
        (0, KIND_TRADE, SIDE_BUY, 101, 2),
        (0, KIND_QUOTE, SIDE_BUY, 100, 1),
        (0, KIND_QUOTE, SIDE_SELL, 100, 1),
        (1, KIND_BOOK_DELTA, SIDE_BUY, 50, 1),
        (0, KIND_BOOK_DELTA, SIDE_SELL, 101, 4),
        (0, KIND_ENGINE_FIRST, SIDE_NONE, 0, 0),
        (7, KIND_BOOK_DELTA, SIDE_BUY, 1, 1),  # instrument outside the book: skipped
    ]
    events = make_events(rows)
    events["flags"][5] = FLAG_LAST
    book = new_book(2, 16)
    assert apply_events(book, events, 0, len(events)) == 5
    assert book_snapshot(book, 0, 5)["bids"] == [(99, 5)]
    assert book_snapshot(book, 0, 5)["asks"] == [(101, 4)]
    assert book_snapshot(book, 1, 5)["bids"] == [(50, 1)]
    # A slice, and a stop past the end, are fine.
    book = new_book(2, 16)
    assert apply_events(book, events, 3, 7) == 1
    assert apply_events(book, events, 7, 10**6) == 1
    assert book_snapshot(book, 0, 5)["asks"] == [(101, 4)]
    # Quotes, trades and engine events do not touch the book through apply_event either.
    for kind in (KIND_TRADE, KIND_QUOTE, KIND_ENGINE_FIRST):
        assert not apply_event(book, 0, kind, SIDE_BUY, 1, 1)
    assert not apply_event(book, 0, KIND_BOOK_DELTA, SIDE_NONE, 1, 1)
    assert book_snapshot(book, 0, 5)["bids"] == []


def test_apply_events_on_a_read_only_memory_map(tmp_path) -> None:
    rows = [(0, KIND_BOOK_DELTA, SIDE_BUY, p, 1) for p in range(10)]
    path = tmp_path / "events.bin"
    make_events(rows).tofile(path)
    mapped = np.memmap(path, dtype=EVENT_DTYPE, mode="r")
    book = new_book(1, 16)
    assert apply_events(book, mapped, 0, len(mapped)) == 10
    assert best_bid(book, 0) == 9


def test_top_levels_respects_the_output_size() -> None:
    book = new_book(1, 16)
    for price in range(5):
        apply_level(book, 0, SIDE_SELL, 100 + price, price + 1)
    out_px = np.zeros(2, np.int64)
    out_qty = np.zeros(2, np.int64)
    assert top_levels(book, 0, SIDE_SELL, 10, out_px, out_qty) == 2
    assert out_px.tolist() == [100, 101] and out_qty.tolist() == [1, 2]
    assert top_levels(book, 0, SIDE_BUY, 10, out_px, out_qty) == 0
    assert top_levels(book, 0, SIDE_NONE, 10, out_px, out_qty) == 0


def test_copy_book_is_independent() -> None:
    book = new_book(1, 4)
    apply_level(book, 0, SIDE_BUY, 1, 1)
    copy = copy_book(book)
    apply_level(book, 0, SIDE_BUY, 2, 1)
    assert level_count(copy, 0, SIDE_BUY) == 1
    assert level_count(book, 0, SIDE_BUY) == 2


def test_updates_counter() -> None:
    book = new_book(1, 4)
    apply_level(book, 0, SIDE_BUY, 1, 1)
    apply_level(book, 0, SIDE_BUY, 2, 0)  # a no-op removal is still an applied update
    clear_side(book, 0, SIDE_NONE)
    assert book.updates[0] == 3


# --- the Python layer ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_instruments", "capacity"), [(0, 4), (1, 0), (-1, 4), (1.5, 4), (1, "4"), (True, 4)]
)
def test_new_book_refuses_bad_sizes(n_instruments: object, capacity: object) -> None:
    with pytest.raises(UsageError):
        new_book(n_instruments, capacity)  # type: ignore[arg-type]


def test_new_book_accepts_numpy_integers() -> None:
    book = new_book(np.int32(2), np.uint16(8))
    assert book.bid_px.shape == (2, 8) and book.bid_px.dtype == np.int64


def test_book_snapshot_refuses_bad_arguments() -> None:
    book = new_book(2, 4)
    with pytest.raises(UsageError, match="instrument 2"):
        book_snapshot(book, 2, 1)
    with pytest.raises(UsageError):
        book_snapshot(book, 0, -1)


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ((5, KIND_BOOK_DELTA, SIDE_BUY, 1, 1), "instrument"),
        ((0, KIND_BOOK_DELTA, SIDE_NONE, 1, 1), "side"),
        ((0, KIND_BOOK_SNAPSHOT, 3, 1, 1), "side"),
        ((0, KIND_BOOK_CLEAR, -2, 0, 0), "side"),
        ((0, KIND_BOOK_DELTA, SIDE_SELL, 1, -1), "size"),
        ((0, KIND_BOOK_DELTA, SIDE_SELL, NO_PRICE, 1), "price"),
    ],
)
def test_check_book_events_names_the_row_and_field(row: tuple, field: str) -> None:
    good = (0, KIND_BOOK_DELTA, SIDE_BUY, 1, 1)
    events = make_events([good, (0, KIND_TRADE, 9, NO_PRICE, -5), row, good])
    book = new_book(2, 4)
    with pytest.raises(DataError) as info:
        check_book_events(book, events)
    assert info.value.line == 2
    assert info.value.field == field
    check_book_events(book, events, 3)  # the bad row outside the range is not looked at
    check_book_events(book, events, 0, 2)


def test_check_book_events_refuses_other_dtypes() -> None:
    with pytest.raises(DataError):
        check_book_events(new_book(1), np.zeros(3, np.int64))
