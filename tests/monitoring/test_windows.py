"""RollingWindow: expiry as the fake clock moves, exact merges of several workers' windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from modelport.core.clock import FakeClock
from modelport.core.errors import InvalidInputError
from modelport.monitoring.windows import RollingWindow, WindowKey, WindowStats

A: WindowKey = ("churn", "churn-model", "3")
B: WindowKey = ("churn", "churn-model", "4")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC))


def test_snapshot_counts_errors_and_quantiles(clock: FakeClock) -> None:
    window = RollingWindow(window_s=60, slice_s=5, clock=clock)
    latencies = np.random.default_rng(3).lognormal(np.log(0.03), 0.6, 1_000)
    for i, latency in enumerate(latencies):
        window.record(A, float(latency), error=i % 20 == 0)
        if i % 100 == 99:
            clock.advance(5)
    stats = window.snapshot(A)
    assert (stats.count, stats.errors) == (1_000, 50)
    assert stats.error_rate == pytest.approx(0.05)
    assert stats.window_s == 60
    for got, q in ((stats.p50, 0.5), (stats.p95, 0.95), (stats.p99, 0.99)):
        assert got == pytest.approx(float(np.quantile(latencies, q)), rel=0.0101)


def test_unknown_key_is_empty(clock: FakeClock) -> None:
    window = RollingWindow(window_s=60, slice_s=5, clock=clock)
    assert window.snapshot(A) == WindowStats(0, 0, 0.0, 0.0, None, None, None, 60.0)
    assert window.keys() == []


def test_old_slices_drop_out_as_the_clock_moves(clock: FakeClock) -> None:
    window = RollingWindow(window_s=60, slice_s=10, clock=clock)  # clock starts on a slice edge
    window.record(A, 0.1)
    clock.advance(30)
    window.record(A, 0.2, error=True)
    window.record(B, 0.3)
    assert window.snapshot(A).count == 2
    assert window.keys() == [A, B]
    clock.advance(30)  # t=60: the slice of t=0 left the window [10, 70)
    stats = window.snapshot(A)
    assert (stats.count, stats.errors, stats.p50) == (1, 1, pytest.approx(0.2, rel=0.01))
    clock.advance(29.9)  # t=89.9: the t=30 slice is still in [30, 90)
    assert window.snapshot(A).count == 1
    clock.advance(0.1)  # t=90
    assert window.snapshot(A) == WindowStats(0, 0, 0.0, 0.0, None, None, None, 60.0)
    assert window.keys() == []


def test_rate_uses_the_time_covered(clock: FakeClock) -> None:
    window = RollingWindow(window_s=60, slice_s=10, clock=clock)
    for _ in range(120):  # 2 requests per second for 60 s
        window.record(A, 0.01)
        window.record(A, 0.01)
        clock.advance(1)
    assert window.snapshot(A).rate_per_s == pytest.approx(2.0)
    clock.advance(600)
    for _ in range(20):  # 20 requests per second
        window.record(A, 0.01)
        clock.advance(0.05)
    # now t=721: the window is the slices [670, 730), of which 51 s have passed; the old requests
    # dropped out, so 20 requests in 51 s
    assert window.snapshot(A).rate_per_s == pytest.approx(20 / 51)


def test_rate_while_the_window_is_filling(clock: FakeClock) -> None:
    window = RollingWindow(window_s=300, slice_s=10, clock=clock)
    for _ in range(40):
        window.record(A, 0.01)
        clock.advance(0.5)
    assert window.snapshot(A).rate_per_s == pytest.approx(2.0)  # 40 requests in 20 s, not 300


def _traffic(seed: int) -> list[tuple[float, WindowKey, float, bool]]:
    rng = np.random.default_rng(seed)
    events = []
    for _ in range(3_000):
        events.append(
            (
                float(rng.exponential(0.05)),
                A if rng.random() < 0.7 else B,
                float(rng.lognormal(np.log(0.02), 1.0)),
                bool(rng.random() < 0.03),
            )
        )
    return events


def test_two_workers_merged_equal_one_window_that_saw_everything(clock: FakeClock) -> None:
    single = RollingWindow(window_s=60, slice_s=5, clock=clock)
    workers = [RollingWindow(window_s=60, slice_s=5, clock=clock) for _ in range(2)]
    rng = np.random.default_rng(11)
    for gap, key, latency, error in _traffic(seed=5):
        clock.advance(gap)
        single.record(key, latency, error)
        workers[int(rng.integers(2))].record(key, latency, error)
    for _ in range(4):  # compare at several moments, including after slices expired
        view = RollingWindow(window_s=60, slice_s=5, clock=clock)
        for worker in workers:  # shipped between processes as JSON
            view.merge_export(json.loads(json.dumps(worker.export())))
        assert view.keys() == single.keys() == [A, B]
        for key in (A, B):
            merged, alone = view.snapshot(key), single.snapshot(key)
            assert merged == alone
            assert merged.count > 0
        clock.advance(12)


def test_merge_rejects_other_slicing_and_garbage(clock: FakeClock) -> None:
    window = RollingWindow(window_s=60, slice_s=5, clock=clock)
    other = RollingWindow(window_s=60, slice_s=10, clock=clock)
    other.record(A, 0.1)
    with pytest.raises(InvalidInputError, match="same slice_s"):
        window.merge_export(other.export())
    with pytest.raises(InvalidInputError):
        window.merge_export({"slice_s": 5.0})
    with pytest.raises(InvalidInputError):
        window.merge_export({"slice_s": 5.0, "origin": 0.0, "keys": [{"key": ["a"], "slices": []}]})


def test_merge_ignores_slices_older_than_the_window(clock: FakeClock) -> None:
    old = RollingWindow(window_s=60, slice_s=5, clock=clock)
    old.record(A, 0.1)
    exported = old.export()
    clock.advance(120)
    window = RollingWindow(window_s=60, slice_s=5, clock=clock)
    window.merge_export(exported)
    assert window.snapshot(A).count == 0


def test_keys_are_bounded(clock: FakeClock) -> None:
    window = RollingWindow(window_s=60, slice_s=5, clock=clock, max_keys=2)
    window.record(A, 0.1)
    clock.advance(1)
    window.record(B, 0.1)
    clock.advance(1)
    window.record(A, 0.1)  # A is now the most recently active
    clock.advance(1)
    c: WindowKey = ("churn", "churn-model", "5")
    window.record(c, 0.1)
    assert window.keys() == [A, c]
    assert window.evicted_keys == 1
    assert window.snapshot(A).count == 2


def test_expired_keys_make_room_without_eviction(clock: FakeClock) -> None:
    window = RollingWindow(window_s=60, slice_s=5, clock=clock, max_keys=1)
    window.record(A, 0.1)
    clock.advance(120)
    window.record(B, 0.1)
    assert window.keys() == [B]
    assert window.evicted_keys == 0


def test_wall_clock_stepping_back_is_survived(clock: FakeClock) -> None:
    window = RollingWindow(window_s=60, slice_s=5, clock=clock)
    window.record(A, 0.1)
    clock.advance(-3600)  # NTP correction
    window.record(A, 0.2)
    assert window.snapshot(A).count == 1
    clock.advance(3600)
    assert window.snapshot(A).count == 1


@pytest.mark.parametrize(
    ("window_s", "slice_s"), [(60, 0), (60, 120), (float("inf"), 1), (86_400, 1)]
)
def test_bad_configuration_is_rejected(clock: FakeClock, window_s: float, slice_s: float) -> None:
    with pytest.raises(InvalidInputError):
        RollingWindow(window_s=window_s, slice_s=slice_s, clock=clock)


def test_bad_latency_is_not_counted(clock: FakeClock) -> None:
    window = RollingWindow(window_s=60, slice_s=5, clock=clock)
    with pytest.raises(InvalidInputError):
        window.record(A, -1.0)
    assert window.snapshot(A).count == 0


def test_a_snapshot_since_a_time_counts_only_the_slices_that_start_after_it(
    clock: FakeClock,
) -> None:
    window = RollingWindow(window_s=60, slice_s=5, clock=clock)
    key = ("e", "m", "1")
    start = clock.now().timestamp()
    for _ in range(4):  # one request in each of four slices
        window.record(key, 0.01)
        clock.advance(5)
    assert window.snapshot(key).count == 4
    assert window.snapshot(key, since=start).count == 4  # 'start' is a slice boundary here
    assert window.snapshot(key, since=start + 5).count == 3
    assert window.snapshot(key, since=start + 6).count == 2  # the straddled slice is left out
    assert window.snapshot(key, since=start - 1000).count == 4  # never more than the window
    assert window.snapshot(key, since=clock.now().timestamp() + 1).count == 0
