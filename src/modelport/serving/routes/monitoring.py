"""Monitoring routes of the data plane: ground-truth feedback, live status, drift, alerts.

Errors are ``{"error": message}`` with the status ``serving.http`` maps them to; messages name
the field or item at fault and never repeat a payload value. With monitoring turned off every
route answers 404 saying so.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelport.core.errors import InvalidInputError, ModelNotFoundError, NotFoundError
from modelport.monitoring.alertlog import MAX_LIMIT
from modelport.serving.http import JSONResponse, check_content_type, read_body
from modelport.serving.monitor import ServerMonitor
from modelport.serving.routes.v2 import v2_errors
from modelport.serving.state import ServerState

__all__ = ["FEEDBACK_TYPES", "routes"]

FEEDBACK_TYPES = ("application/json", "text/csv")
MAX_WINDOW_S = 30 * 24 * 3600


def _whole(request: Request, name: str, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or not low <= int(raw) <= high:
        raise InvalidInputError(
            f"query parameter {name!r} must be a whole number from {low} to {high}"
        )
    return int(raw)


def routes(state: ServerState, monitor: ServerMonitor | None) -> list[BaseRoute]:
    plane = state.plane

    def active() -> ServerMonitor:
        if monitor is None:
            raise NotFoundError(
                "monitoring is turned off on this server; start it without monitoring disabled"
            )
        return monitor

    @v2_errors
    async def feedback(request: Request) -> Response:
        watcher = active()
        model = request.path_params["name"]
        if model not in plane.models():
            raise ModelNotFoundError(f"model {model!r} is not served here")
        media = check_content_type(request, FEEDBACK_TYPES) or "application/json"
        body = await read_body(request, state.admission.max_body_bytes)
        return JSONResponse(await watcher.feedback(model, body, media))

    @v2_errors
    async def status(request: Request) -> Response:
        return JSONResponse(await active().status(plane.ready()))

    @v2_errors
    async def drift(request: Request) -> Response:
        watcher = active()
        version = _whole(request, "version", 1, 999_999_999)
        window_s = _whole(request, "window_s", 1, MAX_WINDOW_S)
        return JSONResponse(await watcher.drift(request.path_params["name"], version, window_s))

    @v2_errors
    async def alerts(request: Request) -> Response:
        watcher = active()
        limit = _whole(request, "limit", 1, MAX_LIMIT)
        return JSONResponse(await watcher.alerts(100 if limit is None else limit))

    return [
        Route("/v2/models/{name}/feedback", feedback, methods=["POST"]),
        Route("/v2/models/{name}/drift", drift, methods=["GET"]),
        Route("/v2/monitoring/status", status, methods=["GET"]),
        Route("/v2/monitoring/alerts", alerts, methods=["GET"]),
    ]
