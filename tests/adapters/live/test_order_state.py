"""Order state rebuilt from the journal: the starting point of reconciliation after a crash."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from adapters.live.order_journal import OrderJournal, replay
from adapters.live.order_records import Event, Intent, Marker, Reply
from adapters.live.order_state import (
    ACCEPTED,
    CANCELED,
    EXPIRED,
    FILLED,
    PARTIALLY_FILLED,
    REJECTED,
    UNKNOWN,
    rebuild,
)
from engine.codes import STATE_NAMES
from engine.errors import DataError

T0 = 1_700_000_000_000_000_000
_ts = itertools.count(T0)


def new(client_id: str, qty: str = "1.000", price: str | None = "100.5", tif="GTC") -> Intent:
    return Intent(
        action="new",
        client_id=client_id,
        instrument="BTCUSDT",
        ts_ns=next(_ts),
        side="buy",
        price=price,
        qty=qty,
        order_type="limit" if price else "market",
        tif=tif if price else None,
    )


def cancel(client_id: str, target: str) -> Intent:
    return Intent("cancel", client_id, "BTCUSDT", next(_ts), orig_client_id=target)


def ack(client_id: str, venue_id: str | None = None) -> Reply:
    return Reply(client_id, "ack", next(_ts), venue_order_id=venue_id)


def fill(client_id: str, trade_id: str, qty: str, price: str = "100.5") -> Event:
    return Event(client_id, "trade", next(_ts), trade_id=trade_id, last_qty=qty, last_price=price)


def test_status_names_are_the_engines() -> None:
    engine_names = set(STATE_NAMES.values())
    for name in (ACCEPTED, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, REJECTED):
        assert name in engine_names
    assert UNKNOWN not in engine_names  # the one state only a crash produces


def test_crash_scenario() -> None:
    records = [
        Marker("session_start", next(_ts), {"prefix": "ck"}),
        # ck-1: acked, filled in three trades, one reported twice (WebSocket and REST).
        new("ck-1"),
        ack("ck-1", "9001"),
        fill("ck-1", "501", "0.250", "100.5"),
        fill("ck-1", "502", "0.500", "100.4"),
        fill("ck-1", "502", "0.500", "100.4"),
        fill("ck-1", "503", "0.250", "100.3"),
        # ck-2: rejected by the venue.
        new("ck-2", price="99.0"),
        Reply("ck-2", "reject", next(_ts), code=-2010, message="insufficient balance"),
        # ck-3: journaled, then the crash: no reply.
        new("ck-3"),
        # ck-4: acked, then canceled by request ck-5 (acked).
        new("ck-4"),
        ack("ck-4", "9004"),
        cancel("ck-5", "ck-4"),
        ack("ck-5"),
        # ck-6: acked, partly filled, cancel ck-7 sent but no reply.
        new("ck-6", qty="2"),
        ack("ck-6", "9006"),
        fill("ck-6", "601", "0.5"),
        cancel("ck-7", "ck-6"),
        # ck-8: the ack was lost, but a fill proves the order reached the venue.
        new("ck-8", qty="3"),
        fill("ck-8", "801", "1"),
        Event("ck-8", "trade", next(_ts), "9008", "802", "1", "100.5"),
        # ck-9: IOC remainder expired after a fill; ck-10 cancel of ck-9 came too late.
        new("ck-9", tif="IOC"),
        Event("ck-9", "new", next(_ts), "9009"),
        fill("ck-9", "901", "0.4"),
        Event("ck-9", "expired", next(_ts), "9009"),
        cancel("ck-10", "ck-9"),
        Reply("ck-10", "reject", next(_ts), code=-2011, message="Unknown order sent."),
        # A fill for an order this journal never placed (entered on the website).
        fill("web_1", "999", "5"),
    ]
    state = rebuild(records)
    orders = state.orders
    assert list(orders) == ["ck-1", "ck-2", "ck-3", "ck-4", "ck-6", "ck-8", "ck-9"]
    status = {cid: o.status for cid, o in orders.items()}
    assert status == {
        "ck-1": FILLED,
        "ck-2": REJECTED,
        "ck-3": UNKNOWN,
        "ck-4": CANCELED,
        "ck-6": PARTIALLY_FILLED,
        "ck-8": PARTIALLY_FILLED,
        "ck-9": EXPIRED,
    }
    one = orders["ck-1"]
    assert (one.filled_qty, one.duplicate_fills, one.trade_ids) == (
        Decimal("1.000"),
        1,
        {"501", "502", "503"},
    )
    assert one.filled_notional == Decimal("100.4000")  # 25.125 + 50.2 + 25.075
    assert one.avg_price == Decimal("100.4")
    assert one.venue_order_id == "9001"
    assert (orders["ck-2"].code, orders["ck-2"].message) == (-2010, "insufficient balance")
    three = orders["ck-3"]
    assert (three.acked, three.venue_order_id, three.open_qty) == (False, None, Decimal("1.000"))
    assert orders["ck-6"].pending == ["ck-7"] and orders["ck-6"].open_qty == Decimal("1.5")
    assert (orders["ck-8"].filled_qty, orders["ck-8"].venue_order_id) == (Decimal(2), "9008")
    assert orders["ck-9"].code == -2011 and orders["ck-9"].open_qty == 0
    assert state.requests["ck-5"].status == "ack"
    assert state.requests["ck-7"].status == "pending"
    assert state.requests["ck-10"].status == "reject"
    assert [r.client_id for r in state.orphans] == ["web_1"]
    assert [m.name for m in state.markers] == ["session_start"]
    assert [o.client_id for o in state.to_reconcile()] == ["ck-3", "ck-6", "ck-8"]


def test_result_does_not_depend_on_fill_before_ack() -> None:
    intent = new("ck-1", qty="1")
    fills = [fill("ck-1", "1", "0.4"), fill("ck-1", "2", "0.6")]
    early = rebuild([intent, *fills, ack("ck-1", "77")]).orders["ck-1"]
    late = rebuild([intent, ack("ck-1", "77"), *fills]).orders["ck-1"]
    assert (early.status, early.filled_qty, early.venue_order_id) == (FILLED, Decimal("1.0"), "77")
    assert (late.status, late.filled_qty, late.venue_order_id) == (FILLED, Decimal("1.0"), "77")


def test_fill_racing_a_cancel_fills_the_order() -> None:
    records = [new("ck-1", qty="1"), ack("ck-1"), cancel("ck-2", "ck-1"), fill("ck-1", "1", "1")]
    records.append(Reply("ck-2", "reject", next(_ts), code=-2011, message="Unknown order"))
    order = rebuild(records).orders["ck-1"]
    assert (order.status, order.pending, order.code) == (FILLED, [], -2011)
    # And a cancel acked before a trade it raced with at the venue: the fill still counts.
    order = rebuild(
        [new("c-1", qty="1"), cancel("c-2", "c-1"), ack("c-2"), fill("c-1", "1", "0.5")]
    ).orders["c-1"]
    assert (order.status, order.filled_qty) == (CANCELED, Decimal("0.5"))


def test_acked_amend_changes_quantity_and_price() -> None:
    amend = Intent(
        "amend", "ck-2", "BTCUSDT", next(_ts), qty="0.4", price="101", orig_client_id="ck-1"
    )
    records = [new("ck-1", qty="1"), ack("ck-1"), fill("ck-1", "1", "0.4"), amend]
    pending = rebuild(records).orders["ck-1"]
    assert (pending.status, pending.qty, pending.pending) == (PARTIALLY_FILLED, 1, ["ck-2"])
    done = rebuild([*records, ack("ck-2")]).orders["ck-1"]
    assert (done.status, done.qty, done.price, done.pending) == (
        FILLED,
        Decimal("0.4"),
        Decimal(101),
        [],
    )


def test_a_reused_client_id_is_an_error() -> None:
    with pytest.raises(DataError, match="record 2: client id 'ck-1' already used by record 0"):
        rebuild([new("ck-1"), ack("ck-1"), new("ck-1")])


def test_rebuild_from_a_journal_with_a_torn_tail(tmp_path) -> None:
    path = tmp_path / "orders.journal"
    with OrderJournal.open(path) as journal:
        journal.append_batch([new("ck-1"), new("ck-2")])
        journal.append_batch([ack("ck-1", "1"), fill("ck-1", "7", "0.5")], sync=False)
        torn = journal.append_batch([fill("ck-1", "7", "0.5"), fill("ck-1", "8", "0.5")])
    with open(path, "r+b") as f:
        f.truncate(torn + 30)
    state = rebuild(replay(path).records)
    assert {c: (o.status, o.filled_qty) for c, o in state.orders.items()} == {
        "ck-1": (PARTIALLY_FILLED, Decimal("0.5")),
        "ck-2": (UNKNOWN, Decimal(0)),
    }
