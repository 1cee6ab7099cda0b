"""What the sandbox venue replays: a market timeline of Binance spot messages and its books.

Two sources: a Binance WebSocket capture (the recorded files of ../shared/data/binance-ws,
starting at their REST snapshot line) or any event stream (EVENT_DTYPE rows with their
instruments), turned into the messages Binance would have sent. `SandboxBook` is the
venue's own book of a symbol, as decimal text by price with its update id: the server
applies each diff to it as it broadcasts, and answers depth requests from it.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

import numpy as np
import orjson
import pyarrow as pa

from engine.data.stream import EventStream
from engine.errors import DataError
from engine.events import (
    FLAG_LAST,
    FLAG_SNAPSHOT,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    KIND_QUOTE,
    KIND_TRADE,
    SIDE_BUY,
    SIDE_SELL,
)
from engine.instruments import infer_step

MS: Final = 1_000_000
CHANNELS: Final = ("depth", "trade", "bookTicker")
"""The streams a symbol has in the sandbox."""
_QUOTES: Final = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


# -- the book -------------------------------------------------------------------------------


class SandboxBook:
    """One symbol's book as the venue holds it: decimal text by price, and its update id."""

    def __init__(
        self,
        update_id: int,
        bids: Iterable[Sequence[str]] = (),
        asks: Iterable[Sequence[str]] = (),
    ) -> None:
        self.update_id = update_id
        self.bids: dict[Decimal, tuple[str, str]] = {}
        self.asks: dict[Decimal, tuple[str, str]] = {}
        self._set(self.bids, bids)
        self._set(self.asks, asks)

    @staticmethod
    def _set(side: dict[Decimal, tuple[str, str]], levels: Iterable[Sequence[str]]) -> None:
        for price, qty in levels:
            key = Decimal(price)
            if Decimal(qty) == 0:
                side.pop(key, None)
            else:
                side[key] = (price, qty)

    def apply(self, diff: dict) -> None:
        """Apply a depthUpdate's levels (absolute sizes, zero removes) and take its `u`."""
        self._set(self.bids, diff["b"])
        self._set(self.asks, diff["a"])
        self.update_id = diff["u"]

    def depth(self, limit: int) -> dict:
        """The REST depth answer: best `limit` levels a side, best first."""
        bids = sorted(self.bids, reverse=True)[:limit]
        asks = sorted(self.asks)[:limit]
        return {
            "lastUpdateId": self.update_id,
            "bids": [list(self.bids[p]) for p in bids],
            "asks": [list(self.asks[p]) for p in asks],
        }

    def copy(self) -> SandboxBook:
        """An independent copy."""
        other = SandboxBook(self.update_id)
        other.bids = dict(self.bids)
        other.asks = dict(self.asks)
        return other


