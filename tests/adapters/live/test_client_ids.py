"""Client order ids: Binance's format, monotone, never reused across restarts."""

from __future__ import annotations

import re

import pytest

from adapters.live.client_ids import ClientIdAllocator
from adapters.live.order_journal import OrderJournal, replay
from adapters.live.order_records import Event, Intent, Reply
from engine.errors import UsageError

BINANCE_CLIENT_ID = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")
T0 = 1_700_000_000_000_000_000


def new(client_id: str) -> Intent:
    return Intent(
        action="new",
        client_id=client_id,
        instrument="BTCUSDT",
        ts_ns=T0,
        side="buy",
        qty="0.001",
        order_type="market",
    )


def test_ids_are_prefix_dash_counter() -> None:
    ids = ClientIdAllocator("ck").next(), ClientIdAllocator("ck", last=41).next()
    assert ids == ("ck-1", "ck-42")
    allocator = ClientIdAllocator("mm_BTC_1")
    assert [allocator.next() for _ in range(3)] == ["mm_BTC_1-1", "mm_BTC_1-2", "mm_BTC_1-3"]
    assert allocator.last == 3


@pytest.mark.parametrize("prefix", ["", "ck-1", "x" * 21, "café", "a b"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(UsageError, match="expected 1 to 20 of A-Z a-z 0-9 _"):
        ClientIdAllocator(prefix)


def test_longest_ids_fit_binance_and_then_stop() -> None:
    prefix = "P" * 20
    allocator = ClientIdAllocator(prefix, last=10**15 - 2)
    longest = allocator.next()
    assert longest == prefix + "-" + "9" * 15
    assert len(longest) == 36 and BINANCE_CLIENT_ID.fullmatch(longest)
    with pytest.raises(UsageError, match="exhausted at 999999999999999"):
        allocator.next()


def test_resume_after_the_highest_id_of_the_prefix() -> None:
    records = [
        new("ck-3"),
        new("ck-12"),
        Intent("cancel", "ck-5", "BTCUSDT", T0, orig_client_id="ck-3"),
        new("ck2-500"),  # another prefix that starts the same
        new("web_8c1f"),  # placed by hand
        Reply("ck-12", "ack", T0, venue_order_id="1"),
        Event("ck-3", "new", T0),
    ]
    allocator = ClientIdAllocator.resume("ck", records)
    assert allocator.next() == "ck-13"
    assert ClientIdAllocator.resume("ck2", records).next() == "ck2-501"
    assert ClientIdAllocator.resume("fresh", records).next() == "fresh-1"
    assert allocator.counter_of("ck-007") is None  # never one of ours: no leading zeros


def test_ids_survive_restarts_without_reuse(tmp_path) -> None:
    path = tmp_path / "orders.journal"
    issued: list[str] = []
    for _session in range(3):
        with OrderJournal.open(path) as journal:
            allocator = ClientIdAllocator.resume("ck", journal.recovered.records)
            for _step in range(2):
                batch = [new(allocator.next()), new(allocator.next())]
                journal.append_batch(batch)
                issued.extend(r.client_id for r in batch)
    assert issued == [f"ck-{n}" for n in range(1, 13)]
    assert len(set(issued)) == 12
    assert all(BINANCE_CLIENT_ID.fullmatch(i) for i in issued)
    assert [r.client_id for r in replay(path).records] == issued


def test_an_id_lost_in_a_torn_batch_was_never_sent_and_is_handed_out_again(tmp_path) -> None:
    path = tmp_path / "orders.journal"
    with OrderJournal.open(path) as journal:
        allocator = ClientIdAllocator.resume("ck", [])
        journal.append_batch([new(allocator.next())])
        torn_at = journal.append_batch([new(allocator.next())])
    with open(path, "r+b") as f:  # the crash: the second batch only half written
        f.truncate(torn_at + 10)
    with OrderJournal.open(path) as journal:
        assert ClientIdAllocator.resume("ck", journal.recovered.records).next() == "ck-2"
