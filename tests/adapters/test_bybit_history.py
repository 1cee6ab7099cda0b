"""Bybit order-book history converter: small zip files built in tmp_path."""

from __future__ import annotations

import random
import zipfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import orjson
import pytest

from adapters.bybit_history import (
    load_bybit_orderbook,
    orderbook_verdict,
    sniff_bybit_orderbook,
)
from adapters.formats import detect_format, load
from engine.errors import DataError, FormatError, UsageError
from engine.events import (
    FLAG_LAST,
    FLAG_LOCAL_TS_MISSING,
    FLAG_RESYNC,
    FLAG_SNAPSHOT,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    SIDE_NONE,
)
from engine.instruments import Instrument
from tests.adapters.live.helpers import RefBook

TOPIC = "orderbook.50.BTCUSDT"
T0 = 1_704_067_200_000  # ms


def book_msg(kind: str, u: int, bids, asks, *, ts: int, seq: int | None = None) -> dict:
    """One Bybit orderbook message as the stream (and the history file) has it."""
    data = {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": seq if seq else 1000 + u}
    return {"topic": TOPIC, "type": kind, "ts": ts, "data": data, "cts": ts - 3}


def write_zip(path: Path, messages: list[dict], member: str = "BTCUSDT_ob50.data") -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, b"".join(orjson.dumps(m) + b"\n" for m in messages))
    return path


def random_session(seed: int, n: int = 300) -> tuple[list[dict], dict, dict]:
    """A snapshot then `n` random deltas, and the book they leave (price text -> size text)."""
    rng = random.Random(seed)
    bids = {f"{100 - k * 0.5:.1f}": f"{rng.randint(1, 900) / 1000:.3f}" for k in range(10)}
    asks = {f"{100.5 + k * 0.5:.1f}": f"{rng.randint(1, 900) / 1000:.3f}" for k in range(10)}
    snapshot = book_msg("snapshot", 500, [[p, q] for p, q in bids.items()], [], ts=T0)
    snapshot["data"]["a"] = [[p, q] for p, q in asks.items()]
    msgs = [snapshot]
    for i in range(1, n + 1):
        b, a = [], []
        for side, out, lo in ((bids, b, 90.0), (asks, a, 100.5)):
            for _ in range(rng.randint(0, 3)):
                price = f"{lo + rng.randint(0, 20) * 0.5:.1f}"
                size = "0" if rng.random() < 0.3 else f"{rng.randint(1, 5000) / 1000:.3f}"
                out.append([price, size])
                if size == "0":
                    side.pop(price, None)
                else:
                    side[price] = size
        msgs.append(book_msg("delta", 500 + i, b, a, ts=T0 + 20 * i))
    return msgs, bids, asks


def levels(side: dict[str, str], inst: Instrument) -> dict[int, int]:
    return {inst.price_to_ticks(p): inst.size_to_lots(q) for p, q in side.items()}


def test_round_trip_of_a_random_session_through_a_zip(tmp_path):
    msgs, bids, asks = random_session(seed=5)
    path = write_zip(tmp_path / "2024-01-01_BTCUSDT_ob50.data.zip", msgs)
    s = load_bybit_orderbook(path)
    inst = s.instruments[0]
    assert (inst.venue, inst.symbol, inst.kind) == ("bybit-linear", "BTCUSDT", "perpetual")
    # Inferred: the finest decimal step present (the 0.5 grid reads as 0.1).
    assert inst.tick_size == Decimal("0.1") and inst.lot_size == Decimal("0.001")
    book = RefBook()
    book.apply(s.events)
    assert book.bids == levels(bids, inst) and book.asks == levels(asks, inst)
    m = s.meta
    assert (m["snapshots"], m["deltas"], m["sequence_gaps"], m["synced"]) == (1, 300, 0, True)
    assert m["format"] == "bybit-orderbook" and m["topic"] == TOPIC and m["lines"] == 301
    # Times: ts in ns on both clocks, flagged as having no receive time.
    ev = s.events
    assert (ev["flags"] & FLAG_LOCAL_TS_MISSING).all()
    assert ev["ts_exch"][0] == T0 * 1_000_000 and (ev["ts_local"] == ev["ts_exch"]).all()
    # The snapshot: a clear, then its levels, FLAG_LAST on the last one only.
    assert ev["kind"][0] == KIND_BOOK_CLEAR and ev["side"][0] == SIDE_NONE
    snap = ev[:21]
    assert (snap["flags"] & FLAG_SNAPSHOT).all()
    assert (snap["kind"][1:] == KIND_BOOK_SNAPSHOT).all()
    assert [bool(f & FLAG_LAST) for f in snap["flags"]] == [False] * 20 + [True]
    assert (ev["kind"][21:] == KIND_BOOK_DELTA).all()
    # Deltas with no level give no row; every message with rows ends with FLAG_LAST.
    non_empty = sum(1 for m in msgs[1:] if m["data"]["b"] or m["data"]["a"])
    assert int((ev["flags"][21:] & FLAG_LAST != 0).sum()) == non_empty


def test_the_format_registry_detects_and_loads_it(tmp_path):
    msgs, _, _ = random_session(seed=1, n=20)
    a = write_zip(tmp_path / "a.zip", msgs[:11])
    b = write_zip(tmp_path / "b.zip", msgs[11:])
    assert detect_format(a) == "bybit-orderbook" and sniff_bybit_orderbook(a) == "BTCUSDT"
    both = load([a, b])  # one market: read as one stream, the sequence checked across files
    one = load_bybit_orderbook([a, b])
    assert np.array_equal(both.events, one.events)
    assert one.meta["sequence_gaps"] == 0 and one.meta["deltas"] == 20


