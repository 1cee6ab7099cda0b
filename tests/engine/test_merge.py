"""Merging streams: instrument ids remapped, strict local-time order, fixed tie-break."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from engine.data.merge import merge_streams
from engine.data.stream import EventStream
from engine.errors import DataError
from engine.events import EVENT_DTYPE, FLAG_LAST, KIND_BOOK_DELTA, KIND_TRADE, SIDE_BUY
from engine.instruments import Instrument, InstrumentRegistry
from engine.synthetic import SyntheticConfig, generate

BTC = Instrument("BTCUSDT", "binance", Decimal("0.01"), Decimal("0.00001"))
ETH = Instrument("ETHUSDT", "binance", Decimal("0.01"), Decimal("0.0001"))
XBT = Instrument("XBTUSD", "bitmex", Decimal("0.5"), Decimal("1"), kind="perpetual")


def stream(
    rows: list[tuple[int, int, int]], instruments: list[Instrument], tag: int
) -> EventStream:
    """Events from (ts_local, instrument id, flags) rows; `price` numbers every row of the
    source (tag * 1000 + row index) so that the merged order can be read back from it."""
    ev = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for i, (ts, inst, flags) in enumerate(rows):
        ev[i] = (ts - 100, ts, tag * 1000 + i, 1 + i, inst, KIND_BOOK_DELTA, SIDE_BUY, flags)
    return EventStream(ev, InstrumentRegistry(list(instruments)), {"source": [f"s{tag}"]})


L = FLAG_LAST


@pytest.fixture()
def pair() -> tuple[EventStream, EventStream]:
    # Source 1 knows (BTC, ETH); source 2 knows (XBT, BTC): BTC is id 0 in one, 1 in the other.
    a = stream(
        [(10, 0, 0), (10, 1, 0), (10, 0, L), (20, 1, L), (30, 0, 0), (30, 0, L), (50, 1, L)],
        [BTC, ETH],
        tag=1,
    )
    b = stream(
        [(5, 0, L), (10, 1, 0), (10, 1, L), (30, 0, L), (40, 1, L), (50, 0, 0), (50, 0, L)],
        [XBT, BTC],
        tag=2,
    )
    return a, b


def test_registries_are_merged_and_ids_remapped(pair) -> None:
    a, b = pair
    merged = merge_streams([a, b])
    # Registration order: the first source's instruments, then the new ones of the next.
    assert [i.key for i in merged.instruments] == [BTC.key, ETH.key, XBT.key]
    ev = merged.events
    source = ev["price"] // 1000
    row = ev["price"] % 1000
    # Every row kept its instrument (by key), whatever its new id.
    for src, original in ((1, a), (2, b)):
        sel = source == src
        want = [original.instruments[int(i)].key for i in original.events["instrument"][row[sel]]]
        got = [merged.instruments[int(i)].key for i in ev["instrument"][sel]]
        assert got == want
    assert np.bincount(ev["instrument"]).tolist() == [4 + 3, 3, 4]


def test_order_is_local_time_then_source_then_row(pair) -> None:
    a, b = pair
    merged = merge_streams([a, b])
    ts = merged.events["ts_local"]
    assert np.all(np.diff(ts) >= 0)
    order = [(int(p) // 1000, int(p) % 1000) for p in merged.events["price"]]
    assert order == [
        (2, 0),  # t=5
        (1, 0), (1, 1), (1, 2), (2, 1), (2, 2),  # t=10: all of source 1, then source 2
        (1, 3),  # t=20
        (1, 4), (1, 5), (2, 3),  # t=30
        (2, 4),  # t=40
        (1, 6), (2, 5), (2, 6),  # t=50
    ]  # fmt: skip
    # Given the other way round, the ties resolve the other way.
    flipped = [(int(p) // 1000, int(p) % 1000) for p in merge_streams([b, a]).events["price"]]
    assert flipped[1:6] == [(2, 1), (2, 2), (1, 0), (1, 1), (1, 2)]


def test_rows_of_one_message_stay_contiguous(pair) -> None:
    a, b = pair
    ev = merge_streams([a, b]).events
    source = ev["price"] // 1000
    # Walk the merged stream: a message of a source, once started, runs to its FLAG_LAST row
    # without a row of another source in between.
    open_source = None
    for src, flags in zip(source.tolist(), ev["flags"].tolist(), strict=True):
        assert open_source in (None, src)
        open_source = None if flags & FLAG_LAST else src
    assert open_source is None


def test_fields_other_than_the_instrument_are_untouched(pair) -> None:
    a, b = pair
    ev = merge_streams([a, b]).events
    by_tag = {1: a.events, 2: b.events}
    for e in ev:
        original = by_tag[int(e["price"]) // 1000][int(e["price"]) % 1000]
        for name in ("ts_exch", "ts_local", "size", "kind", "side", "flags"):
            assert e[name] == original[name]


def test_merge_is_deterministic_and_leaves_the_inputs_alone(pair) -> None:
    a, b = pair
    before = (a.events.tobytes(), b.events.tobytes())
    one = merge_streams([a, b])
    two = merge_streams([a, b])
    assert one.events.tobytes() == two.events.tobytes()
    assert (a.events.tobytes(), b.events.tobytes()) == before
    assert one.meta["source"] == ["s1", "s2"]
    assert one.meta["merged_from"] == [a.meta, b.meta]


def test_merging_synthetic_markets_twice_gives_the_same_bytes() -> None:
    a = generate(SyntheticConfig(n_events=20_000, seed=1, n_instruments=2))
    b = generate(SyntheticConfig(n_events=20_000, seed=2, symbol_prefix="ALT", start_price="50.00"))
    one, two = merge_streams([a, b]), merge_streams([a, b])
    assert one.events.tobytes() == two.events.tobytes()
    assert len(one) == 40_000
    assert [i.symbol for i in one.instruments] == ["SYN0", "SYN1", "ALT0"]
    assert np.all(np.diff(one.events["ts_local"]) >= 0)
    assert np.count_nonzero(one.events["instrument"] == 2) == 20_000
    # Each source's rows appear in their original order.
    from_b = one.events["instrument"] == 2
    rows_b = one.events[from_b].copy()
    rows_b["instrument"] = 0
    assert rows_b.tobytes() == b.events.tobytes()
    assert one.events[~from_b].tobytes() == a.events.tobytes()
    # Both markets open at the same receive time: 2 x 43 rows of a, then 43 rows of b.
    t0 = int(a.events["ts_local"][0])
    assert int(b.events["ts_local"][0]) == t0
    assert np.count_nonzero(one.events["ts_local"] == t0) == 129
    assert one.events["instrument"][:129].tolist() == [0] * 43 + [1] * 43 + [2] * 43


def test_single_and_empty_streams() -> None:
    a = stream([(1, 0, L), (2, 0, L)], [BTC], tag=1)
    assert merge_streams([a]) is a
    empty = EventStream(np.zeros(0, EVENT_DTYPE), InstrumentRegistry([ETH]), {"source": []})
    merged = merge_streams([empty, a])
    assert [i.key for i in merged.instruments] == [ETH.key, BTC.key]
    assert merged.events["instrument"].tolist() == [1, 1]
    assert merged.events["price"].tolist() == [1000, 1001]
    assert merged.events["kind"].tolist() == [KIND_BOOK_DELTA] * 2
    assert len(merge_streams([empty, empty])) == 0


def test_the_same_instrument_with_another_grid_is_refused() -> None:
    a = stream([(1, 0, L)], [BTC], tag=1)
    coarse = Instrument("BTCUSDT", "binance", Decimal("0.1"), Decimal("0.00001"))
    b = stream([(2, 0, L)], [coarse], tag=2)
    b.events["kind"] = KIND_TRADE
    with pytest.raises(DataError, match="binance:BTCUSDT registered twice"):
        merge_streams([a, b])
