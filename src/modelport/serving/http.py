"""HTTP plumbing shared by every protocol: fast JSON, bounded bodies, deadlines, error mapping."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope

from modelport.core.clock import Clock
from modelport.core.errors import (
    DeadlineExceededError,
    InvalidInputError,
    ModelportError,
    NotFoundError,
    PredictionError,
    RequestTooLargeError,
    UnavailableError,
    UnsupportedMediaTypeError,
)
from modelport.serving.admission import AdmissionPolicy, parse_timeout, retry_after_header

__all__ = [
    "Incoming",
    "JSONResponse",
    "deadline_for",
    "error_headers",
    "error_status",
    "public_message",
    "read_body",
    "read_json",
]

log = logging.getLogger("modelport.serving")

# Content types that can carry code: never accepted on the wire.
CODE_BEARING = ("python-pickle", "x-pickle", "pickle", "joblib", "x-python-serialize")


class Incoming:
    """The parts of an HTTP request the hot routes read, straight from ASGI: headers as one
    dict (lower-case names) and the body stream, without building a Starlette ``Request``."""

    __slots__ = ("_receive", "headers")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.headers: dict[str, str] = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        self._receive = receive

    async def stream(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            body = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                return


class _HasBody(Protocol):
    @property
    def headers(self) -> Mapping[str, str]: ...

    def stream(self) -> AsyncIterator[bytes]: ...


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def error_status(exc: BaseException) -> int:
    """HTTP status of an error (serving is the only layer that knows HTTP)."""
    if isinstance(exc, RequestTooLargeError):
        return 413
    if isinstance(exc, UnsupportedMediaTypeError):
        return 415
    if isinstance(exc, InvalidInputError):
        return 400
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, UnavailableError):
        return 503
    if isinstance(exc, DeadlineExceededError):
        return 504
    return 500


def public_message(exc: BaseException) -> str:
    """What a client may read: our own messages for request problems; nothing internal else."""
    if isinstance(
        exc, InvalidInputError | NotFoundError | UnavailableError | DeadlineExceededError
    ):
        return str(exc)
    if isinstance(exc, PredictionError):
        return "the model failed to predict for this request"
    if isinstance(exc, ModelportError):
        return f"request failed ({exc.code})"
    log.error("unexpected error while serving a request", exc_info=exc)
    return "internal server error"


def error_headers(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, UnavailableError):
        return {"Retry-After": retry_after_header(exc.retry_after)}
    return {}


async def read_body(request: _HasBody, limit: int) -> bytes:
    """The request body, refused with ``RequestTooLargeError`` past ``limit`` bytes (early when
    Content-Length says so, else while streaming)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidInputError("Content-Length must be a number")
        if int(declared) > limit:
            raise RequestTooLargeError(f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def check_content_type(request: _HasBody, allowed: tuple[str, ...]) -> str:
    """The request's media type; code-bearing or unlisted types are refused with 415."""
    raw = request.headers.get("content-type", "")
    media = raw.split(";", 1)[0].strip().lower()
    if any(marker in media for marker in CODE_BEARING):
        raise UnsupportedMediaTypeError(
            "serialized Python objects are never accepted; send JSON or CSV"
        )
    if media and media not in allowed:
        raise UnsupportedMediaTypeError(
            f"content type {media[:60]!r} is not supported here; use {' or '.join(allowed)}"
        )
    return media


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInputError("request body is not valid JSON") from None


async def read_json(request: Request, limit: int) -> Any:
    check_content_type(request, ("application/json",))
    return parse_json(await read_body(request, limit))


def deadline_for(
    request: _HasBody, parameter: object, policy: AdmissionPolicy, clock: Clock
) -> float | None:
    """Absolute deadline (``clock.monotonic()``) from a timeout header or request parameter."""
    header = request.headers.get("x-request-timeout") or request.headers.get("request-timeout")
    if header is None:
        header = request.headers.get("grpc-timeout")
    timeout = parse_timeout(header, parameter, policy)
    return None if timeout is None else clock.monotonic() + timeout
