"""The session's translation layer without a network: outbox rows in, ExecEvents back.

A LiveEngine (the shared test strategy, idle) takes manual orders; `LiveOrders` turns its
outbox into venue requests and journal intents, and applies hand-made execution events.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from adapters.live.client_ids import ClientIdAllocator
from adapters.live.exec_events import ExecEvent
from adapters.live.order_records import Event, Intent, Marker, Reply
from adapters.live.order_state import rebuild
from adapters.live.rows import book_rows
from adapters.live.sandbox_replay import SymbolSpec
from adapters.live.session_orders import LiveOrders, reject_reason
from adapters.live.venue_filters import VenueFilters
from engine.codes import (
    R_BAD_PRICE,
    R_BAD_QUANTITY,
    R_BELOW_MIN_NOTIONAL,
    R_NONE,
    R_POST_ONLY_WOULD_CROSS,
    R_UNKNOWN_ORDER,
    SIDE_BUY_CODE,
    ST_ACCEPTED,
    ST_CANCELED,
    ST_FILLED,
    ST_PARTIALLY_FILLED,
    ST_REJECTED,
)
from engine.commands import CMD_AMEND, CMD_CANCEL, CMD_MANUAL_LIMIT, Command
from engine.instruments import Instrument, InstrumentRegistry
from engine.live import LiveEngine
from engine.state import PI_POS
from tests.adapters.live.session_helpers import touch_trader

T0 = 1_700_000_000_000_000_000
SYMBOL = "BTCUSDT"
INST = Instrument(SYMBOL, "binance-spot", D("0.01"), D("0.00001"))


def setup() -> tuple[LiveEngine, LiveOrders]:
    reg = InstrumentRegistry()
    reg.add(INST)
    eng = LiveEngine(reg, touch_trader(), [{"at": 10**9}])  # idle: manual orders only
    eng.set_in_sync(0, True)
    rows = book_rows(
        0, INST, [["60000.00", "1"]], [["60000.10", "1"]], ts_exch=T0, ts_local=T0, snapshot=True
    )
    eng.push_events(rows)
    eng.step_until(T0)
    doc = {"symbols": [SymbolSpec(SYMBOL, D("0.01"), D("0.00001")).info()]}
    filters = {SYMBOL: VenueFilters.from_exchange_info(doc, SYMBOL)}
    return eng, LiveOrders(eng, reg, ClientIdAllocator("u"), filters=filters)


def status_of(eng: LiveEngine, oid: int) -> int:
    j = eng.journal()
    return int(j["to_state"][j["oid"] == oid][-1])


def place(eng: LiveEngine, orders: LiveOrders, price: int, qty: int, ts: int):
    oid = eng.command(Command(CMD_MANUAL_LIMIT, a=0, b=SIDE_BUY_CODE, c=price, d=qty))
    assert oid >= 0
    (out,) = eng.take_outbox()
    return oid, orders.prepare(out, ts)


def test_a_new_order_becomes_a_request_and_an_intent_and_its_fills_a_position() -> None:
    eng, orders = setup()
    oid, p = place(eng, orders, 5_999_000, 600, T0 + 1)
    assert p is not None
    req, intent = p.request, p.intent
    assert (req.kind, req.client_id, req.side, req.price, req.qty) == (
        "new", "u-1", "buy", D("59990.00"), D("0.00600"),
    )  # fmt: skip
    assert intent == Intent(
        "new", "u-1", SYMBOL, T0 + 1, side="buy", price="59990.00", qty="0.00600",
        order_type="limit", tif="GTC",
    )  # fmt: skip
    recs = orders.on_exec(ExecEvent("ack", "u-1", symbol=SYMBOL, venue_order_id="7"), T0 + 2)
    recs += orders.on_exec(
        ExecEvent("fill", "u-1", symbol=SYMBOL, price=D("59990.00"), qty=D("0.00200"),
                  trade_id="31", liquidity="maker"),
        T0 + 3,
    )  # fmt: skip
    eng.step_until(T0 + 4)
    assert status_of(eng, oid) == ST_PARTIALLY_FILLED
    assert int(eng.state.pi[-1, 0, PI_POS]) == 200
    assert recs == [
        Reply("u-1", "ack", T0 + 2, venue_order_id="7"),
        Event("u-1", "trade", T0 + 3, trade_id="31", last_qty="0.00200", last_price="59990.00"),
    ]
    assert rebuild([intent, *recs]).orders["u-1"].status == "partially_filled"
    assert orders.counts.acked == 1 and orders.counts.fills == 1


def test_the_venue_filters_refuse_before_anything_is_journaled() -> None:
    eng, orders = setup()
    oid, p = place(eng, orders, 5_999_000, 1, T0 + 1)  # 0.00001 BTC at 59,990: below 5 USDT
    assert p is None and orders.counts.refused_locally == 1
    eng.step_until(T0 + 2)
    assert status_of(eng, oid) == ST_REJECTED
    j = eng.journal()
    assert int(j["reason"][j["oid"] == oid][-1]) == R_BELOW_MIN_NOTIONAL
    assert orders.ids.last == 1  # an id was allocated, never sent: harmless


def test_cancel_goes_out_under_the_venue_id_and_its_outcome_comes_back() -> None:
    eng, orders = setup()
    oid, p = place(eng, orders, 5_999_000, 600, T0 + 1)
    orders.on_exec(ExecEvent("ack", "u-1", symbol=SYMBOL), T0 + 2)
    eng.step_until(T0 + 2)
    eng.command(Command(CMD_CANCEL, a=oid))
    (out,) = eng.take_outbox()
    c = orders.prepare(out, T0 + 3)
    assert c is not None
    assert (c.request.kind, c.request.client_id, c.request.orig_client_id) == (
        "cancel", "u-2", "u-1",
    )  # fmt: skip
    rejected = orders.on_exec(
        ExecEvent("cancel_rejected", "u-2", orig_client_id="u-1", code=-2011, message="Unknown"),
        T0 + 4,
    )
    eng.step_until(T0 + 4)
    assert status_of(eng, oid) == ST_ACCEPTED  # the cancel failed: still working
    assert rejected == [Reply("u-2", "reject", T0 + 4, code=-2011, message="Unknown")]
    eng.command(Command(CMD_CANCEL, a=oid))
    (out,) = eng.take_outbox()
    c2 = orders.prepare(out, T0 + 5)
    assert c2 is not None
    recs = orders.on_exec(ExecEvent("canceled", "u-1", symbol=SYMBOL), T0 + 6)
    eng.step_until(T0 + 6)
    assert status_of(eng, oid) == ST_CANCELED
    assert recs == [Event("u-1", "canceled", T0 + 6), Reply("u-3", "ack", T0 + 6)]
    journal = [p.intent, c.intent, *rejected, c2.intent, *recs]
    rebuilt = rebuild(journal)
    assert rebuilt.orders["u-1"].status == "canceled" and rebuilt.orders["u-1"].pending == []


def test_an_amend_is_a_cancel_replace_under_a_new_id_for_what_remains() -> None:
    eng, orders = setup()
    oid, p = place(eng, orders, 5_999_000, 600, T0 + 1)
    assert p is not None
    journal = [p.intent]
    journal += orders.on_exec(ExecEvent("ack", "u-1", symbol=SYMBOL, venue_order_id="1"), T0 + 2)
    journal += orders.on_exec(
        ExecEvent("fill", "u-1", price=D("59990.00"), qty=D("0.00100"), trade_id="5"), T0 + 3
    )
    eng.step_until(T0 + 3)
    eng.command(Command(CMD_AMEND, a=oid, c=5_999_500, d=500))  # new total 500 lots
    (out,) = eng.take_outbox()
    a = orders.prepare(out, T0 + 4)
    assert a is not None
    assert (a.request.kind, a.request.orig_client_id, a.request.price, a.request.qty) == (
        "amend", "u-1", D("59995.00"), D("0.00400"),  # the new order is for what remains
    )  # fmt: skip
    assert (a.intent.qty, a.intent.orig_client_id) == ("0.00500", "u-1")  # the new total
    journal.append(a.intent)
    # Cancel-replace: the old order's cancel first (held back), then the outcome.
    journal += orders.on_exec(ExecEvent("canceled", "u-1", symbol=SYMBOL), T0 + 5)
    journal += orders.on_exec(
        ExecEvent("amended", "u-2", orig_client_id="u-1", venue_order_id="2"), T0 + 5
    )
    journal += orders.on_exec(ExecEvent("ack", "u-2", venue_order_id="2"), T0 + 5)
    eng.step_until(T0 + 5)
    assert status_of(eng, oid) == ST_PARTIALLY_FILLED  # amended, not canceled
    journal += orders.on_exec(
        ExecEvent("fill", "u-2", price=D("59995.00"), qty=D("0.00400"), trade_id="9"), T0 + 6
    )
    eng.step_until(T0 + 6)
    assert status_of(eng, oid) == ST_FILLED
    assert int(eng.state.pi[-1, 0, PI_POS]) == 500
    order = rebuild(journal).orders["u-1"]  # one order in the journal, under its first id
    assert (order.status, order.qty, order.filled_qty) == ("filled", D("0.00500"), D("0.005"))


def test_an_amend_whose_new_order_failed_after_the_cancel_ends_the_order() -> None:
    eng, orders = setup()
    oid, _ = place(eng, orders, 5_999_000, 600, T0 + 1)
    orders.on_exec(ExecEvent("ack", "u-1"), T0 + 2)
    eng.step_until(T0 + 2)
    eng.command(Command(CMD_AMEND, a=oid, c=5_999_500, d=600))
    (out,) = eng.take_outbox()
    assert orders.prepare(out, T0 + 3) is not None
    assert orders.on_exec(ExecEvent("canceled", "u-1"), T0 + 4) == []  # held back
    recs = orders.on_exec(
        ExecEvent("amend_rejected", "u-2", orig_client_id="u-1", code=-2021, message="x"),
        T0 + 4,
    )
    eng.step_until(T0 + 4)
    assert status_of(eng, oid) == ST_CANCELED
    assert [type(r).__name__ for r in recs] == ["Reply", "Event"]


def test_unknown_and_resolved_are_kept_for_the_ui_and_marked_in_the_journal() -> None:
    eng, orders = setup()
    place(eng, orders, 5_999_000, 600, T0 + 1)
    (m,) = orders.on_exec(ExecEvent("unknown", "u-1", symbol=SYMBOL, reason="timeout"), T0 + 2)
    assert isinstance(m, Marker) and m.data == {"client_id": "u-1", "reason": "timeout"}
    assert list(orders.unknown) == ["u-1"] and orders.unknown["u-1"].kind == "new"
    orders.on_exec(ExecEvent("resolved", "u-1", reason="FILLED"), T0 + 3)
    assert orders.unknown == {} and (orders.counts.unknown, orders.counts.resolved) == (1, 1)


def test_events_about_orders_we_did_not_place_do_not_touch_the_engine() -> None:
    eng, orders = setup()
    seen: list[str] = []
    orders.foreign = lambda ev: seen.append(ev.client_id) or []
    assert orders.on_exec(ExecEvent("fill", "x-1", price=D("1"), qty=D("1")), T0) == []
    assert seen == ["x-1"] and orders.counts.foreign_events == 1
    assert eng.counters()["fills"] == 0


@pytest.mark.parametrize(
    ("message", "code", "reason"),
    [
        ("Filter failure: PRICE_FILTER", -1013, R_BAD_PRICE),
        ("Filter failure: LOT_SIZE", -1013, R_BAD_QUANTITY),
        ("Filter failure: NOTIONAL", -1013, R_BELOW_MIN_NOTIONAL),
        ("Order would immediately match and take.", -2010, R_POST_ONLY_WOULD_CROSS),
        ("Order does not exist.", -2013, R_UNKNOWN_ORDER),
        ("Duplicate order sent.", -2010, R_NONE),
    ],
)
def test_venue_rejects_map_to_engine_reasons(message: str, code: int, reason: int) -> None:
    assert reject_reason(message, code) == reason
