"""Journal records: JSON form, and validation that names the field."""

from __future__ import annotations

import pytest

from adapters.live.order_records import (
    Event,
    Intent,
    Marker,
    Reply,
    from_json_obj,
    to_json_obj,
)
from engine.errors import DataError

T0 = 1_700_000_000_000_000_000

LIMIT = dict(
    action="new",
    client_id="ck-1",
    instrument="BTCUSDT",
    ts_ns=T0,
    side="buy",
    price="61837.63",
    qty="0.001",
    order_type="limit",
    tif="GTC",
)


def test_json_objects_are_compact_and_round_trip() -> None:
    records = [
        Intent(**LIMIT, post_only=True),
        Intent("cancel", "ck-2", "BTCUSDT", T0, orig_client_id="ck-1"),
        Intent("amend", "ck-3", "BTCUSDT", T0, qty="0.0005", orig_client_id="ck-1"),
        Reply("ck-2", "reject", T0, code=-2011, message="Unknown order sent."),
        Event("ck-1", "trade", T0, "28457", "1001", "0.0004", "61837.63"),
        Marker("reconciled", T0, {"orders": 3}),
    ]
    assert to_json_obj(records[0]) == {"k": "intent", **LIMIT, "post_only": True}
    assert to_json_obj(records[1]) == {
        "k": "intent",
        "action": "cancel",
        "client_id": "ck-2",
        "instrument": "BTCUSDT",
        "ts_ns": T0,
        "orig_client_id": "ck-1",
    }
    assert to_json_obj(records[3]) == {
        "k": "reply",
        "client_id": "ck-2",
        "status": "reject",
        "ts_ns": T0,
        "code": -2011,
        "message": "Unknown order sent.",
    }
    assert [from_json_obj(to_json_obj(r)) for r in records] == records


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"qty": 0.001}, "intent.qty", "0.001 is not a decimal string"),
        ({"qty": "1e-3"}, "intent.qty", "'1e-3' is not a decimal string"),
        ({"qty": "0.000"}, "intent.qty", "'0.000' must be more than zero"),
        ({"price": "-1"}, "intent.price", "'-1' is not a decimal string"),
        ({"client_id": "c" * 37}, "intent.client_id", "is not a client order id"),
        ({"client_id": "ck.1"}, "intent.client_id", "is not a client order id"),
        ({"side": "BUY"}, "intent.side", "'BUY' is not one of buy, sell"),
        ({"tif": "GTX"}, "intent.tif", "'GTX' is not one of GTC, IOC, FOK"),
        ({"order_type": "market"}, "intent.price", "a market order has no price"),
        ({"orig_client_id": "ck-0"}, "intent.orig_client_id", "a new order has no target"),
        ({"ts_ns": 1.5}, "intent.ts_ns", "1.5 is not an integer"),
        ({"action": "replace"}, "intent.action", "'replace' is not one of new, cancel, amend"),
    ],
)
def test_invalid_intents_name_the_field(changes, field, message) -> None:
    with pytest.raises(DataError, match=message) as err:
        Intent(**{**LIMIT, **changes})
    assert err.value.field == field


def test_cancel_and_amend_shapes() -> None:
    with pytest.raises(DataError, match="a cancel carries only the target order"):
        Intent("cancel", "ck-2", "BTCUSDT", T0, side="buy", orig_client_id="ck-1")
    with pytest.raises(DataError, match="None is not a client order id") as err:
        Intent("cancel", "ck-2", "BTCUSDT", T0)
    assert err.value.field == "intent.orig_client_id"
    with pytest.raises(DataError, match="None is not a decimal string"):
        Intent("amend", "ck-3", "BTCUSDT", T0, orig_client_id="ck-1")


def test_events_and_replies_are_checked() -> None:
    with pytest.raises(DataError, match="None is not a non-empty string") as err:
        Event("ck-1", "trade", T0, last_qty="1", last_price="2")
    assert err.value.field == "event.trade_id"
    with pytest.raises(DataError, match="only a trade carries a fill"):
        Event("ck-1", "canceled", T0, trade_id="5")
    with pytest.raises(DataError, match="'nack' is not one of ack, reject"):
        Reply("ck-1", "nack", T0)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="keys are strings, values str or int"):
        Marker("m", T0, {"x": 1.5})  # type: ignore[dict-item]


def test_from_json_obj_errors() -> None:
    with pytest.raises(DataError, match="unknown record kind 'order'"):
        from_json_obj({"k": "order"})
    with pytest.raises(DataError, match="unknown field\\(s\\) colour in a marker record"):
        from_json_obj({"k": "marker", "name": "m", "ts_ns": 1, "colour": "red"})
    with pytest.raises(DataError, match="reply record: .*missing .* 'status'"):
        from_json_obj({"k": "reply", "client_id": "ck-1", "ts_ns": 1})
