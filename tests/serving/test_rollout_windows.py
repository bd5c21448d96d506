"""The rollout controller's window source over a real server's monitoring (app in process)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from tests.serving.monitor_fixtures import Monitored, flaky, flaky_body, monitored

from modelport.api.registry import Registry
from modelport.rollout.analysis import VersionWindow
from modelport.serving.rollout_windows import MonitorWindows, on_loop

__all__ = ["flaky", "monitored"]  # fixtures used here


def test_figures_since_a_time_with_5xx_errors_p95_and_accuracy(
    flaky: Registry, monitored: Monitored
) -> None:
    xs = np.random.default_rng(5).normal(size=40)
    fails = [1 if i % 8 == 3 else 2 if i % 9 == 4 else 0 for i in range(40)]
    with monitored("flaky") as run:
        portal = run.client.portal
        assert portal is not None
        source = MonitorWindows(run.monitor, portal.call)
        before = datetime.now(UTC) - timedelta(minutes=1)
        assert source.windows("flaky", [1], before) == ({}, None)  # no request: left out
        ids, ok = [], []
        for x, fail in zip(xs, fails, strict=True):
            answer = run.client.post("/v2/models/flaky/infer", json=flaky_body(float(x), 0, fail))
            ids.append(answer.headers["x-request-id"])
            ok.append(answer.status_code == 200)
        labels = [
            {"id": rid, "label": int(x > 0) if i < 20 else int(x <= 0)}
            for i, (rid, x, good) in enumerate(zip(ids, xs, ok, strict=True))
            if good
        ]
        assert run.client.post("/v2/models/flaky/feedback", json=labels).status_code == 200
        figures, shadow = source.windows("flaky", [1, 2], before)
        later, _ = source.windows("flaky", [1], datetime.now(UTC) + timedelta(seconds=10))
    assert shadow is None
    assert set(figures) == {1}  # version 2 answered nothing
    window = figures[1]
    assert isinstance(window, VersionWindow)
    assert window.requests == 40
    assert window.errors == fails.count(1)  # 5xx only; the 400s are the client's
    assert window.p95_ms is not None
    assert window.p95_ms >= 0
    answered = [i for i, good in enumerate(ok) if good]
    right = sum(1 for i in answered if i < 20)
    assert window.labeled == len(answered)
    assert window.accuracy == pytest.approx(right / len(answered))
    assert later == {}  # nothing since a time after every request


def test_on_loop_runs_the_read_on_the_loop_from_another_thread() -> None:
    seen: dict[str, Any] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        call = on_loop(loop, timeout_s=5)

        async def read() -> str:
            seen["thread"] = threading.current_thread().name
            return "figures"

        seen["result"] = await asyncio.to_thread(call, read)

    asyncio.run(main())
    assert seen == {"thread": threading.main_thread().name, "result": "figures"}
