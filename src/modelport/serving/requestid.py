"""The id of the request being served, shared by the routes, the prediction log and the logs.

A client may name its request: the V2 body ``id`` (REST and gRPC) wins, else the
``X-Request-ID`` header; otherwise the server makes one up. The id is what ground-truth
feedback refers to later, so every response carries it back in ``X-Request-ID``.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any

__all__ = [
    "HEADER",
    "current_request_id",
    "new_request_id",
    "request_body",
    "request_headers",
    "use_request_body",
    "use_request_headers",
    "use_request_id",
    "valid_request_id",
]

HEADER = "x-request-id"
MAX_LENGTH = 256
_SAFE = re.compile(r"[\x21-\x7e]{1,256}")  # visible ASCII: safe in a header and a log line
_CURRENT: ContextVar[str | None] = ContextVar("modelport_request_id", default=None)
# What a sticky A/B key may be read from (``serving.router.StickyKey``): the request's raw
# headers, bound with its id, and its parsed JSON body, bound by the protocol that parsed it.
_HEADERS: ContextVar[Sequence[tuple[bytes, bytes]]] = ContextVar(
    "modelport_request_headers", default=()
)
_BODY: ContextVar[Mapping[str, Any] | None] = ContextVar("modelport_request_body", default=None)


# A random prefix per process and a counter: unique like a uuid4 (ids need not be secret)
# for an eighth of its cost on every request that comes without an id.
_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count(1)


def _reseed() -> None:
    global _PREFIX, _COUNTER
    _PREFIX, _COUNTER = os.urandom(8).hex(), itertools.count(1)


os.register_at_fork(after_in_child=_reseed)  # a forked worker must not repeat its parent's ids


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):016x}"


def valid_request_id(value: str | None) -> str | None:
    """``value`` if a client-chosen id can be used as is (header-safe), else None."""
    if value is None or _SAFE.fullmatch(value) is None:
        return None
    return value


def use_request_id(value: str) -> None:
    """Make ``value`` the id of the request running in this context."""
    _CURRENT.set(value)


def current_request_id() -> str:
    """The id of the request running in this context (one is made up if none was set)."""
    value = _CURRENT.get()
    if value is None:
        value = new_request_id()
        _CURRENT.set(value)
    return value


def use_request_headers(headers: Sequence[tuple[bytes, bytes]]) -> None:
    """Bind the raw (ASGI) headers of the request running in this context."""
    _HEADERS.set(headers)


def request_headers() -> dict[str, str]:
    """The current request's headers, names lower-cased (the first of repeated ones)."""
    out: dict[str, str] = {}
    for name, value in _HEADERS.get():
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


def use_request_body(body: Mapping[str, Any] | None) -> None:
    """Bind the parsed JSON body of the request running in this context."""
    _BODY.set(body)


def request_body() -> Mapping[str, Any] | None:
    return _BODY.get()
