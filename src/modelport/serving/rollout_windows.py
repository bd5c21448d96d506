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
anyio portal's ``call`` in tests). The shadow window is the agreement of the candidate's
mirrored answers with the primary's since the stage began, this worker's and (by their
exports) every sibling worker's (``serving.shadow.ShadowTally``), None before the first
comparison (``min_shadow_agreement`` then waits). An endpoint's figures
are its model's (``Endpoints`` says which model an endpoint routes to).

``NoWindows`` is the source of a server without monitoring: it never has figures, so a rollout
waits and then aborts after its no-data timeout, never acting on missing data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from modelport.rollout.analysis import ShadowWindow, VersionWindow
from modelport.serving.endpoints import Endpoints
from modelport.serving.monitor import ServerMonitor
from modelport.serving.shadow import ShadowTally

__all__ = ["SHADOWS", "MonitorWindows", "NoWindows", "on_loop", "version_windows"]

_T = TypeVar("_T")
CallOnLoop = Callable[[Callable[[], Awaitable[Any]]], Any]


async def version_windows(
    monitor: ServerMonitor,
    model: str,
    versions: Sequence[int],
    since: datetime,
    others: list[dict[str, Any]] | None = None,
) -> dict[int, VersionWindow]:
    """Figures of ``versions`` of ``model`` since ``since`` (see module doc); ``others``: the
    sibling workers' exports when the caller already exchanged them."""
    window = (await monitor.merged_windows(others))[monitor.config.window_s]
    out: dict[int, VersionWindow] = {}
    for version in versions:
        stats = window.snapshot((model, model, str(version)), since=since.timestamp())
        if stats.count == 0:
            continue
        labeled, accuracy = await monitor.accuracy_since(model, version, since)
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


#: The name a worker's shadow tally is shared under (``ServerMonitor.share``).
SHADOWS = "shadows"


class MonitorWindows:
    """``rollout.ports.WindowSource`` over ``monitor``; call it from any thread but the loop's.
    With ``shadows``, the tally is shared with the sibling workers (``ServerMonitor.share``)
    and the shadow window counts every worker's comparisons."""

    def __init__(
        self,
        monitor: ServerMonitor,
        call: CallOnLoop,
        shadows: ShadowTally | None = None,
        endpoints: Endpoints | None = None,
    ) -> None:
        self._monitor = monitor
        self._call = call
        self._shadows = shadows
        self._endpoints = endpoints

    def windows(
        self, endpoint: str, versions: Sequence[int], since: datetime
    ) -> tuple[dict[int, VersionWindow], ShadowWindow | None]:
        async def read() -> tuple[dict[int, VersionWindow], ShadowWindow | None]:
            route = self._endpoints.get(endpoint) if self._endpoints is not None else None
            model = route.model if route is not None else endpoint
            others = await self._monitor.exchange()
            figures = await version_windows(self._monitor, model, versions, since, others)
            shadow = None
            if self._shadows is not None and len(versions) > 1:
                at = since.timestamp()
                parts = [self._shadows.window(endpoint, versions[-1], at)]
                for exported in others:
                    shadows = exported.get(SHADOWS)
                    parts.append(ShadowTally.window_of_export(shadows, endpoint, versions[-1], at))
                found = [p for p in parts if p is not None]
                if found:
                    compared = sum(p.compared for p in found)
                    shadow = ShadowWindow(compared, sum(p.agreed for p in found))
            return figures, shadow

        found: tuple[dict[int, VersionWindow], ShadowWindow | None] = self._call(read)
        return found


class NoWindows:
    """A ``WindowSource`` without figures (a server with monitoring off)."""

    def windows(
        self, endpoint: str, versions: Sequence[int], since: datetime
    ) -> tuple[dict[int, VersionWindow], ShadowWindow | None]:
        return {}, None