def test_plain_json_lines_are_read_too(tmp_path):
    msgs, bids, _ = random_session(seed=2, n=10)
    path = tmp_path / "ob.data"
    path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in msgs))
    s = load_bybit_orderbook(path, category="spot")
    assert s.instruments[0].venue == "bybit-spot" and s.instruments[0].kind == "spot"
    book = RefBook()
    book.apply(s.events)
    assert book.bids == levels(bids, s.instruments[0])


def test_u_equal_1_is_a_new_snapshot_and_a_gap_waits_for_the_next(tmp_path):
    msgs = [
        book_msg("snapshot", 100, [["10.0", "1"]], [["10.5", "1"]], ts=T0),
        book_msg("delta", 101, [["10.0", "2"]], [], ts=T0 + 1),
        book_msg("delta", 101, [["10.0", "9"]], [], ts=T0 + 2),  # a repeat
        book_msg("snapshot", 1, [["9.0", "3"]], [["11.0", "3"]], ts=T0 + 3),  # restart
        book_msg("delta", 2, [["9.5", "1"]], [], ts=T0 + 4),
        book_msg("delta", 4, [["9.6", "1"]], [], ts=T0 + 5),  # gap: u=3 is missing
        book_msg("delta", 5, [["9.7", "1"]], [], ts=T0 + 6),  # dropped: no book
        book_msg("snapshot", 7, [["8.0", "5"]], [["12.0", "5"]], ts=T0 + 7),
        book_msg("delta", 8, [], [["12.0", "0"], ["12.5", "2"]], ts=T0 + 8),
    ]
    path = write_zip(tmp_path / "x.zip", msgs)
    s = load_bybit_orderbook(path, instrument=Instrument("BTCUSDT", "bybit-linear", "0.5", "1"))
    m = s.meta
    assert (m["service_restarts"], m["sequence_gaps"], m["deltas_repeated"]) == (1, 1, 1)
    assert m["deltas_applied"] == 3 and m["snapshots"] == 3
    resync = s.events[(s.events["flags"] & FLAG_RESYNC) != 0]
    assert len(resync) == 1 and resync["kind"][0] == KIND_BOOK_CLEAR
    assert resync["ts_exch"][0] == (T0 + 5) * 1_000_000
    book = RefBook()
    book.apply(s.events)
    assert book.bids == {16: 5} and book.asks == {25: 2}
    with pytest.raises(DataError) as err:
        load_bybit_orderbook(path, strict=True)
    assert (
        err.value.line == 6
        and err.value.field == "u"
        and "x.zip:BTCUSDT_ob50.data" in str(err.value)
    )


def test_the_rule_shared_with_the_live_client():
    from adapters._sequence import DIFF_APPLY, DIFF_GAP, DIFF_STALE

    assert orderbook_verdict(True, 10, 11, 11, None)[0] == DIFF_APPLY
    assert orderbook_verdict(False, 10, 10, 10, None)[0] == DIFF_STALE
    verdict, why = orderbook_verdict(False, 10, 12, 12, None)
    assert verdict == DIFF_GAP and "u=12" in why


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        (b'{"topic": "orderbook.50.BTCUSDT", "type": "delta"', None, "malformed JSON"),
        (b'{"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": 1}', "data", "missing"),
        (
            b'{"topic": "orderbook.50.BTCUSDT", "type": "odd", "ts": 1, "data": '
            b'{"s": "BTCUSDT", "b": [], "a": [], "u": 2}}',
            "type",
            "unknown type",
        ),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, field, message):
    first = orjson.dumps(book_msg("snapshot", 1, [["1.0", "1"]], [], ts=T0))
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("bad.data", first + b"\n" + line + b"\n")
    with pytest.raises(DataError) as err:
        load_bybit_orderbook(path)
    assert err.value.line == 2 and err.value.field == field and message in str(err.value)


def test_off_grid_price_names_its_line(tmp_path):
    msgs = [
        book_msg("snapshot", 1, [["10.0", "1"]], [["10.5", "1"]], ts=T0),
        book_msg("delta", 2, [["10.25", "1"]], [], ts=T0 + 1),
    ]
    path = write_zip(tmp_path / "g.zip", msgs)
    with pytest.raises(DataError) as err:
        load_bybit_orderbook(path, instrument=Instrument("BTCUSDT", "bybit-linear", "0.5", "1"))
    assert err.value.line == 2 and err.value.field == "price"


def test_zip_problems_are_format_errors(tmp_path):
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.writestr("a.data", b"{}\n")
        zf.writestr("b.data", b"{}\n")
    with pytest.raises(FormatError):
        load_bybit_orderbook(two)
    cut = tmp_path / "cut.zip"
    write_zip(cut, random_session(seed=3, n=50)[0])
    cut.write_bytes(cut.read_bytes()[:-200])
    with pytest.raises(FormatError):
        load_bybit_orderbook(cut)
    assert sniff_bybit_orderbook(cut) is None
    with pytest.raises(UsageError):
        load_bybit_orderbook(two, category="inverse")
    only_deltas = load_bybit_orderbook(
        write_zip(tmp_path / "d.zip", [book_msg("delta", 1, [["1.0", "1"]], [], ts=T0)])
    )
    assert len(only_deltas) == 0 and not only_deltas.meta["synced"]
    assert only_deltas.meta["deltas_before_snapshot"] == 1
