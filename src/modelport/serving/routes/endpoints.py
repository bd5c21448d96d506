"""``GET /v2/endpoints``: the endpoints this worker routes by table, and their shadows.

Per endpoint: its model, the route table in force (with its generation), and, for each shadow
version compared so far, the agreement with the primary (a Wilson interval), the latency delta
(shadow minus primary, p50 and p95), how many mirrors failed or timed out, and how many were
dropped because the bounded mirror queue was full. Figures are this worker's.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelport.rollout.compare import ShadowReport
from modelport.serving.dataplane import DataPlane
from modelport.serving.http import JSONResponse
from modelport.serving.routes.v2 import v2_errors
from modelport.serving.state import ServerState

__all__ = ["endpoints_report", "routes"]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _shadow(version: int, report: ShadowReport) -> dict[str, Any]:
    return {
        "version": str(version),
        "compared": report.compared,
        "agreed": report.agreed,
        "failed": report.failed,
        "agreement": report.agreement,
        "agreement_low": report.agreement_low,
        "agreement_high": report.agreement_high,
        "latency_delta_p50_ms": _ms(report.latency_delta_p50_s),
        "latency_delta_p95_ms": _ms(report.latency_delta_p95_s),
    }


def endpoints_report(plane: DataPlane) -> dict[str, Any]:
    out = []
    tally = plane.shadows.tally
    for name in plane.endpoints.names():
        route = plane.endpoints.get(name)
        if route is None:
            continue
        table = route.router.table
        shadows = []
        for version in tally.versions(name):
            report = tally.report(name, version)
            if report is not None:
                shadows.append(_shadow(version, report))
        out.append(
            {
                "endpoint": name,
                "model": route.model,
                "generation": table.generation,
                "table": table.to_dict(),
                "shadows": shadows,
            }
        )
    return {"endpoints": out, "mirrors_dropped": plane.shadows.dropped}


def routes(state: ServerState) -> list[BaseRoute]:
    plane = state.plane

    @v2_errors
    async def endpoints(request: Request) -> Response:
        return JSONResponse(endpoints_report(plane))

    return [Route("/v2/endpoints", endpoints, methods=["GET"])]
