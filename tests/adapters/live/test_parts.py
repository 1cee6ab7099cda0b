"""The parts of a live venue, without sockets: backoff, budgets, limits, correlation, books."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import numpy as np
import pytest

from adapters._sequence import DIFF_APPLY, DIFF_GAP, DIFF_STALE
from adapters.binance_ws import depth_diff_verdict
from adapters.live.backoff import AttemptBudget, Backoff
from adapters.live.binance_spot_md import depth_weight, parse_exchange_info
from adapters.live.book_sync import DIFF_BUFFERED, DIFF_REPEAT, BookSequencer, BookUpdate, SyncState
from adapters.live.correlation import Outcome, PendingRequests, Reply
from adapters.live.http import HttpResponse, RestClient, parse_retry_after
from adapters.live.rate_limit import Limit, RateLimiter, limits_from_binance
from adapters.live.sandbox_md import RATE_LIMITS, Faults
from adapters.live.sandbox_replay import SandboxBook, SymbolSpec
from engine.errors import DataError, UsageError
from engine.events import EVENT_DTYPE
from tests.adapters.live.helpers import FakeClock

# -- backoff --------------------------------------------------------------------------------


def test_backoff_is_full_jitter_under_an_exponential_ceiling_with_a_cap():
    b = Backoff(initial=0.5, factor=2.0, cap=4.0, rng=random.Random(42))
    delays = [b.next_delay() for _ in range(7)]
    # The law, drawn from the same seed: uniform(0, min(cap, initial * factor**n)).
    ref = random.Random(42)
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert delays == [ref.uniform(0.0, c) for c in ceilings]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    b.reset()
    assert b.attempt == 0 and b.ceiling(0) == 0.5 and b.ceiling(10_000) == 4.0


def test_backoff_rejects_nonsense():
    with pytest.raises(UsageError):
        Backoff(initial=0, cap=1)
    with pytest.raises(UsageError):
        Backoff(initial=2, cap=1)


def test_attempt_budget_waits_for_the_oldest_attempt_to_leave_the_window():
    clock = FakeClock()
    budget = AttemptBudget(3, 10.0, clock=clock)
    for _ in range(3):
        assert budget.wait_time() == 0
        budget.record()
        clock.now += 1.0
    assert budget.wait_time() == pytest.approx(7.0)  # first attempt at t0, now t0 + 3
    clock.now += 7.0
    assert budget.wait_time() == 0 and budget.used() == 2


# -- rate limits ----------------------------------------------------------------------------


async def test_sliding_window_never_exceeds_the_limit_in_any_window():
    clock = FakeClock()
    lim = RateLimiter([Limit("REQUEST_WEIGHT", 10, 60.0)], clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(6):
        await lim.acquire({"REQUEST_WEIGHT": 4})
        times.append(clock.now)
    # 4 + 4 fit at once; the third waits a full window after the first, and so on.
    assert times == [1000.0, 1000.0, 1060.0, 1060.0, 1120.0, 1120.0]
    assert lim.waits == 2
    with pytest.raises(UsageError):
        await lim.acquire({"REQUEST_WEIGHT": 11})


async def test_a_429_with_retry_after_pauses_every_caller():
    clock = FakeClock()
    lim = RateLimiter([Limit("REQUEST_WEIGHT", 6000, 60.0)], clock=clock, sleep=clock.sleep)
    assert lim.on_http_status(429, 7.0) == 7.0
    assert lim.paused_for() == 7.0
    await lim.acquire({"REQUEST_WEIGHT": 1})
    assert clock.sleeps == [7.0] and lim.pauses == 1
    assert lim.on_http_status(418, None) == 120.0  # a ban without Retry-After: the default
    assert lim.on_http_status(500, 3.0) is None


def test_venue_reported_usage_raises_our_count():
    clock = FakeClock()
    lim = RateLimiter([Limit("REQUEST_WEIGHT", 100, 60.0)], clock=clock)
    lim.observe_used("REQUEST_WEIGHT", 95)
    assert lim.used("REQUEST_WEIGHT") == 95
    assert lim.wait_time({"REQUEST_WEIGHT": 10}) == pytest.approx(60.0)
    lim.observe_used("REQUEST_WEIGHT", 10)  # lower than ours: ours stands
    assert lim.used("REQUEST_WEIGHT") == 95


def test_limits_from_binance_exchange_info():
    limits = limits_from_binance(RATE_LIMITS)
    assert Limit("REQUEST_WEIGHT", 6000, 60.0) in limits
    assert Limit("RAW_REQUESTS", 61000, 300.0) in limits
    assert Limit("ORDERS", 200000, 86400.0) in limits


def test_retry_after_values():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


async def test_rest_client_pauses_on_429_then_retries():
    clock = FakeClock()
    answers = [
        HttpResponse(429, {"retry-after": "3"}, b'{"code":-1003}'),
        HttpResponse(200, {"x-mbx-used-weight-1m": "57"}, b'{"ok":1}'),
    ]
    seen = []

    async def fake_get(url, params, timeout):
        seen.append((url, dict(params)))
        return answers.pop(0)

    lim = RateLimiter([Limit("REQUEST_WEIGHT", 6000, 60.0)], clock=clock, sleep=clock.sleep)
    rest = RestClient(
        "http://127.0.0.1:9",
        limiter=lim,
        get=fake_get,
        used_weight=("x-mbx-used-weight-1m", "REQUEST_WEIGHT"),
    )
    body = await rest.get_json("/api/v3/depth", {"symbol": "X"}, costs={"REQUEST_WEIGHT": 5})
    assert body == {"ok": 1}
    assert clock.sleeps == [3.0] and rest.throttled == 1 and len(seen) == 2
    assert lim.used("REQUEST_WEIGHT") == 57


async def test_rest_client_gives_up_after_its_retries():
    from adapters.live.http import HttpStatusError

    clock = FakeClock()

    async def always_429(url, params, timeout):
        return HttpResponse(429, {"retry-after": "1"}, b"slow down")

    rest = RestClient(
        "http://127.0.0.1:9",
        limiter=RateLimiter(clock=clock, sleep=clock.sleep),
        get=always_429,
        max_retries=2,
    )
    with pytest.raises(HttpStatusError) as err:
        await rest.get_json("/api/v3/depth?signature=secret")
    assert err.value.status == 429 and "secret" not in str(err.value)
    assert clock.sleeps == [1.0, 1.0]


# -- correlation ----------------------------------------------------------------------------


async def test_a_request_without_reply_is_unknown_and_its_late_reply_is_counted():
    late = []
    pending = PendingRequests(on_late_reply=late.append)
    rid = pending.next_id()
    fut = pending.register(rid, connection=1)
    reply = await pending.wait(rid, fut, timeout=0.02)
    assert reply.outcome is Outcome.UNKNOWN and "no reply" in reply.reason
    assert pending.timed_out == 1 and len(pending) == 0
    assert not pending.resolve(Reply(rid, Outcome.OK, result=None))
    assert pending.late_replies == 1 and late[0].id == rid
    assert not pending.resolve(Reply(999, Outcome.OK))
    assert pending.unmatched_replies == 1


async def test_replies_resolve_their_own_request_and_a_lost_connection_abandons_the_rest():
    pending = PendingRequests()
    a, b, c = (pending.next_id() for _ in range(3))
    fa = pending.register(a, connection=1)
    fb = pending.register(b, connection=1)
    fc = pending.register(c, connection=2)
    assert pending.resolve(Reply(b, Outcome.ERROR, error={"code": 2}))
    assert (await pending.wait(b, fb, 1.0)).outcome is Outcome.ERROR
    assert pending.abandon(1, "connection lost") == 1
    assert (await pending.wait(a, fa, 1.0)).outcome is Outcome.UNKNOWN
    assert not fc.done()
    pending.resolve(Reply(c, Outcome.OK, result=[1]))
    assert (await asyncio.wait_for(fc, 1.0)).result == [1]


# -- book sequencing (Binance spot rule) ----------------------------------------------------


def _upd(first: int, last: int) -> BookUpdate:
    return BookUpdate("X", False, first, last, None, np.zeros(0, dtype=EVENT_DTYPE), 0, 0)


def _spot(bridging, book_id, first, last, prev):
    return depth_diff_verdict(False, bridging, book_id, first, last, None)


def test_sequencer_buffers_bridges_ignores_repeats_and_detects_gaps():
    seq = BookSequencer(_spot)
    assert seq.on_update(_upd(95, 99))[0] == DIFF_BUFFERED
    assert seq.on_update(_upd(100, 104))[0] == DIFF_BUFFERED
    assert seq.bridges(90) is False  # older than the buffer: fetch another snapshot
    assert seq.bridges(101) is True
    pending = seq.on_snapshot(101)
    assert seq.state == SyncState.BRIDGE
    verdicts = [seq.on_update(u)[0] for u in pending]
    assert verdicts == [DIFF_STALE, DIFF_APPLY] and seq.book_id == 104
    assert seq.on_update(_upd(100, 104))[0] == DIFF_REPEAT  # a duplicated frame
    assert seq.on_update(_upd(105, 107))[0] == DIFF_APPLY
    verdict, why = seq.on_update(_upd(109, 110))
    assert verdict == DIFF_GAP and "U=109" in why and seq.state == SyncState.WAIT
    assert list(seq.buffer)[0].first == 109  # kept for the next snapshot
    assert (seq.applied, seq.stale, seq.repeats, seq.gaps) == (2, 1, 1, 1)


def test_the_first_diff_may_start_exactly_at_last_update_id_plus_one():
    assert depth_diff_verdict(False, True, 100, 101, 105, None)[0] == DIFF_APPLY
    assert depth_diff_verdict(False, True, 100, 102, 105, None)[0] == DIFF_GAP
    assert depth_diff_verdict(False, True, 100, 90, 100, None)[0] == DIFF_STALE
    # Futures: pu chains the diffs once bridged.
    assert depth_diff_verdict(True, False, 100, 150, 160, 100)[0] == DIFF_APPLY
    assert depth_diff_verdict(True, False, 100, 150, 160, 99)[0] == DIFF_GAP


# -- Binance metadata and sandbox pieces ----------------------------------------------------


def test_exchange_info_gives_instrument_and_filters():
    spec = SymbolSpec("BTCUSDT", Decimal("0.01"), Decimal("0.00001"), Decimal("5"))
    info = {"symbols": [spec.info()], "rateLimits": list(RATE_LIMITS)}
    filters, limits = parse_exchange_info(info)
    f = filters["BTCUSDT"]
    assert f.instrument().tick_size == Decimal("0.01")
    assert f.instrument().lot_size == Decimal("0.00001")
    assert f.min_notional == Decimal("5") and f.status == "TRADING"
    assert spec.info()["baseAsset"] == "BTC" and spec.info()["quoteAsset"] == "USDT"
    assert Limit("REQUEST_WEIGHT", 6000, 60.0) in limits
    with pytest.raises(DataError):
        parse_exchange_info({"symbols": [{"symbol": "X", "filters": []}]})


def test_depth_weights():
    assert [depth_weight(n) for n in (1, 100, 101, 500, 1000, 5000)] == [5, 5, 25, 25, 50, 250]
    with pytest.raises(UsageError):
        depth_weight(5001)


def test_fault_spec():
    f = Faults.parse("drop_diff=5, dup_diff=9,drop_diff=12,http_429=2,retry_after=3")
    assert f.drop_diff == {5, 12} and f.dup_diff == {9} and f.http_429 == 2 and f.retry_after == 3
    assert Faults.parse("") == Faults()
    for bad in ("drop=1", "drop_diff", "drop_diff=x", "kill_socket_after=0"):
        with pytest.raises(UsageError):
            Faults.parse(bad)


def test_sandbox_book_applies_absolute_sizes_and_answers_best_first():
    book = SandboxBook(10, [["100.0", "1"], ["99.5", "2"]], [["101.0", "3"]])
    book.apply({"b": [["100.0", "0"], ["99.9", "4"]], "a": [["100.5", "1"]], "u": 12})
    depth = book.depth(limit=1)
    assert depth == {"lastUpdateId": 12, "bids": [["99.9", "4"]], "asks": [["100.5", "1"]]}
