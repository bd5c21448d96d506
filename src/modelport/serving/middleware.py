"""ASGI middleware of the data plane: the per-worker in-flight limit."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from modelport.serving.admission import InflightLimiter, retry_after_header

__all__ = ["InflightLimit", "refusal"]

# Probes and metadata must answer even when the worker is saturated.
EXEMPT_PREFIXES = ("/v2/health", "/ping", "/health", "/metrics")


def refusal(limiter: InflightLimiter) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """``(status, headers, body)`` of a request refused at the in-flight limit."""
    body = orjson.dumps({"error": "server is at its in-flight request limit; retry later"})
    return (
        503,
        [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", retry_after_header(limiter.retry_after_s()).encode()),
        ],
        body,
    )


class InflightLimit:
    """Refuse requests beyond the worker's in-flight limit at once with 503 + Retry-After,
    instead of letting them queue and raise everyone's latency."""

    def __init__(self, app: ASGIApp, limiter: InflightLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        if not self.limiter.try_acquire():
            status, headers, body = refusal(self.limiter)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.limiter.release()
