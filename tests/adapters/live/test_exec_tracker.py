"""The tracker reports each fact once and in an applicable order, whatever the venue sent."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from adapters.live.exec_events import ExecEvent, OrderRequest
from adapters.live.exec_tracker import OrderTracker
from engine.errors import UsageError


def tracker() -> tuple[OrderTracker, list[ExecEvent]]:
    out: list[ExecEvent] = []
    return OrderTracker(out.append), out


def kinds(events: list[ExecEvent]) -> list[tuple[str, str]]:
    return [(e.kind, e.client_id) for e in events]


NEW = OrderRequest("new", "s-1", "BTCUSDT", side="buy", price=D("100"), qty=D("2"))


def fill(tid: str, qty: str, cum: str, cid: str = "s-1") -> ExecEvent:
    return ExecEvent(
        "fill", cid, "BTCUSDT", "7", price=D("100"), qty=D(qty), cum_qty=D(cum), trade_id=tid
    )


def test_ack_fills_end_each_once() -> None:
    t, out = tracker()
    t.expect(NEW)
    t.offer(ExecEvent("ack", "s-1", "BTCUSDT", "7"))
    t.offer(ExecEvent("ack", "s-1", "BTCUSDT", "7"))  # the reply after the report
    t.offer(fill("11", "1", "1"))
    t.offer(fill("11", "1", "1"))  # delivered twice
    t.offer(fill("12", "1", "2"))
    t.offer(ExecEvent("canceled", "s-1", "BTCUSDT"))
    t.offer(ExecEvent("canceled", "s-1", "BTCUSDT"))
    assert kinds(out) == [("ack", "s-1"), ("fill", "s-1"), ("fill", "s-1"), ("canceled", "s-1")]
    assert t.duplicate_fills == 1 and t.duplicates == 2
    assert out[2].cum_qty == D("2") and t.order("s-1").ended == "canceled"  # type: ignore[union-attr]


def test_a_fill_before_the_ack_implies_it() -> None:
    t, out = tracker()
    t.expect(NEW)
    t.offer(fill("11", "2", "2"))
    t.offer(ExecEvent("ack", "s-1", "BTCUSDT", "7"))
    assert kinds(out) == [("ack", "s-1"), ("fill", "s-1")]
    assert out[0].reason == "implied by fill" and out[0].price == D("100")


def test_a_fill_after_the_cancel_is_still_reported() -> None:
    t, out = tracker()
    t.expect(NEW)
    t.offer(ExecEvent("ack", "s-1"))
    t.offer(ExecEvent("canceled", "s-1"))
    t.offer(fill("11", "1", "1"))
    assert kinds(out)[-1] == ("fill", "s-1")


def test_unknown_then_resolved_by_a_report() -> None:
    t, out = tracker()
    t.expect(NEW)
    assert t.unknown(ExecEvent("unknown", "s-1", "BTCUSDT", reason="no reply")) is not None
    assert t.unknown(ExecEvent("unknown", "s-1", "BTCUSDT")) is None  # once
    assert [r.client_id for r in t.unknown_requests()] == ["s-1"]
    t.offer(ExecEvent("ack", "s-1", "BTCUSDT", "7", reason="NEW"))
    assert kinds(out) == [("unknown", "s-1"), ("resolved", "s-1"), ("ack", "s-1")]
    assert out[1].reason == "NEW" and t.unknown_requests() == []


def test_unknown_after_the_report_is_not_reported() -> None:
    t, out = tracker()
    t.expect(NEW)
    t.offer(ExecEvent("ack", "s-1"))
    assert t.unknown(ExecEvent("unknown", "s-1")) is None
    assert kinds(out) == [("ack", "s-1")]


def test_resolved_by_a_status_query() -> None:
    t, out = tracker()
    t.expect(NEW)
    t.unknown(ExecEvent("unknown", "s-1"))
    t.resolve(
        "s-1",
        "FILLED",
        [ExecEvent("ack", "s-1"), fill("11", "2", "2"), ExecEvent("ack", "s-1")],
    )
    assert kinds(out) == [("unknown", "s-1"), ("resolved", "s-1"), ("ack", "s-1"), ("fill", "s-1")]
    assert out[1].reason == "FILLED"


def test_a_cancel_is_settled_by_the_cancel_of_its_target() -> None:
    t, out = tracker()
    t.expect(NEW)
    t.offer(ExecEvent("ack", "s-1"))
    cancel = OrderRequest("cancel", "s-2", "BTCUSDT", orig_client_id="s-1")
    t.expect(cancel)
    t.unknown(ExecEvent("unknown", "s-2", "BTCUSDT", orig_client_id="s-1"))
    t.offer(ExecEvent("canceled", "s-1", reason="CANCELED"))
    assert kinds(out)[1:] == [("unknown", "s-2"), ("resolved", "s-2"), ("canceled", "s-1")]
    assert out[2].orig_client_id == "s-1"


def test_amend_outcomes() -> None:
    t, out = tracker()
    t.expect(NEW)
    t.offer(ExecEvent("ack", "s-1"))
    amend = OrderRequest(
        "amend", "s-2", "BTCUSDT", orig_client_id="s-1", side="buy", price=D("99"), qty=D("2")
    )
    t.expect(amend)
    t.offer(ExecEvent("canceled", "s-1"))
    t.offer(ExecEvent("ack", "s-2", venue_order_id="8"))
    assert kinds(out)[1:] == [("canceled", "s-1"), ("amended", "s-2"), ("ack", "s-2")]
    assert out[2].orig_client_id == "s-1" and out[2].price == D("99")
    # A second amend whose new order the venue rejects: one amend_rejected, not a reject.
    again = OrderRequest(
        "amend", "s-3", "BTCUSDT", orig_client_id="s-2", side="buy", price=D("98"), qty=D("2")
    )
    t.expect(again)
    t.offer(ExecEvent("reject", "s-3", message="Order would immediately match and take."))
    t.offer(ExecEvent("amend_rejected", "s-3", code=-2021))
    assert kinds(out)[-1] == ("amend_rejected", "s-3")
    assert out[-1].orig_client_id == "s-2" and t.duplicates == 1


def test_a_client_id_is_never_used_twice() -> None:
    t, _ = tracker()
    t.expect(NEW)
    with pytest.raises(UsageError, match="already used"):
        t.expect(NEW)
    t.offer(ExecEvent("ack", "manual-1"))  # an order placed elsewhere under this id
    with pytest.raises(UsageError):
        t.expect(OrderRequest("cancel_all", "manual-1", "BTCUSDT"))


def test_orphans_are_reported_and_counted() -> None:
    t, out = tracker()
    t.offer(ExecEvent("ack", "manual-1", "BTCUSDT", "9", side="sell"))
    assert kinds(out) == [("ack", "manual-1")] and t.orphans == 1
    assert t.order("manual-1").orphan  # type: ignore[union-attr]


def test_a_rejected_order_is_not_acked_by_later_facts() -> None:
    t, out = tracker()
    t.expect(NEW)
    t.offer(ExecEvent("reject", "s-1", code=-2010, message="Duplicate order sent."))
    t.offer(ExecEvent("ack", "s-1"))
    t.offer(ExecEvent("canceled", "s-1"))
    assert kinds(out) == [("reject", "s-1")]
    assert t.open_orders() == []


MODIFY = OrderRequest(
    "amend", "s-2", "BTCUSDT", orig_client_id="s-1", side="buy", price=D("99"), qty=D("3")
)


def test_an_amend_in_place_creates_no_order_and_its_report_settles_it() -> None:
    t, out = tracker()
    t.expect(NEW)
    t.offer(ExecEvent("ack", "s-1", "BTCUSDT", "7"))
    t.expect(MODIFY, in_place=True)
    assert t.order("s-2") is None and t.request("s-2").in_place  # type: ignore[union-attr]
    # The venue's AMENDMENT report comes under the order's own id, before the reply.
    t.offer(ExecEvent("amended", "s-1", "BTCUSDT", "7", price=D("99"), qty=D("3")))
    reply = ExecEvent("amended", "s-2", "BTCUSDT", "7", orig_client_id="s-1", price=D("99"))
    t.offer(reply)  # the reply: a repeat
    assert kinds(out) == [("ack", "s-1"), ("amended", "s-2")]
    assert out[1].orig_client_id == "s-1" and t.duplicates == 1
    order = t.order("s-1")
    assert order is not None and (order.price, order.qty, order.ended) == (D("99"), D("3"), "")
    assert t.request("s-2").settled  # type: ignore[union-attr]


def test_a_rejected_amend_in_place_leaves_the_order_working() -> None:
    t, out = tracker()
    t.expect(NEW)
    t.offer(ExecEvent("ack", "s-1", "BTCUSDT", "7"))
    t.expect(MODIFY, in_place=True)
    t.offer(ExecEvent("amend_rejected", "s-2", "BTCUSDT", orig_client_id="s-1", code=-5027))
    assert kinds(out) == [("ack", "s-1"), ("amend_rejected", "s-2")]
    order = t.order("s-1")
    assert order is not None and (order.price, order.qty, order.ended) == (D("100"), D("2"), "")
