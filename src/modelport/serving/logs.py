"""Logs of the data plane: the request id on every record, JSON or text lines, an access log.

``RequestContext`` (pure ASGI, outermost) gives every HTTP request its id: the client's
``X-Request-ID`` when it is header-safe, else a fresh one. It sets it with ``use_request_id``
before the app runs and returns the final id (a V2 body ``id`` may have replaced it) in the
response's ``X-Request-ID``. With ``access_log`` it also writes one line per prediction request
to the ``modelport.access`` logger: method, path (never the query), status, latency, the model
and version that answered, request id. Never a payload value.

``configure_logging`` installs one handler on the root logger: ``json`` writes one JSON object
per record (``time``, ``level``, ``logger``, ``message``, ``request_id`` and the access fields),
``text`` a readable line. modelport's loggers log at the configured level, others warnings and
above (so library chatter stays out). The request id is that of the request the record was
logged for, or null outside requests (start-up, background tasks, model threads).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.core.clock import Clock, SystemClock
from modelport.serving.config import LogFormat, LogLevel
from modelport.serving.instrument import classify
from modelport.serving.requestid import (
    current_request_id,
    new_request_id,
    use_request_headers,
    use_request_id,
    valid_request_id,
)

__all__ = [
    "ACCESS_FIELDS",
    "ACCESS_LOGGER",
    "JsonFormatter",
    "RequestContext",
    "TextFormatter",
    "answer_headers",
    "bind_incoming",
    "bind_request",
    "configure_logging",
    "log_access",
    "note_answer",
    "outgoing_header",
]

ACCESS_LOGGER = "modelport.access"
ACCESS_FIELDS = ("method", "path", "status", "latency_ms", "model", "version")
_HEADER = b"x-request-id"
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_access = logging.getLogger(ACCESS_LOGGER)


@dataclass(slots=True)
class _Request:
    """What is known about the request running in this context (the version that answered)."""

    model: str = ""
    version: str = ""


_REQUEST: ContextVar[_Request | None] = ContextVar("modelport_request", default=None)


def bind_request(request_id: str) -> None:
    """Make ``request_id`` the id of the request running in this context (and its log lines')."""
    use_request_id(request_id)
    _REQUEST.set(_Request())


def note_answer(model: str, version: int) -> None:
    """Record, for the request being served (if any), the version that answers it."""
    request = _REQUEST.get()
    if request is not None:
        request.model = model
        request.version = str(version)


def _logged_request_id() -> str | None:
    return current_request_id() if _REQUEST.get() is not None else None


def bind_incoming(headers: Sequence[tuple[bytes, bytes]]) -> str:
    """Bind this request's id (the client's header-safe ``X-Request-ID``, else a fresh one)
    and its headers (for sticky routing) to the current context; return the id."""
    use_request_headers(headers)
    given = None
    for name, value in headers:
        if name == _HEADER:
            given = valid_request_id(value.decode("latin-1"))
            break
    request_id = given or new_request_id()
    bind_request(request_id)
    return request_id


def outgoing_header(request_id: str) -> tuple[bytes, bytes]:
    """The response's ``X-Request-ID``: the final id (a V2 body ``id`` may have replaced the
    one bound at the start), else ``request_id``."""
    final = current_request_id()
    if final is not request_id:
        final = valid_request_id(final) or request_id
    return _HEADER, final.encode()


def answer_headers() -> list[tuple[bytes, bytes]]:
    """``X-Model-Name`` / ``X-Model-Version``: the version that answered the request (every
    protocol's response names it, MLflow's and TF Serving's bodies included), if one did."""
    request = _REQUEST.get()
    if request is None or not request.version:
        return []
    return [
        (b"x-model-name", request.model.encode()),
        (b"x-model-version", request.version.encode()),
    ]


def log_access(method: str, path: str, status: int, seconds: float) -> None:
    """One ``modelport.access`` line for a prediction request (never a payload value)."""
    if not _access.isEnabledFor(logging.INFO):
        return
    request = _REQUEST.get() or _Request()
    latency_ms = round(seconds * 1000.0, 3)
    _access.info(
        "%s %s %d %.3fms",
        method,
        path,
        status,
        latency_ms,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "latency_ms": latency_ms,
            "model": request.model or None,
            "version": request.version or None,
        },
    )


class RequestContext:
    """Pure ASGI middleware: request id in and out, and the access log (see module doc)."""

    def __init__(
        self, app: ASGIApp, *, access_log: bool = False, clock: Clock | None = None
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.clock = clock or SystemClock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = bind_incoming(scope["headers"])
        target = classify(scope["method"], scope["path"]) if self.access_log else None
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    outgoing_header(request_id),
                    *answer_headers(),
                ]
            await send(message)

        if target is None:
            await self.app(scope, receive, sending)
            return
        started = self.clock.monotonic()
        try:
            await self.app(scope, receive, sending)
        finally:
            log_access(scope["method"], scope["path"], status, self.clock.monotonic() - started)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _logged_request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see module doc)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key in ACCESS_FIELDS:
            if key in record.__dict__:
                out[key] = record.__dict__[key]
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """``2026-01-01 12:00:00,123 INFO modelport.serving: message [request_id=...]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{text} [request_id={request_id}]" if request_id else text


class _Handler(logging.StreamHandler[IO[str]]):
    """The handler ``configure_logging`` installs (and replaces when called again)."""


def configure_logging(
    log_format: LogFormat = "text", level: LogLevel = "info", stream: IO[str] | None = None
) -> logging.Handler:
    """Send every log record to ``stream`` (default stderr) in ``log_format``; returns the
    handler (remove it from the root logger to undo). Idempotent: a handler installed by an
    earlier call is replaced."""
    chosen = _LEVELS[level]
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(max(chosen, logging.WARNING))
    logging.getLogger("modelport").setLevel(chosen)
    return handler
