"""Binance spot market data client against the sandbox venue, on loopback.

The sandbox replays the first messages of the recorded spot BTCUSDT capture (or a synthetic
stream) and the client must end with the sandbox's book, whatever faults were injected.
"""

from __future__ import annotations

import asyncio
import random
import socket
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from adapters.live.backoff import Backoff
from adapters.live.binance_spot_md import BinanceSpotMarketData
from adapters.live.correlation import Outcome
from adapters.live.rate_limit import RateLimiter
from adapters.live.sandbox_md import SandboxMarketData
from adapters.live.sandbox_replay import replay_from_capture, replay_from_events
from adapters.live.ws_venue import State, WsConfig
from engine.data.stream import EventStream
from engine.events import (
    EVENT_DTYPE,
    FLAG_EXCH_TS_MISSING,
    FLAG_LAST,
    FLAG_RESYNC,
    FLAG_SNAPSHOT,
    KIND_BOOK_CLEAR,
    KIND_BOOK_DELTA,
    KIND_BOOK_SNAPSHOT,
    KIND_QUOTE,
    KIND_TRADE,
    SIDE_BUY,
    SIDE_NONE,
    SIDE_SELL,
)
from engine.instruments import Instrument, InstrumentRegistry
from tests.adapters.live.helpers import FakeClock, RefBook, eventually, sandbox_levels

SYMBOL = "BTCUSDT"
N_MESSAGES = 400  # about 3.5 s of the capture: 30-odd depth diffs, trades and tickers
SPEED = 20.0  # the replay takes about 0.2 s
FAST = WsConfig(backoff_initial=0.05, backoff_cap=0.2, request_timeout=1.0, seed=7)


@pytest.fixture(scope="module")
def capture_replay(shared_data: Path):
    path = shared_data / "binance-ws" / "spot_btcusdt_20240808.gz"
    return replay_from_capture(path, max_messages=N_MESSAGES)


class Feed:
    """A client on a sandbox, its emitted rows applied to a reference book."""

    def __init__(
        self,
        sandbox: SandboxMarketData,
        config: WsConfig = FAST,
        symbol: str = SYMBOL,
        **kwargs,
    ) -> None:
        self.sandbox = sandbox
        self.symbol = symbol
        self.book = RefBook()
        self.chunks: list[np.ndarray] = []
        self.client = BinanceSpotMarketData(
            [symbol],
            ws_url=sandbox.ws_url,
            rest_url=sandbox.rest_url,
            depth_limit=5000,
            on_events=self._on_events,
            config=config,
            **kwargs,
        )

    def _on_events(self, rows: np.ndarray) -> None:
        self.chunks.append(rows)
        self.book.apply(rows)

    @property
    def rows(self) -> np.ndarray:
        return np.concatenate(self.chunks)

    def caught_up(self) -> bool:
        seq = self.client.sequencer(self.symbol)
        return seq.state != 0 and seq.book_id == self.sandbox.book(self.symbol).update_id

    async def run_to_end(self, timeout: float = 10.0) -> None:
        """Wait for the replay's end and for the client to reach the sandbox's book id."""
        await asyncio.wait_for(self.sandbox.replay_done.wait(), timeout)
        await eventually(self.caught_up, timeout, "the client to reach the sandbox's book")

    def assert_books_equal(self, min_levels: int = 500) -> None:
        _, inst = self.client.instrument_of(self.symbol)
        bids, asks = sandbox_levels(self.sandbox.book(self.symbol), inst)
        assert self.book.bids == bids
        assert self.book.asks == asks
        assert len(bids) >= min_levels and len(asks) >= min_levels


