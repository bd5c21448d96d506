"""The shadow tally: windows since a time, per-second counts shared with sibling workers, and
the controller's shadow window adding every worker's comparisons (a real ``ServerMonitor``
over a real shared directory)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from modelport.core.clock import FakeClock
from modelport.core.errors import InvalidInputError
from modelport.core.model import ModelVersion
from modelport.core.refs import ModelRef
from modelport.monitoring.metrics import create_metrics
from modelport.rollout.analysis import ShadowWindow
from modelport.runtime.base import Runtime
from modelport.serving.config import MonitoringConfig, ServeConfig
from modelport.serving.manager import ModelManager
from modelport.serving.monitor import ServerMonitor
from modelport.serving.monitor_windows import SharedDirectory
from modelport.serving.rollout_windows import SHADOWS, MonitorWindows
from modelport.serving.shadow import MAX_SECONDS, ShadowTally

T = TypeVar("T")
ZERO = {"predictions": np.zeros(1, dtype=np.int64)}
ONE = {"predictions": np.ones(1, dtype=np.int64)}
START = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


def compare(tally: ShadowTally, agree: bool, endpoint: str = "ep", version: int = 2) -> None:
    tally.add(endpoint, version, ZERO, ZERO if agree else ONE, 0.001, 0.002)


def test_the_window_counts_comparisons_since_a_time() -> None:
    clock = FakeClock(START)
    tally = ShadowTally(clock)
    assert tally.window("ep", 2, START.timestamp()) is None
    compare(tally, True)
    clock.advance(0.5)
    compare(tally, False)
    compare(tally, True)
    assert tally.window("ep", 2, START.timestamp()) == ShadowWindow(3, 2)
    assert tally.window("ep", 2, START.timestamp() + 0.25) == ShadowWindow(2, 1)  # exact
    assert tally.window("ep", 2, START.timestamp() + 1) is None
    assert tally.window("ep", 3, START.timestamp()) is None
    assert tally.versions("ep") == [2]


def test_an_export_counts_whole_seconds_and_never_a_partial_one() -> None:
    clock = FakeClock(START)
    tally = ShadowTally(clock)
    for _ in range(3):  # 4 comparisons a second, the last one of each disagreeing
        for i in range(4):
            compare(tally, i < 3)
            clock.advance(0.2)
        clock.advance(0.2)
    compare(tally, True, endpoint="other")
    exported = tally.export()
    t0 = START.timestamp()
    assert ShadowTally.window_of_export(exported, "ep", 2, t0) == ShadowWindow(12, 9)
    # a stage that began mid-second does not count that second: never a comparison from before
    assert ShadowTally.window_of_export(exported, "ep", 2, t0 + 0.5) == ShadowWindow(8, 6)
    assert ShadowTally.window_of_export(exported, "ep", 2, t0 + 3) is None
    assert ShadowTally.window_of_export(exported, "ep", 3, t0) is None
    assert ShadowTally.window_of_export(exported, "other", 2, t0) == ShadowWindow(1, 1)


@pytest.mark.parametrize(
    "exported",
    [None, "junk", [["ep", 2, [["x", 1, 1]]]], [["ep", 2, [[0, 1, 5]]]], [["ep", 2]]],
    ids=["none", "text", "bad-second", "agreed-above-compared", "short-entry"],
)
def test_an_export_that_is_not_understood_is_ignored(exported: Any) -> None:
    assert ShadowTally.window_of_export(exported, "ep", 2, 0.0) is None


def test_per_second_counts_are_bounded_to_the_last_hour() -> None:
    clock = FakeClock(START)
    tally = ShadowTally(clock)
    for _ in range(MAX_SECONDS + 10):
        compare(tally, True)
        clock.advance(1.0)
    ((endpoint, version, seconds),) = tally.export()
    assert (endpoint, version, len(seconds)) == ("ep", 2, MAX_SECONDS)
    assert seconds[0][0] == int(START.timestamp()) + 10  # the oldest seconds went first


# -- across workers -------------------------------------------------------------------------------
def _run(fn: Callable[[], Awaitable[T]]) -> T:
    """``MonitorWindows``' ``call``: here the test's thread runs its own loop."""

    async def main() -> T:
        return await fn()

    return asyncio.run(main())


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[ServerMonitor]:
    """A worker's monitoring sharing ``tmp_path/shared`` (not started: nothing is logged)."""

    def no_load(_: ModelVersion) -> Runtime:
        raise AssertionError("nothing is loaded in this test")

    def no_resolve(_: ModelRef) -> ModelVersion:
        raise AssertionError("nothing is resolved in this test")

    config = ServeConfig(refs=("ep@champion",))
    with ThreadPoolExecutor(1) as executor:
        manager = ModelManager(config, no_resolve, no_load, executor)
        yield ServerMonitor(
            MonitoringConfig(),
            manager,
            create_metrics(),
            FakeClock(START),
            shared_dir=tmp_path / "shared",
        )


def test_the_controllers_shadow_window_adds_every_live_workers_comparisons(
    monitor: ServerMonitor, tmp_path: Path
) -> None:
    clock = FakeClock(START + timedelta(seconds=2))
    mine, sibling = ShadowTally(clock), ShadowTally(clock)
    for i in range(10):
        compare(mine, i < 9)  # 9 of 10
        compare(sibling, i < 5)  # 5 of 10
    monitor.share(SHADOWS, mine.export)
    shared = tmp_path / "shared"
    SharedDirectory(shared, pid=os.getppid()).write_windows(  # a live sibling worker
        {SHADOWS: sibling.export()}
    )
    source = MonitorWindows(monitor, _run, mine)
    figures, shadow = source.windows("ep", [1, 2], START)
    assert figures == {}  # no request was recorded
    assert shadow == ShadowWindow(20, 14)
    # what this worker shared is what its sibling reads
    (exported,) = SharedDirectory(shared, pid=os.getppid()).read_windows()
    assert ShadowTally.window_of_export(exported[SHADOWS], "ep", 2, 0.0) == ShadowWindow(10, 9)


def test_a_shared_export_may_not_take_a_window_length_as_its_name(
    monitor: ServerMonitor,
) -> None:
    with pytest.raises(InvalidInputError, match="not a number"):
        monitor.share("300", list)
