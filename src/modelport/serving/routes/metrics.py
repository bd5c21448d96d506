"""``GET /metrics``: every metric in the Prometheus text exposition format.

With several worker processes, whichever worker answers merges the values of all of them (see
``modelport.monitoring.metrics``), so a scrape never undercounts.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelport.monitoring.metrics import CONTENT_TYPE, ServingMetrics

__all__ = ["routes"]


def routes(metrics: ServingMetrics, refresh: Callable[[], None]) -> list[BaseRoute]:
    """``refresh`` updates this worker's sampled gauges just before they are exported."""

    async def exposition(request: Request) -> Response:
        refresh()
        return Response(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    return [Route("/metrics", exposition, methods=["GET"])]
