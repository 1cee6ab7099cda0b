"""Subclassing WsVenue: what a venue must define is named when it is missing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from adapters.live.ws_venue import WsVenue
from engine.errors import UsageError
from engine.instruments import Instrument


class NoUrl(WsVenue):
    venue = "no-url"

    def parse(self, msg: Any, ts_local: int) -> list:
        return []


class BooksWithoutRule(NoUrl):
    venue = "books"

    def url(self) -> str:
        return "ws://127.0.0.1:1"


def test_a_venue_without_url_cannot_be_created() -> None:
    with pytest.raises(TypeError, match="url"):
        NoUrl()  # type: ignore[abstract]


async def test_a_venue_that_keeps_books_names_the_missing_rule() -> None:
    venue = BooksWithoutRule()
    inst = Instrument("BTCUSDT", "x", Decimal("0.01"), Decimal("0.001"))
    with pytest.raises(UsageError, match="BooksWithoutRule keeps book 'BTCUSDT' but defines"):
        venue.add_book("BTCUSDT", inst)
    with pytest.raises(UsageError, match="defines no fetch_snapshot"):
        await venue.fetch_snapshot("BTCUSDT")
