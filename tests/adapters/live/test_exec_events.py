"""Order requests refuse what a venue could not be sent; events name their kind."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from adapters.live.exec_events import ExecEvent, OrderRequest
from engine.errors import UsageError


def test_valid_requests() -> None:
    OrderRequest("new", "s-1", "BTCUSDT", side="buy", price=D("1.5"), qty=D("2"))
    OrderRequest("new", "s-2", "BTCUSDT", side="sell", type="market", qty=D("2"), tif="IOC")
    OrderRequest("new", "s-3", "BTCUSDT", side="sell", price=D("1"), qty=D("1"), post_only=True)
    OrderRequest("cancel", "s-4", "BTCUSDT", orig_client_id="s-1")
    OrderRequest(
        "amend", "s-5", "BTCUSDT", orig_client_id="s-1", side="buy", price=D("1"), qty=D("1")
    )
    OrderRequest("cancel_all", "s-6", "BTCUSDT")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "replace"}, "kind"),
        ({"client_id": "has space"}, "client_id"),
        ({"client_id": "x" * 37}, "client_id"),
        ({"symbol": ""}, "symbol"),
        ({"side": "long"}, "side"),
        ({"qty": None}, "qty is required"),
        ({"qty": D("0")}, "qty must be a positive"),
        ({"qty": 1.5}, "qty must be a Decimal"),
        ({"price": None}, "price is required"),
        ({"type": "market"}, "market order has no price"),
        ({"tif": "GTD"}, "tif"),
        ({"post_only": True, "tif": "IOC"}, "post_only"),
        ({"orig_client_id": "s-0"}, "orig_client_id is only"),
    ],
)
def test_bad_new_orders(kwargs: dict, match: str) -> None:
    base = {
        "kind": "new",
        "client_id": "s-1",
        "symbol": "BTCUSDT",
        "side": "buy",
        "price": D("1"),
        "qty": D("1"),
    }
    with pytest.raises(UsageError, match=match):
        OrderRequest(**{**base, **kwargs})


def test_bad_cancels() -> None:
    with pytest.raises(UsageError, match="orig_client_id"):
        OrderRequest("cancel", "c-1", "BTCUSDT")
    with pytest.raises(UsageError, match="no side, price or quantity"):
        OrderRequest("cancel", "c-1", "BTCUSDT", orig_client_id="s-1", qty=D("1"))
    with pytest.raises(UsageError, match="orig_client_id"):
        OrderRequest("amend", "a-1", "BTCUSDT", side="buy", price=D("1"), qty=D("1"))


def test_events() -> None:
    assert ExecEvent("canceled", "s-1").terminal
    assert not ExecEvent("fill", "s-1").terminal
    with pytest.raises(UsageError, match="kind"):
        ExecEvent("filled", "s-1")  # type: ignore[arg-type]
