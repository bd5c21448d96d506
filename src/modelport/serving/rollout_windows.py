"""The rollout controller's ``WindowSource`` over a running server's monitoring.

The controller asks, from its worker thread, for each version's figures since its current stage
began. ``version_windows`` reads them where the server keeps them: request and error counts
and the p95 from the rolling windows of every worker (the slices that start after ``since``;
an error is a 5xx answer, as everywhere in monitoring), labels and accuracy from the
prediction log joined to its ground truth. A version with no request since then is left out,
which the analysis reads as missing data (it waits). Figures cover at most the rolling
window's length (``--window``, 300 s by default) before now.

``MonitorWindows`` is the thread-safe adapter: the windows belong to the event loop, so each
call runs there (``call``: ``asyncio.run_coroutine_threadsafe`` on the server's loop, or an
anyio portal's ``call`` in tests). The shadow comparison is not recorded yet: its window is
None, so ``min_shadow_agreement`` waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from modelport.rollout.analysis import ShadowWindow, VersionWindow
from modelport.serving.monitor import ServerMonitor

__all__ = ["MonitorWindows", "on_loop", "version_windows"]

_T = TypeVar("_T")
CallOnLoop = Callable[[Callable[[], Awaitable[Any]]], Any]


async def version_windows(
    monitor: ServerMonitor, endpoint: str, versions: Sequence[int], since: datetime
) -> dict[int, VersionWindow]:
    """Figures of ``versions`` of ``endpoint`` (its model) since ``since`` (see module doc)."""
    window = (await monitor.merged_windows())[monitor.config.window_s]
    out: dict[int, VersionWindow] = {}
    for version in versions:
        stats = window.snapshot((endpoint, endpoint, str(version)), since=since.timestamp())
        if stats.count == 0:
            continue
        labeled, accuracy = await monitor.accuracy_since(endpoint, version, since)
        out[version] = VersionWindow(
            requests=stats.count,
            errors=stats.errors,
            p95_ms=stats.p95 * 1000.0 if stats.p95 is not None else None,
            labeled=labeled,
            accuracy=accuracy,
        )
    return out


def on_loop(loop: asyncio.AbstractEventLoop, timeout_s: float = 10.0) -> CallOnLoop:
    """A ``call`` that runs a coroutine function on ``loop`` from another thread."""

    def call(fn: Callable[[], Awaitable[_T]]) -> _T:
        async def run() -> _T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout_s)

    return call


class MonitorWindows:
    """``rollout.ports.WindowSource`` over ``monitor``; call it from any thread but the loop's."""

    def __init__(self, monitor: ServerMonitor, call: CallOnLoop) -> None:
        self._monitor = monitor
        self._call = call

    def windows(
        self, endpoint: str, versions: Sequence[int], since: datetime
    ) -> tuple[dict[int, VersionWindow], ShadowWindow | None]:
        async def read() -> dict[int, VersionWindow]:
            return await version_windows(self._monitor, endpoint, versions, since)

        figures: dict[int, VersionWindow] = self._call(read)
        return figures, None