@dataclass(frozen=True)
class SymbolSpec:
    """What exchangeInfo says about one symbol."""

    symbol: str
    tick_size: Decimal
    step_size: Decimal
    min_notional: Decimal = Decimal("5")
    base: str = ""
    quote: str = ""

    def info(self) -> dict:
        """The exchangeInfo `symbols` entry."""
        base, quote = self.base, self.quote
        if not base:
            quote = next((q for q in _QUOTES if self.symbol.endswith(q)), self.symbol[-4:])
            base = self.symbol[: -len(quote)]
        return {
            "symbol": self.symbol,
            "status": "TRADING",
            "baseAsset": base,
            "quoteAsset": quote,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": _fmt(self.tick_size),
                    "maxPrice": "1000000.00000000",
                    "tickSize": _fmt(self.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": _fmt(self.step_size),
                    "maxQty": "9000.00000000",
                    "stepSize": _fmt(self.step_size),
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": _fmt(self.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
        }


def _fmt(value: Decimal) -> str:
    """Binance prints filter values with 8 decimals."""
    exp = value.normalize().as_tuple().exponent
    return f"{value:.8f}" if isinstance(exp, int) and exp >= -8 else str(value)


@dataclass
class ReplayMessage:
    """One stream message of the timeline."""

    ts: int
    """Recorded receive time, ns (paces the replay)."""
    symbol: str
    channel: str
    """`depth`, `trade` or `bookTicker`."""
    data: dict


@dataclass
class Replay:
    """A market timeline: the symbols, their books at the start, and the messages."""

    specs: dict[str, SymbolSpec]
    books: dict[str, SandboxBook]
    messages: list[ReplayMessage] = field(default_factory=list)


def replay_from_capture(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    max_messages: int | None = None,
    tick_size: Decimal | str | None = None,
    step_size: Decimal | str | None = None,
) -> Replay:
    """The timeline of a Binance spot capture, starting at its REST snapshot line.

    Diffs received before the snapshot line that it does not hold (`u > lastUpdateId`) come
    first, then the lines after it; earlier trades and tickers are skipped, so are diffs the
    book already holds. Later snapshot lines are ignored (the sandbox's book is the venue's).
    Tick and step are inferred from the replayed text (the finest decimal step) unless given.

    Raises:
        DataError: no snapshot line, a malformed line, a second symbol.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    book: SandboxBook | None = None
    symbol: str | None = None
    messages: list[ReplayMessage] = []
    before: list[ReplayMessage] = []
    prices: list[str] = []
    sizes: list[str] = []
    for path in paths:
        name = str(path)
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            for lineno, line in enumerate(f, 1):
                if max_messages is not None and len(messages) >= max_messages:
                    break
                sp = line.find(b" ")
                try:
                    ts = int(line[:sp])
                    msg = orjson.loads(line[sp + 1 :])
                except (ValueError, orjson.JSONDecodeError) as exc:
                    raise DataError(
                        f"unreadable capture line: {exc}", path=name, line=lineno
                    ) from None
                if "lastUpdateId" in msg:
                    if book is None:
                        book = SandboxBook(msg["lastUpdateId"], msg["bids"], msg["asks"])
                        for side in (msg["bids"], msg["asks"]):
                            for p, q in side:
                                prices.append(p)
                                sizes.append(q)
                        # Diffs received before the snapshot that it does not hold yet are
                        # the venue's next messages (the first one bridges the snapshot).
                        for early in before:
                            if early.data["u"] > book.update_id:
                                early.ts = ts
                                messages.append(early)
                                for p, q in (*early.data["b"], *early.data["a"]):
                                    prices.append(p)
                                    sizes.append(q)
                    continue
                if "stream" not in msg:
                    continue
                channel = msg["stream"].split("@")[1]
                if channel not in CHANNELS:
                    continue
                data = msg["data"]
                if book is None:
                    if channel == "depth":
                        before.append(ReplayMessage(ts, data["s"], channel, data))
                    continue
                if symbol is None:
                    symbol = data["s"]
                elif data["s"] != symbol:
                    raise DataError(f"second symbol {data['s']}", path=name, line=lineno)
                if channel == "depth":
                    if data["u"] <= book.update_id:
                        continue
                    for side in (data["b"], data["a"]):
                        for p, q in side:
                            prices.append(p)
                            sizes.append(q)
                elif channel == "trade":
                    prices.append(data["p"])
                    sizes.append(data["q"])
                else:
                    prices.extend((data["b"], data["a"]))
                    sizes.extend((data["B"], data["A"]))
                messages.append(ReplayMessage(ts, data["s"], channel, data))
    if book is None or symbol is None:
        raise DataError("no REST snapshot line and stream message: cannot replay", path=str(paths))
    spec = SymbolSpec(
        symbol,
        Decimal(str(tick_size)) if tick_size is not None else infer_step(pa.array(prices)),
        Decimal(str(step_size)) if step_size is not None else infer_step(pa.array(sizes)),
    )
    return Replay({symbol: spec}, {symbol: book}, messages)


def replay_from_events(stream: EventStream, *, first_update_id: int = 1000) -> Replay:
    """The timeline of an event stream, as Binance would have sent it.

    Each instrument's first snapshot is its starting book; every later message becomes
    Binance messages: its delta rows one depthUpdate (`U..u` spanning one id per level),
    each trade a trade, a quote pair a bookTicker, and a later snapshot the depthUpdate
    that turns the current book into it. Rows before an instrument's first snapshot and
    lone resync clears are skipped. Times: `ts_local` paces, `ts_exch` becomes `E`/`T`.
    """
    ev = stream.events
    ends = np.flatnonzero(ev["flags"] & FLAG_LAST)
    specs: dict[str, SymbolSpec] = {}
    start_books: dict[str, SandboxBook] = {}
    books: dict[str, SandboxBook] = {}
    trade_ids: dict[str, int] = {}
    messages: list[ReplayMessage] = []
    start = 0
    for end in ends:
        msg = ev[start : end + 1]
        start = end + 1
        inst = stream.instruments[int(msg["instrument"][0])]
        sym = inst.symbol
        if sym not in specs:
            specs[sym] = SymbolSpec(sym, inst.tick_size, inst.lot_size)
        fp, fs = inst.format_price, inst.format_size
        kinds = msg["kind"]
        ts = int(msg["ts_local"][-1])
        e_ms = int(msg["ts_exch"][-1]) // MS
        book = books.get(sym)
        if ((kinds == KIND_BOOK_CLEAR) & ((msg["flags"] & FLAG_SNAPSHOT) != 0)).any():
            rows = msg[kinds == KIND_BOOK_SNAPSHOT]
            new_b = {fp(r["price"]): fs(r["size"]) for r in rows if r["side"] == SIDE_BUY}
            new_a = {fp(r["price"]): fs(r["size"]) for r in rows if r["side"] == SIDE_SELL}
            if book is None:
                books[sym] = SandboxBook(first_update_id, new_b.items(), new_a.items())
                start_books[sym] = books[sym].copy()
                continue
            b = _changes({v[0]: v[1] for v in book.bids.values()}, new_b)
            a = _changes({v[0]: v[1] for v in book.asks.values()}, new_a)
            if b or a:
                messages.append(_depth_message(book, sym, ts, e_ms, b, a))
            continue
        if book is None:
            continue
        for r in msg[kinds == KIND_TRADE]:
            tid = trade_ids.get(sym, 0) + 1
            trade_ids[sym] = tid
            t_ms = int(r["ts_exch"]) // MS
            data = {
                "e": "trade",
                "E": t_ms,
                "s": sym,
                "t": tid,
                "p": fp(r["price"]),
                "q": fs(r["size"]),
                "T": t_ms,
                "m": bool(r["side"] == SIDE_SELL),
                "M": True,
            }
            messages.append(ReplayMessage(ts, sym, "trade", data))
        deltas = msg[kinds == KIND_BOOK_DELTA]
        if len(deltas):
            b = [[fp(r["price"]), fs(r["size"])] for r in deltas if r["side"] == SIDE_BUY]
            a = [[fp(r["price"]), fs(r["size"])] for r in deltas if r["side"] == SIDE_SELL]
            messages.append(_depth_message(book, sym, ts, e_ms, b, a))
        quote = msg[kinds == KIND_QUOTE]
        if len(quote) == 2:
            bid, ask = quote[np.argsort(-quote["side"])]  # SIDE_BUY (1) first
            data = {
                "u": book.update_id,
                "s": sym,
                "b": fp(bid["price"]),
                "B": fs(bid["size"]),
                "a": fp(ask["price"]),
                "A": fs(ask["size"]),
            }
            messages.append(ReplayMessage(ts, sym, "bookTicker", data))
    if not start_books:
        raise DataError("the stream has no book snapshot to start the sandbox from")
    return Replay(specs, start_books, messages)


def _changes(old: dict[str, str], new: dict[str, str]) -> list[list[str]]:
    out = [[p, q] for p, q in new.items() if old.get(p) != q]
    out += [[p, "0"] for p in old if p not in new]
    return out


def _depth_message(
    book: SandboxBook, sym: str, ts: int, e_ms: int, bids: list, asks: list
) -> ReplayMessage:
    """A depthUpdate continuing `book` (which it is applied to, for the next one)."""
    first = book.update_id + 1
    data = {
        "e": "depthUpdate",
        "E": e_ms,
        "s": sym,
        "U": first,
        "u": first + max(len(bids) + len(asks), 1) - 1,
        "b": bids,
        "a": asks,
    }
    book.apply(data)
    return ReplayMessage(ts, sym, "depth", data)
