"""MLflow scoring server routes, compatible with ``mlflow models serve``.

- ``POST /invocations``: the served model when exactly one model name is served;
- ``POST /models/{name}/invocations`` and ``POST /models/{name}/versions/{version}/invocations``
  for servers with several models (or to pin a version);
- ``GET /ping`` and ``GET /health``: 200 when ready, else 404 (as MLflow, whose probes expect it);
- ``GET /version``: the modelport version.

Errors are ``{"error_code": ..., "message": ...}`` with the mapped HTTP status (415 for a content
type other than JSON or CSV in UTF-8). ``params`` is checked to be an object and otherwise
ignored: the runtimes take no per-request parameters yet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pandas as pd
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from modelport._version import __version__
from modelport.core.errors import InvalidInputError, SignatureError
from modelport.serving.http import (
    JSONResponse,
    deadline_for,
    error_headers,
    error_status,
    parse_json,
    public_message,
    read_body,
)
from modelport.serving.mlflow_codec import (
    error_code,
    frame_from_csv,
    frame_from_records,
    frame_from_split,
    media_kind,
    parse_request,
    predictions,
)
from modelport.serving.requestid import use_request_body
from modelport.serving.state import ServerState
from modelport.serving.tf_codec import (
    Inputs,
    decode_columnar,
    decode_rows,
    model_input,
    parse_version,
)

__all__ = ["mlflow_errors", "routes"]

Handler = Callable[[Request], Awaitable[Response]]


def mlflow_errors(handler: Handler) -> Handler:
    """Errors as MLflow's ``{"error_code", "message"}`` with the mapped status."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            return JSONResponse(
                {"error_code": error_code(exc), "message": public_message(exc)},
                error_status(exc),
                headers=error_headers(exc),
            )

    return wrapped


def routes(state: ServerState) -> list[BaseRoute]:
    plane = state.plane

    async def score(request: Request, model: str, version: int | None) -> Response:
        kind = media_kind(request.headers.get("content-type"))
        body = await read_body(request, state.admission.max_body_bytes)
        deadline = deadline_for(request, None, state.admission, state.clock)
        signature = plane.signature(model, version)
        value: pd.DataFrame | Inputs
        if kind == "csv":
            value = frame_from_csv(body, signature)
        else:
            document = parse_json(body)
            parsed = parse_request(document)
            use_request_body(document)  # what a sticky ``field:`` key is read from
            if parsed.format == "dataframe_split":
                value = frame_from_split(parsed.value)
            elif parsed.format == "dataframe_records":
                value = frame_from_records(parsed.value)
            elif parsed.format == "instances":
                value = decode_rows(parsed.value)
            else:
                value = decode_columnar(parsed.value)
        try:  # well-formed from here on; what fails is a mismatch with the model's signature
            if not isinstance(value, pd.DataFrame):
                value = model_input(value, signature, model)
            if isinstance(value, pd.DataFrame):
                prediction = await plane.predict_frame(model, version, value, deadline=deadline)
            else:
                prediction = await plane.predict_tensors(model, version, value, deadline=deadline)
        except SignatureError:
            raise
        except InvalidInputError as exc:
            raise SignatureError(str(exc)) from exc
        return JSONResponse({"predictions": predictions(prediction.outputs)})

    @mlflow_errors
    async def invocations(request: Request) -> Response:
        names = plane.models()
        if len(names) != 1:
            shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
            raise InvalidInputError(
                f"this server serves {len(names)} models ({shown}); "
                "post to /models/{name}/invocations instead"
            )
        return await score(request, names[0], None)

    @mlflow_errors
    async def model_invocations(request: Request) -> Response:
        raw: Any = request.path_params.get("version")
        version = parse_version(raw) if raw is not None else None
        return await score(request, request.path_params["name"], version)

    async def ping(request: Request) -> Response:
        return Response("\n", 200 if plane.ready() else 404, media_type="application/json")

    async def version(request: Request) -> Response:
        return PlainTextResponse(__version__)

    return [
        Route("/invocations", invocations, methods=["POST"]),
        Route("/models/{name}/invocations", model_invocations, methods=["POST"]),
        Route("/models/{name}/versions/{version}/invocations", model_invocations, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
    ]
