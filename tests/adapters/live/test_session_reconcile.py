"""Reconciliation verdicts, against a venue that answers from a table (no network)."""

from __future__ import annotations

from decimal import Decimal as D

from adapters.live.binance_exec_messages import OrderStatus
from adapters.live.exec_events import ExecEvent
from adapters.live.order_records import Event, Intent, Marker, Reply
from adapters.live.order_state import rebuild
from adapters.live.session_reconcile import reconcile, venue_ids

S = "BTCUSDT"


class Venue:
    """order.status / openOrders / myTrades from dicts."""

    def __init__(self, orders: dict[str, OrderStatus], trades: dict[str, list[ExecEvent]]):
        self.orders = orders
        self.trades = trades
        self.asked: list[str] = []

    async def order_status(self, symbol: str, client_id: str) -> OrderStatus | None:
        self.asked.append(client_id)
        return self.orders.get(client_id)

    async def open_orders(self, symbol: str) -> list[OrderStatus]:
        return [o for o in self.orders.values() if o.open and o.symbol == symbol]

    async def fills(self, client_id: str, status: OrderStatus) -> list[ExecEvent]:
        return self.trades.get(client_id, [])


def st(cid: str, status: str, executed: str, qty: str = "0.002", price: str = "100") -> OrderStatus:
    return OrderStatus(cid, "9", S, "buy", status, D(price), D(qty), D(executed), None)


def new(cid: str, qty: str = "0.002", price: str = "100") -> Intent:
    return Intent("new", cid, S, 1, side="buy", price=price, qty=qty, order_type="limit")


def fill(cid: str, tid: str, qty: str) -> ExecEvent:
    return ExecEvent("fill", cid, symbol=S, price=D("100"), qty=D(qty), trade_id=tid)


async def test_each_verdict() -> None:
    journal = [
        new("a-1"),  # unknown, not at the venue: never sent
        new("a-2"),  # unknown, filled at the venue: resolved
        new("a-3"),
        Reply("a-3", "ack", 2),  # acked; the venue has one more fill and the end: caught up
        Event("a-3", "trade", 3, trade_id="30", last_qty="0.001", last_price="100"),
        new("a-4"),
        Reply("a-4", "ack", 2),  # acked, open, same fills: agrees
        new("a-5"),
        Reply("a-5", "ack", 2),  # acked, but the venue has another quantity: mismatch
        new("a-6"),
        Reply("a-6", "ack", 2),
        Event("a-6", "canceled", 4),  # ended in the journal, open at the venue: mismatch
    ]
    venue = Venue(
        {
            "a-2": st("a-2", "FILLED", "0.002"),
            "a-3": st("a-3", "CANCELED", "0.002"),
            "a-4": st("a-4", "NEW", "0"),
            "a-5": st("a-5", "NEW", "0", qty="0.003"),
            "a-6": st("a-6", "NEW", "0"),
            "zz-1": st("zz-1", "NEW", "0"),  # nobody's we know: external
        },
        {
            "a-2": [fill("a-2", "20", "0.002")],
            "a-3": [fill("a-3", "30", "0.001"), fill("a-3", "31", "0.001")],
        },
    )
    report = await reconcile(journal, venue, [S], 10)
    verdicts = {i.client_id: i.verdict for i in report.items}
    assert verdicts == {
        "a-1": "never_sent",
        "a-2": "resolved",
        "a-3": "caught_up",
        "a-4": "agrees",
        "a-5": "mismatch",
        "a-6": "mismatch",
        "zz-1": "external",
    }
    assert report.halts and {i.client_id for i in report.diff} == {"a-5", "a-6", "zz-1"}
    # Every journal order still open at the venue is ours to cancel at shutdown.
    assert [v for v, _, _ in report.inherited] == ["a-4", "a-5", "a-6"]
    assert venue.asked == ["a-1", "a-2", "a-3", "a-4", "a-5"]  # a-6 ended: only swept
    # The journal catches up: only the facts it lacked are added.
    after = rebuild([*journal, *report.records])
    assert after.orders["a-1"].status == "rejected" and after.orders["a-1"].code == -2013
    assert after.orders["a-2"].status == "filled" and after.orders["a-2"].filled_qty == D("0.002")
    assert after.orders["a-3"].status == "filled" and after.orders["a-3"].duplicate_fills == 0
    assert after.orders["a-4"].status == "accepted"
    # a-2 and a-3 filled 0.002 each (buys); the others nothing.
    assert report.journal_positions == ((S, D("0.004")),)
    marker = report.records[-1]
    assert isinstance(marker, Marker) and marker.data["mismatch"] == 2
    assert any("external" in line and "zz-1" in line for line in report.lines())


