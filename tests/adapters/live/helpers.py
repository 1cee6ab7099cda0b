"""Shared by the live adapter tests: a reference book, waiting, a fake clock, and orders
and their events against the sandbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np

from adapters.live.exec_events import ExecEvent, OrderRequest
from adapters.live.sandbox_exec import SandboxVenue
from adapters.live.sandbox_replay import SandboxBook
from engine.events import (
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    SIDE_BUY,
    SIDE_NONE,
)
from engine.instruments import Instrument


class RefBook:
    """Dict-of-levels L2 book in ticks and lots, built from event rows (test reference)."""

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.clears = 0

    def apply(self, rows: np.ndarray) -> None:
        for r in rows:
            kind, side = int(r["kind"]), int(r["side"])
            if kind == KIND_BOOK_CLEAR:
                self.clears += 1
                if side in (SIDE_BUY, SIDE_NONE):
                    self.bids.clear()
                if side != SIDE_BUY:
                    self.asks.clear()
            elif kind in (KIND_BOOK_DELTA, KIND_BOOK_SNAPSHOT):
                book = self.bids if side == SIDE_BUY else self.asks
                price, size = int(r["price"]), int(r["size"])
                if size == 0:
                    book.pop(price, None)
                else:
                    book[price] = size


def sandbox_levels(book: SandboxBook, inst: Instrument) -> tuple[dict[int, int], dict[int, int]]:
    """The sandbox's book in the instrument's ticks and lots."""

    def side(levels: dict[Decimal, tuple[str, str]]) -> dict[int, int]:
        return {inst.price_to_ticks(p): inst.size_to_lots(q) for p, q in levels.values()}

    return side(book.bids), side(book.asks)


async def eventually(cond: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Wait until `cond()` holds (polling every 10 ms); AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or cond}")
        await asyncio.sleep(0.01)


class FakeClock:
    """A monotonic clock that only moves when told to, and a sleep that moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


SYMBOL = "BTCUSDT"
"""The one symbol of the recorded market the execution tests trade."""


def buy(cid: str, price: Decimal, qty: str = "0.001", **kw: Any) -> OrderRequest:
    """A new buy order request on SYMBOL."""
    return OrderRequest("new", cid, SYMBOL, side="buy", price=price, qty=Decimal(qty), **kw)


def sell(cid: str, price: Decimal, qty: str = "0.001", **kw: Any) -> OrderRequest:
    """A new sell order request on SYMBOL."""
    return OrderRequest("new", cid, SYMBOL, side="sell", price=price, qty=Decimal(qty), **kw)


def kinds(events: list[ExecEvent]) -> list[tuple[str, str]]:
    """(kind, client id) of each event."""
    return [(e.kind, e.client_id) for e in events]


def best(sb: SandboxVenue) -> tuple[Decimal, Decimal]:
    """The sandbox's best bid and ask on SYMBOL (both must exist)."""
    bid, ask = sb.matcher.best(SYMBOL)
    assert bid is not None and ask is not None
    return bid, ask
