"""Open Inference Protocol (KServe V2) REST routes."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from modelport._version import __version__
from modelport.core.errors import InvalidInputError
from modelport.serving.http import (
    Incoming,
    JSONResponse,
    error_headers,
    error_status,
    public_message,
)
from modelport.serving.state import ServerState
from modelport.serving.types import ModelInfo

__all__ = [
    "EXTENSIONS",
    "INFER_PATTERNS",
    "Answer",
    "answer_infer",
    "routes",
    "tensor_descriptors",
    "v2_errors",
]

EXTENSIONS = ["model_repository", "binary_tensor_data"]
_DTYPE_NAMES = {
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
}
Handler = Callable[[Request], Awaitable[Response]]


def v2_errors(handler: Handler) -> Handler:
    """Errors as ``{"error": message}`` with the mapped status (and Retry-After when useful)."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            return JSONResponse(
                {"error": public_message(exc)}, error_status(exc), headers=error_headers(exc)
            )

    return wrapped


def _version(request: Request) -> int | None:
    return _parse_version(request.path_params.get("version"))


def _parse_version(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise InvalidInputError("model version in the path must be a positive integer")
    return int(raw)


def tensor_descriptors(info: ModelInfo) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """V2 ``inputs`` / ``outputs`` metadata from the version's signature."""
    sig = info.signature
    if sig is None:
        return [], [{"name": n, "datatype": "BYTES", "shape": [-1]} for n in info.outputs]
    inputs = []
    for spec in sig.inputs:
        datatype = _DTYPE_NAMES.get(spec.dtype, "BYTES")
        shape = list(spec.shape) if spec.shape is not None else [-1]
        inputs.append({"name": spec.name, "datatype": datatype, "shape": shape})
    outputs = [
        {
            "name": spec.name,
            "datatype": _DTYPE_NAMES.get(spec.dtype, "BYTES"),
            "shape": list(spec.shape) if spec.shape is not None else [-1],
        }
        for spec in sig.outputs
    ]
    return inputs, outputs


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


_JSON_TYPE = (b"content-type", b"application/json")


def _headers(body: bytes, media: str, extra: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    kind = _JSON_TYPE if media == "application/json" else (b"content-type", media.encode())
    headers = [kind, (b"content-length", b"%d" % len(body))]
    if extra:
        headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items())
    return headers


async def answer_infer(
    state: ServerState, scope: Scope, receive: Receive, model: str, version: str | None
) -> Answer:
    """``(status, headers, body)`` of one ``POST .../infer``; every error is answered here
    (with its status and a message that never holds payload values)."""
    try:
        body, media, extra = await state.infer_v2(
            Incoming(scope, receive), model, _parse_version(version)
        )
        return 200, _headers(body, media, extra), body
    except Exception as exc:
        body = orjson.dumps({"error": public_message(exc)})
        return error_status(exc), _headers(body, "application/json", error_headers(exc)), body


class _InferEndpoint:
    """``POST .../infer`` as a bare ASGI app behind the router (the data plane's edge answers
    these requests before they reach it: ``serving.edge``)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = scope["path_params"]
        status, headers, body = await answer_infer(
            self.state, scope, receive, params["model"], params.get("version")
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# The infer paths the edge answers (``InferEdge.target`` matches them without a regex): the
# same segments as Starlette's ``{name}`` (one or more characters other than "/"), against the
# whole path.
INFER_PATTERNS = (
    re.compile(r"/v2/models/(?P<model>[^/]+)/infer"),
    re.compile(r"/v2/models/(?P<model>[^/]+)/versions/(?P<version>[^/]+)/infer"),
)


def routes(state: ServerState) -> list[BaseRoute]:
    plane = state.plane

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        ok = plane.ready()
        return JSONResponse({"ready": ok}, 200 if ok else 503)

    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": "modelport", "version": __version__, "extensions": EXTENSIONS})

    @v2_errors
    async def model_metadata(request: Request) -> Response:
        info = plane.info(request.path_params["model"], _version(request))
        inputs, outputs = tensor_descriptors(info)
        return JSONResponse(
            {
                "name": info.name,
                "versions": [str(v) for v in info.versions],
                "platform": info.platform,
                "inputs": inputs,
                "outputs": outputs,
                "parameters": {"version": str(info.version), "digest": info.digest},
            }
        )

    @v2_errors
    async def model_ready(request: Request) -> Response:
        name = request.path_params["model"]
        ok = plane.model_ready(name, _version(request))
        return JSONResponse({"name": name, "ready": ok}, 200 if ok else 503)

    infer = _InferEndpoint(state)

    @v2_errors
    async def repository_index(request: Request) -> Response:
        return JSONResponse(
            [
                {
                    "name": s.model,
                    "version": str(s.version),
                    "state": {"ready": "READY", "loading": "LOADING"}.get(s.state, "UNAVAILABLE"),
                    "reason": s.reason,
                }
                for s in plane.statuses()
            ]
        )

    return [
        # predictions first: the router tries routes in order and they are the hot path
        Route("/v2/models/{model}/infer", infer, methods=["POST"]),
        Route("/v2/models/{model}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/repository/index", repository_index, methods=["POST"]),
        Route("/v2/models/{model}", model_metadata, methods=["GET"]),
        Route("/v2/models/{model}/versions/{version}", model_metadata, methods=["GET"]),
        Route("/v2/models/{model}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{model}/versions/{version}/ready", model_ready, methods=["GET"]),
    ]
