"""Binance USD-M futures market data against the futures sandbox, on loopback.

The sandbox replays the first messages of the recorded spot BTCUSDT capture converted to
futures frames (ids doubled, so only the `pu` rule can keep the book in sync).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from adapters.live.binance_futures_md import (
    BinanceFuturesMarketData,
    futures_market_data,
    futures_rule,
)
from adapters.live.book_sync import BookSequencer, BookUpdate
from adapters.live.sandbox_futures import SandboxFutures, futures_replay
from adapters.live.sandbox_replay import replay_from_capture
from adapters.live.ws_venue import State, WsConfig
from engine.errors import UsageError
from engine.events import EVENT_DTYPE, FLAG_RESYNC, KIND_BOOK_CLEAR, KIND_QUOTE, KIND_TRADE
from tests.adapters.live.helpers import RefBook, eventually, sandbox_levels

SYMBOL = "BTCUSDT"
N_MESSAGES = 400
SPEED = 20.0
FAST = WsConfig(backoff_initial=0.05, backoff_cap=0.2, request_timeout=1.0, seed=7)


@pytest.fixture(scope="module")
def replay(shared_data: Path):
    path = shared_data / "binance-ws" / "spot_btcusdt_20240808.gz"
    return futures_replay(replay_from_capture(path, max_messages=N_MESSAGES))


class Feed:
    def __init__(self, sandbox: SandboxFutures) -> None:
        self.sandbox = sandbox
        self.book = RefBook()
        self.chunks: list[np.ndarray] = []
        self.public, self.market = futures_market_data(
            [SYMBOL],
            ws_url=sandbox.ws_url,
            rest_url=sandbox.rest_url,
            on_events=self._on_events,
            config=FAST,
        )

    def _on_events(self, rows: np.ndarray) -> None:
        self.chunks.append(rows)
        self.book.apply(rows)

    @property
    def rows(self) -> np.ndarray:
        return np.concatenate(self.chunks)

    def caught_up(self) -> bool:
        seq = self.public.sequencer(SYMBOL)
        return seq.state != 0 and seq.book_id == self.sandbox.book(SYMBOL).update_id

    async def run(self) -> tuple:
        async with self.public, self.market:
            await asyncio.wait_for(self.sandbox.replay_done.wait(), 10)
            await eventually(self.caught_up, 10, "the client to reach the sandbox's book")
            n_trades = sum(1 for m in self.sandbox.replay.messages if m.channel == "trade")
            await eventually(lambda: (self.rows["kind"] == KIND_TRADE).sum() >= n_trades, 5)
            return self.public.status(), self.market.status()

    def assert_books_equal(self, top: int = 900) -> None:
        """The best `top` levels a side agree (a futures snapshot holds 1000 levels at
        most: beyond them the local book is incomplete, as any client's)."""
        _, inst = self.public.instrument_of(SYMBOL)
        bids, asks = sandbox_levels(self.sandbox.book(SYMBOL), inst)

        def best(side: dict[int, int], reverse: bool) -> list[tuple[int, int]]:
            return [(p, side[p]) for p in sorted(side, reverse=reverse)[:top]]

        assert best(self.book.bids, True) == best(bids, True)
        assert best(self.book.asks, False) == best(asks, False)
        assert len(bids) >= top and len(asks) >= top


def _upd(first: int, last: int, pu: int | None) -> BookUpdate:
    return BookUpdate(SYMBOL, False, first, last, pu, np.zeros(0, EVENT_DTYPE), 0, 0)


def test_the_futures_rule_in_the_sequencer():
    seq = BookSequencer(futures_rule)
    assert seq.on_update(_upd(90, 95, 89))[0] == 3  # buffered before the snapshot
    assert seq.on_snapshot(100) and seq.state == 1
    assert seq.on_update(_upd(96, 99, 95))[0] == 0  # u < lastUpdateId: stale
    assert seq.on_update(_upd(97, 100, 99))[0] == 1  # U <= lastUpdateId <= u (u == id)
    assert seq.on_update(_upd(150, 160, 100))[0] == 1  # pu == previous u; U jumps: fine
    verdict, why = seq.on_update(_upd(161, 170, 158))
    assert verdict == 2 and "pu=158" in why and seq.state == 0
    seq.on_snapshot(165)
    verdict, why = seq.on_update(_upd(166, 170, 165))  # bridging U=166 > 165: gap
    assert verdict == 2 and "U <= lastUpdateId" in why


def test_streams_must_be_on_their_route():
    with pytest.raises(UsageError, match="not served on /market"):
        BinanceFuturesMarketData([SYMBOL], route="market", streams=["depth@100ms"])
    with pytest.raises(UsageError, match="depth limit"):
        BinanceFuturesMarketData([SYMBOL], depth_limit=5000)


async def test_book_equals_the_sandbox_book_over_the_split_routes(replay):
    async with SandboxFutures(replay, speed=SPEED) as sb:
        feed = Feed(sb)
        pub, mkt = await feed.run()
        feed.assert_books_equal()
    assert pub.state is State.SUBSCRIBED and pub.books == ((SYMBOL, "synced"),)
    assert mkt.books == () and mkt.bad_frames == 0 and mkt.unknown_messages == 0
    assert (pub.gaps, pub.resyncs, pub.bad_frames, pub.unknown_fields) == (0, 1, 0, 0)
    seq = feed.public.sequencer(SYMBOL)
    diffs = sum(1 for m in replay.messages if m.channel == "depth")
    assert seq.applied + seq.stale == diffs and seq.applied >= 10
    rows = feed.rows
    tickers = sum(1 for m in replay.messages if m.channel == "bookTicker")
    trades = sum(1 for m in replay.messages if m.channel == "trade")
    assert (rows["kind"] == KIND_QUOTE).sum() == 2 * tickers
    assert (rows["kind"] == KIND_TRADE).sum() == trades
    assert feed.public.instruments[0].kind == "perpetual"
    assert feed.public.instruments[0].venue == "binance-futures"


async def test_a_broken_pu_chain_resyncs(replay):
    async with SandboxFutures(replay, speed=SPEED, faults="drop_diff=12") as sb:
        feed = Feed(sb)
        pub, _ = await feed.run()
        feed.assert_books_equal()
    assert sb.diffs_dropped == 1
    assert pub.gaps == 1 and pub.resyncs == 2 and pub.reconnects == 0
    assert "pu=" in feed.public.sequencer(SYMBOL).last_gap
    resync = feed.rows[(feed.rows["flags"] & FLAG_RESYNC) != 0]
    assert len(resync) == 1 and resync["kind"][0] == KIND_BOOK_CLEAR


async def test_a_duplicated_diff_is_a_repeat(replay):
    async with SandboxFutures(replay, speed=SPEED, faults="dup_diff=12") as sb:
        feed = Feed(sb)
        pub, _ = await feed.run()
        feed.assert_books_equal()
    assert pub.gaps == 0 and feed.public.sequencer(SYMBOL).repeats == 1