async def test_book_equals_the_sandbox_book_after_the_replay(capture_replay):
    async with SandboxMarketData(capture_replay, speed=SPEED) as sb:
        feed = Feed(sb)
        async with feed.client as client:
            await feed.run_to_end()
            st = client.status()
        feed.assert_books_equal()
    assert st.state is State.SUBSCRIBED and st.books == ((SYMBOL, "synced"),)
    assert (st.gaps, st.reconnects, st.bad_frames, st.unknown_messages) == (0, 0, 0, 0)
    assert st.resyncs == 1 and st.last_message_age is not None
    seq = client.sequencer(SYMBOL)
    diffs = sum(1 for m in capture_replay.messages if m.channel == "depth")
    assert sb.ws_connections == 1 and sb.diffs_sent == diffs
    # Diffs the snapshot already held were dropped; every later one was applied.
    assert seq.applied + seq.stale == diffs and seq.applied >= 10 and seq.repeats == 0
    rows = feed.rows
    # The snapshot comes first: a clear, then levels, all FLAG_SNAPSHOT (no exchange time).
    first_clear = np.flatnonzero(rows["kind"] == KIND_BOOK_CLEAR)[0]
    assert rows["flags"][first_clear] & FLAG_SNAPSHOT
    snap = rows[rows["kind"] == KIND_BOOK_SNAPSHOT]
    assert (snap["flags"] & FLAG_EXCH_TS_MISSING).all() and len(snap) > 1000
    assert (np.diff(rows["ts_local"]) >= 0).all()
    assert (rows["flags"][-1] & FLAG_LAST) and not (rows["flags"] & FLAG_RESYNC).any()
    trades = [m for m in capture_replay.messages if m.channel == "trade"]
    tickers = [m for m in capture_replay.messages if m.channel == "bookTicker"]
    assert (rows["kind"] == KIND_TRADE).sum() == len(trades)
    assert (rows["kind"] == KIND_QUOTE).sum() == 2 * len(tickers)
    assert client.instruments[0].tick_size == capture_replay.specs[SYMBOL].tick_size


async def test_a_dropped_diff_is_a_gap_then_the_book_is_rebuilt(capture_replay):
    async with SandboxMarketData(capture_replay, speed=SPEED, faults="drop_diff=12") as sb:
        feed = Feed(sb)
        async with feed.client as client:
            await feed.run_to_end()
            st = client.status()
        feed.assert_books_equal()
    assert sb.diffs_dropped == 1
    assert st.gaps == 1 and st.resyncs == 2 and st.reconnects == 0
    resync = feed.rows[(feed.rows["flags"] & FLAG_RESYNC) != 0]
    assert len(resync) == 1 and resync["kind"][0] == KIND_BOOK_CLEAR
    assert sb.rest_requests == 3  # exchangeInfo, the first snapshot, the resync snapshot


async def test_a_duplicated_diff_is_ignored(capture_replay):
    async with SandboxMarketData(capture_replay, speed=SPEED, faults="dup_diff=12") as sb:
        feed = Feed(sb)
        async with feed.client as client:
            await feed.run_to_end()
            st = client.status()
        feed.assert_books_equal()
    assert sb.diffs_duplicated == 1
    assert st.gaps == 0 and st.resyncs == 1
    assert client.sequencer(SYMBOL).repeats == 1


async def test_a_killed_socket_reconnects_resubscribes_and_rebuilds(capture_replay):
    async with SandboxMarketData(capture_replay, speed=SPEED, faults="kill_socket_after=150") as sb:
        feed = Feed(sb)
        async with feed.client as client:
            await feed.run_to_end()
            st = client.status()
        feed.assert_books_equal()
    assert sb.sockets_killed == 1 and sb.ws_connections == 2
    assert st.reconnects == 1 and st.rotations == 0 and st.state is State.SUBSCRIBED
    assert st.resyncs == 2  # the first build and the one after reconnecting
    # The lost connection dropped the book for consumers (a clear with FLAG_RESYNC).
    resync = feed.rows[(feed.rows["flags"] & FLAG_RESYNC) != 0]
    assert len(resync) == 1 and resync["kind"][0] == KIND_BOOK_CLEAR


async def test_malformed_frames_are_counted_not_fatal(capture_replay):
    faults = "bad_frame=50,bad_shape=60,bad_frame=70"
    async with SandboxMarketData(capture_replay, speed=SPEED, faults=faults) as sb:
        feed = Feed(sb)
        async with feed.client as client:
            await feed.run_to_end()
            st = client.status()
        feed.assert_books_equal()
    assert sb.bad_frames_sent == 3
    assert st.bad_frames == 3 and st.reconnects == 0 and st.gaps == 0


async def test_server_shutdown_rotates_without_losing_the_book(capture_replay):
    config = WsConfig(backoff_initial=0.05, rotation_overlap=0.05, seed=7)
    faults = "server_shutdown_after=150"
    async with SandboxMarketData(capture_replay, speed=SPEED, faults=faults) as sb:
        feed = Feed(sb, config)
        async with feed.client as client:
            await feed.run_to_end()
            await eventually(lambda: client.status().rotations == 1, what="the rotation")
            st = client.status()
        feed.assert_books_equal()
    assert sb.shutdowns_sent == 1 and sb.ws_connections == 2
    assert client.shutdown_notices == 1
    assert (st.rotations, st.reconnects, st.gaps, st.resyncs) == (1, 0, 0, 1)
    assert not (feed.rows["flags"] & FLAG_RESYNC).any()


