"""The venue clock offset: NTP-style best sample, and timestamps Binance accepts."""

from __future__ import annotations

import pytest

from adapters.live.clock_offset import ClockOffset, ClockSample
from engine.errors import UsageError

MS = 1_000_000
T0 = 1_700_000_000_000 * MS  # local wall clock at the first request, ns


class FakeClock:
    """A local wall clock the test moves by hand."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def binance_accepts(timestamp_ms: int, server_time_ms: int, recv_window_ms: int = 5000) -> bool:
    """Binance's check of a signed request's timestamp on arrival (else -1021)."""
    return timestamp_ms < server_time_ms + 1000 and server_time_ms - timestamp_ms <= recv_window_ms


def test_one_sample_offset_is_server_time_minus_the_midpoint() -> None:
    sample = ClockSample(t_send_ns=T0, server_time_ms=1_700_000_003_725, t_recv_ns=T0 + 50 * MS)
    assert sample.round_trip_ns == 50 * MS
    assert sample.offset_ns == 3_700 * MS  # 3,725 ms minus the midpoint at 25 ms


def test_odd_round_trip_midpoint_rounds_down() -> None:
    sample = ClockSample(T0 + 1, 1_700_000_000_000, T0 + 4)
    assert sample.offset_ns == -2  # midpoint T0 + 2 (floor of 2.5)


def test_the_smallest_round_trip_wins() -> None:
    offset = ClockOffset(FakeClock(T0))
    offset.observe(T0, 1_700_000_001_200, T0 + 400 * MS)  # rtt 400 ms, offset +1,000 ms
    best = offset.observe(T0 + 1_000 * MS, 1_700_000_002_019, T0 + 1_008 * MS)  # rtt 8 ms
    offset.observe(T0 + 2_000 * MS, 1_700_000_003_030, T0 + 2_040 * MS)  # rtt 40 ms
    assert offset.best == best
    assert offset.offset_ns == 1_700_000_002_019 * MS - (T0 + 1_004 * MS) == 1_015 * MS
    assert offset.uncertainty_ns == 4 * MS + 1 * MS


def test_equal_round_trips_keep_the_newer_sample() -> None:
    offset = ClockOffset(FakeClock(T0))
    offset.observe(T0, 1_700_000_000_010, T0 + 20 * MS)
    newer = offset.observe(T0 + 60_000 * MS, 1_700_000_060_012, T0 + 60_020 * MS)
    assert offset.best == newer
    assert offset.offset_ns == 2 * MS


def test_old_samples_leave_the_window() -> None:
    offset = ClockOffset(FakeClock(T0), window=3)
    offset.observe(T0, 1_700_000_000_001, T0 + 2 * MS)  # rtt 2 ms: the best, for now
    for i in range(1, 4):
        t = T0 + i * 1_000 * MS
        offset.observe(t, 1_700_000_000_000 + i * 1_000 + 500 + 10, t + 20 * MS)
    # The 2 ms sample was pushed out by three 20 ms samples of offset +500 ms.
    assert offset.best is not None and offset.best.round_trip_ns == 20 * MS
    assert offset.offset_ns == 500 * MS


def test_timestamp_ms_applies_the_offset_to_the_local_clock() -> None:
    clock = FakeClock(T0)
    offset = ClockOffset(clock)
    offset.observe(T0, 1_699_999_998_775, T0 + 50 * MS)  # venue 1,250 ms behind us
    clock.now_ns = T0 + 10_000 * MS + 999_999  # 10 s later, 0.999999 ms into a millisecond
    assert offset.now_ns() == T0 + 10_000 * MS + 999_999 - 1_250 * MS
    assert offset.timestamp_ms() == 1_700_000_008_750


@pytest.mark.parametrize(
    ("true_offset_ms", "naive_accepted"),
    [(-3_700, False), (6_000, False), (-900, True), (200, True)],
)
def test_measured_timestamps_are_never_outside_recv_window(
    true_offset_ms: int, naive_accepted: bool
) -> None:
    """A local clock seconds off makes raw local time fail (-1021); the offset fixes it.

    The network is asymmetric (40 ms out, 10 ms back) and one sample waited in a queue for
    900 ms: the estimate is still within half the best round trip.
    """
    up, down = 40 * MS, 10 * MS
    true_offset = true_offset_ms * MS

    def server_ms(local_ns: int) -> int:
        return (local_ns + true_offset) // MS

    clock = FakeClock(T0)
    offset = ClockOffset(clock)
    queued = T0 - 5_000 * MS
    offset.observe(queued, server_ms(queued + up + 900 * MS), queued + up + 900 * MS + down)
    offset.observe(T0, server_ms(T0 + up), T0 + up + down)
    assert abs(offset.offset_ns - true_offset) <= offset.uncertainty_ns

    recv_window_ms = 100  # a strict window: the estimate must be good, not just close
    for later_ms in (0, 1, 999, 60_000, 600_000):
        clock.now_ns = T0 + later_ms * MS
        arrival = server_ms(clock.now_ns + up)
        assert binance_accepts(offset.timestamp_ms(), arrival, recv_window_ms)
        assert binance_accepts(clock.now_ns // MS, arrival, 5000) == naive_accepted


def test_no_sample_yet_is_an_error() -> None:
    offset = ClockOffset(FakeClock(T0))
    assert offset.best is None
    with pytest.raises(UsageError, match="no server time measured yet"):
        offset.timestamp_ms()


def test_bad_samples_are_refused() -> None:
    offset = ClockOffset(FakeClock(T0))
    with pytest.raises(UsageError, match="received at .* before it was sent"):
        offset.observe(T0 + 1, 1_700_000_000_000, T0)
    with pytest.raises(UsageError, match="server time 0 ms is not a time"):
        offset.observe(T0, 0, T0 + 1)
    with pytest.raises(UsageError, match="at least 1"):
        ClockOffset(window=0)
    assert offset.best is None