async def test_an_amended_order_is_asked_for_by_its_new_id() -> None:
    journal = [
        new("b-1"),
        Reply("b-1", "ack", 2),
        Event("b-1", "trade", 3, trade_id="1", last_qty="0.001", last_price="100"),
        Intent("amend", "b-2", S, 4, price="101", qty="0.003", orig_client_id="b-1"),
        Reply("b-2", "ack", 5),
    ]
    assert venue_ids(rebuild(journal)) == {"b-1": "b-2"}
    # The venue's order is the replacement, for what remained: not a mismatch.
    venue = Venue({"b-2": st("b-2", "NEW", "0", qty="0.002", price="101")}, {})
    report = await reconcile(journal, venue, [S], 10)
    assert venue.asked == ["b-2"]
    assert [(i.client_id, i.verdict) for i in report.items] == [("b-1", "agrees")]
    assert report.inherited == (("b-2", "b-1", S),) and not report.halts


async def test_a_new_journal_and_an_empty_account_agree() -> None:
    report = await reconcile([], Venue({}, {}), [S], 10)
    assert report.items == () and not report.halts and report.lines() == []


def test_carried_positions_follow_the_fills_in_journal_order_at_average_cost():
    from adapters.live.session_reconcile import carried_positions

    def order(cid, sym, side):
        return Intent("new", cid, sym, 1, side=side, qty="9", order_type="market")

    def fill(cid, trade, qty, price):
        return Event(cid, "trade", 2, "v", trade, qty, price)

    records = [
        order("a", "BTCUSDT", "buy"),
        order("b", "BTCUSDT", "sell"),
        order("c", "BTCUSDT", "buy"),
        fill("a", "1", "0.002", "60000"),
        fill("b", "2", "0.001", "61000"),  # reduces: the average stays 60000
        fill("a", "1", "0.002", "60000"),  # the same trade again: counted once
        fill("c", "3", "0.001", "63000"),  # adds: (0.001*60000 + 0.001*63000) / 0.002
        order("d", "ETHUSDT", "buy"),
        order("e", "ETHUSDT", "sell"),
        fill("d", "4", "1", "3000"),
        fill("e", "5", "1.5", "3100"),  # crosses zero: short 0.5 at 3100
        order("f", "SOLUSDT", "buy"),
        order("g", "SOLUSDT", "sell"),
        fill("f", "6", "1", "150"),
        fill("g", "7", "1", "151"),  # flat: not carried
        fill("ghost", "8", "1", "1"),  # an order the journal never placed: not ours
    ]
    assert carried_positions(records) == {
        "BTCUSDT": (D("0.002"), D("61500")),
        "ETHUSDT": (D("-0.5"), D("3100")),
    }


def amend(cid: str, target: str, qty: str, price: str) -> Intent:
    return Intent("amend", cid, S, 5, price=price, qty=qty, orig_client_id=target)


async def test_an_order_amended_in_place_is_asked_for_by_its_own_id() -> None:
    journal = [
        new("m-1"),
        Reply("m-1", "ack", 2),
        amend("m-2", "m-1", "0.003", "99"),
        Reply("m-2", "ack", 6),  # the modify was acknowledged: the new terms
    ]
    assert venue_ids(rebuild(journal), amend_in_place=True) == {"m-1": "m-1"}
    venue = Venue({"m-1": st("m-1", "NEW", "0", qty="0.003", price="99")}, {})
    report = await reconcile(journal, venue, [S], 10, amend_in_place=True)
    assert venue.asked == ["m-1"]
    assert [(i.client_id, i.verdict) for i in report.items] == [("m-1", "agrees")]
    assert report.inherited == (("m-1", "m-1", S),)


async def test_an_unanswered_modify_the_venue_carried_out_is_journaled() -> None:
    journal = [new("m-1"), Reply("m-1", "ack", 2), amend("m-2", "m-1", "0.003", "99")]
    venue = Venue({"m-1": st("m-1", "NEW", "0", qty="0.003", price="99")}, {})
    report = await reconcile(journal, venue, [S], 10, amend_in_place=True)
    assert [(i.client_id, i.verdict) for i in report.items] == [("m-1", "agrees")]
    rebuilt = rebuild([*journal, *report.records])
    assert rebuilt.requests["m-2"].status == "ack"
    assert (rebuilt.orders["m-1"].qty, rebuilt.orders["m-1"].price) == (D("0.003"), D("99"))
    # Terms the journal cannot explain are still a mismatch.
    other = Venue({"m-1": st("m-1", "NEW", "0", qty="0.004", price="99")}, {})
    report = await reconcile(journal, other, [S], 10, amend_in_place=True)
    assert [i.verdict for i in report.items] == ["mismatch"]