class RotationGate(SandboxMarketData):
    """The sandbox, holding its replay at message `i` until the client has rotated
    `hold[i]` times: there is data before and after each rotation however slow the machine
    is (unheld, two rotations within a replay of fixed length are a bet on timing).
    Unloaded, the rotations come first and nothing is held."""

    def __init__(self, *args, hold: dict[int, int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.hold = hold
        self.client: BinanceSpotMarketData | None = None
        self.held = 0

    async def on_message(self, i: int, m) -> None:
        need = self.hold.get(i)
        if need is not None and self.client is not None and self.client.rotations < need:
            self.held += 1
            await eventually(lambda: self.client.rotations >= need, 30.0, f"rotation {need}")


async def test_planned_rotation_at_a_configured_age(capture_replay):
    # Rotations 0.25 s apart leave a quiet moment after each even on a loaded machine
    # (at 0.08 s a slow rotation ran into the next). At x1 the replay lasts 1.5 s and
    # messages 250 and 350 go out at 0.6 and 0.9 s: after the rotations, unless held.
    config = WsConfig(rotate_after=0.25, rotation_overlap=0.02, seed=7)
    hold = {250: 1, 350: 2}
    async with RotationGate(capture_replay, speed=1.0, hold=hold) as sb:
        feed = Feed(sb, config)
        sb.client = feed.client
        async with feed.client as client:
            await feed.run_to_end(timeout=30.0)
            # The books before the client stops (its stop drops them, a race with the end
            # of this block); and the stop right after a rotation, when no connection is
            # opening: one opening at the stop is counted by the sandbox, not the client.
            feed.assert_books_equal()
            rotated = client.rotations
            await eventually(lambda: client.rotations > rotated, 5.0, "the next rotation")
            st = client.status()
    assert st.rotations >= 2 and st.reconnects == 0 and st.gaps == 0 and st.resyncs == 1
    # Every connection is the first or a rotation's.
    assert sb.ws_connections == client.connections_opened
    assert client.connections_opened - 1 - st.rotations in (0, 1)
    assert (np.diff(feed.rows["ts_local"]) >= 0).all()


async def test_an_unanswered_subscription_is_unknown_and_data_confirms_it(capture_replay):
    async with SandboxMarketData(capture_replay, speed=SPEED, faults="no_reply=1") as sb:
        feed = Feed(sb, WsConfig(request_timeout=0.1, seed=7))
        async with feed.client as client:
            await feed.run_to_end()
            st = client.status()
        feed.assert_books_equal()
    assert st.requests_unknown == 1 and st.state is State.SUBSCRIBED


async def test_request_correlation_with_a_timeout_gives_unknown(capture_replay):
    # Request 1 is the SUBSCRIBE, request 2 goes unanswered, request 3 is answered.
    async with SandboxMarketData(capture_replay, faults="no_reply=2", autostart=False) as sb:
        feed = Feed(sb)
        async with feed.client as client:
            await eventually(lambda: client.state is State.SUBSCRIBED, what="subscribed")
            lost = await client.request({"method": "LIST_SUBSCRIPTIONS"}, timeout=0.1)
            ok = await client.request({"method": "LIST_SUBSCRIPTIONS"}, timeout=1.0)
            refused = await client.request({"method": "NO_SUCH_METHOD"}, timeout=1.0)
        st = client.status()
    assert lost.outcome is Outcome.UNKNOWN and "no reply" in lost.reason
    assert ok.outcome is Outcome.OK and "btcusdt@depth@100ms" in ok.result
    assert refused.outcome is Outcome.ERROR and refused.error["code"] == 2
    assert st.requests_unknown == 1
    assert sb.control_requests == 4  # nothing was resent


async def test_rest_429_pauses_the_limiter_for_retry_after(capture_replay):
    clock = FakeClock()
    faults = "http_429=2,retry_after=3"
    async with SandboxMarketData(capture_replay, speed=SPEED, faults=faults) as sb:
        feed = Feed(sb)
        # Instruments come from exchangeInfo: the first two attempts are answered 429.
        feed.client.rest.limiter = RateLimiter(clock=clock, sleep=clock.sleep)
        await feed.client.load_instruments()
        assert clock.sleeps == [3.0, 3.0] and feed.client.rest.throttled == 2
        async with feed.client:
            await feed.run_to_end()
        feed.assert_books_equal()
    assert sb.throttled == 2


async def test_signed_requests_carry_the_signers_signature(capture_replay):
    class Signer:
        def __init__(self) -> None:
            self.payloads: list[str] = []

        def sign(self, payload: str) -> str:
            self.payloads.append(payload)
            return "sig-" + str(len(payload))

    signer = Signer()
    async with SandboxMarketData(capture_replay, autostart=False) as sb:
        feed = Feed(sb, signer=signer)
        req = feed.client.sign_request({"method": "x", "params": {"b": 2, "a": 1}, "id": 5})
    assert signer.payloads == ["a=1&b=2"]
    assert req == {"method": "x", "params": {"b": 2, "a": 1, "signature": "sig-7"}, "id": 5}


async def test_reconnection_delays_follow_the_backoff_law():
    # A port that refuses connections: bind, read the port, close.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    tried = asyncio.Event()

    async def record(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 5:
            tried.set()
        await asyncio.sleep(0)

    inst = Instrument(SYMBOL, "binance", "0.01", "0.00001")
    config = WsConfig(backoff_initial=0.5, backoff_factor=2.0, backoff_cap=3.0, seed=11)
    client = BinanceSpotMarketData(
        [SYMBOL],
        ws_url=f"ws://127.0.0.1:{port}",
        rest_url=f"http://127.0.0.1:{port}",
        instruments={SYMBOL: inst},
        config=config,
        sleep=record,
    )
    await client.start()
    await asyncio.wait_for(tried.wait(), 5.0)
    await client.stop()
    expected = Backoff(0.5, 2.0, 3.0, rng=random.Random(11))
    assert sleeps[:5] == [expected.next_delay() for _ in range(5)]
    assert client.status().connect_failures >= 5 and client.state is State.CLOSED


def _event_stream() -> EventStream:
    """A small stream: snapshot, trade + deltas + quote, a later snapshot, more deltas."""
    inst = Instrument("ABCUSDT", "demo", "0.5", "0.01")
    rows = []

    def row(t, kind, side, price, size, flags=0):
        rows.append((t, t + 1000, price, size, 0, kind, side, flags))

    t = 1_700_000_000_000_000_000
    row(t, KIND_BOOK_CLEAR, SIDE_NONE, 0, 0, FLAG_SNAPSHOT)
    for k in range(5):
        row(t, KIND_BOOK_SNAPSHOT, SIDE_BUY, 200 - k, 100 + k, FLAG_SNAPSHOT)
        last = FLAG_LAST if k == 4 else 0
        row(t, KIND_BOOK_SNAPSHOT, SIDE_SELL, 201 + k, 100 + k, FLAG_SNAPSHOT | last)
    for i in range(1, 60):
        t += 1_000_000
        row(t, KIND_TRADE, SIDE_SELL, 200, 5)
        row(t, KIND_BOOK_DELTA, SIDE_BUY, 200, 95 + i % 7)
        row(t, KIND_BOOK_DELTA, SIDE_SELL, 206 + i % 3, i)
        row(t, KIND_QUOTE, SIDE_BUY, 200, 95 + i % 7)
        row(t, KIND_QUOTE, SIDE_SELL, 201, 100, FLAG_LAST)
        if i == 30:  # the source resynchronised: a new snapshot with other levels
            row(t, KIND_BOOK_CLEAR, SIDE_NONE, 0, 0, FLAG_SNAPSHOT)
            row(t, KIND_BOOK_SNAPSHOT, SIDE_BUY, 199, 7, FLAG_SNAPSHOT)
            row(t, KIND_BOOK_SNAPSHOT, SIDE_SELL, 202, 9, FLAG_SNAPSHOT | FLAG_LAST)
    events = np.array(rows, dtype=EVENT_DTYPE)
    registry = InstrumentRegistry()
    registry.add(inst)
    return EventStream(events, registry)


async def test_replay_of_an_event_stream():
    stream = _event_stream()
    replay = replay_from_events(stream)
    sym = "ABCUSDT"
    assert replay.books[sym].update_id == 1000
    async with SandboxMarketData(replay, speed=50.0) as sb:
        feed = Feed(sb, symbol=sym)
        async with feed.client as client:
            await feed.run_to_end()
            st = client.status()
        feed.assert_books_equal(min_levels=2)
        _, inst = client.instrument_of(sym)
    assert inst.tick_size == Decimal("0.5") and inst.lot_size == Decimal("0.01")
    assert st.gaps == 0 and (feed.rows["kind"] == KIND_TRADE).sum() == 59
    # The source's second snapshot reached the client as an ordinary diff.
    assert feed.book.bids[199] == 7 and feed.book.asks[202] == 9
