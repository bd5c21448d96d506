"""Admission control of the data plane, as pure decisions: body size, requests in flight per
worker, and per-request timeouts. The server applies them before any work is queued; overload
is answered at once with a ``Retry-After`` hint rather than by letting latency grow.

Timeouts come from a header or from the request's ``timeout`` parameter, in seconds:

- ``X-Request-Timeout: 2.5`` or ``Request-Timeout: 2.5`` (decimal seconds);
- ``grpc-timeout: 500m`` (gRPC style: up to 8 digits and a unit ``H M S m u n``);
- V2 ``"parameters": {"timeout": 2.5}`` (a number of seconds, or a string as in the headers).

When both a header and a parameter are given the shorter one wins; the result is clamped to
``max_timeout_s``; with neither, ``default_timeout_s`` applies (None: no deadline).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from modelport.core.errors import InvalidInputError, RequestTooLargeError

__all__ = [
    "TIMEOUT_HEADERS",
    "AdmissionPolicy",
    "InflightLimiter",
    "check_body_size",
    "check_content_length",
    "parse_timeout",
    "retry_after_header",
    "timeout_header",
]

MIB = 1024 * 1024
#: Headers that carry a per-request timeout, in order of preference (lower case, as in ASGI).
TIMEOUT_HEADERS: tuple[str, ...] = ("x-request-timeout", "request-timeout", "grpc-timeout")
_GRPC = re.compile(r"([0-9]{1,8})([HMSmun])")
_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{0,9})?|\.[0-9]{1,9}")
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_MAX_RETRY_AFTER = 3600
_HINT = "a positive number of seconds (2.5) or a gRPC timeout (500m, 2S)"


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """Limits applied to every request of one worker process."""

    max_body_bytes: int = 8 * MIB
    max_inflight: int = 256
    default_timeout_s: float | None = None
    max_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_inflight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, not {value!r}")
        if not _positive(self.max_timeout_s):
            raise InvalidInputError(f"max_timeout_s must be positive, not {self.max_timeout_s!r}")
        default = self.default_timeout_s
        if default is not None and not _positive(default):
            raise InvalidInputError(f"default_timeout_s must be positive or None, not {default!r}")
        if default is not None and default > self.max_timeout_s:
            raise InvalidInputError(
                f"default_timeout_s ({default}) is over max_timeout_s ({self.max_timeout_s})"
            )


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _parse_text(text: str, source: str) -> float:
    value = text.strip()
    grpc = _GRPC.fullmatch(value)
    if grpc is not None:
        seconds = int(grpc.group(1)) * _UNITS[grpc.group(2)]
    elif _SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        shown = repr(value) if len(value) <= 32 else "a value"
        raise InvalidInputError(f"{source} must be {_HINT}; got {shown}")
    if seconds <= 0:
        raise InvalidInputError(f"{source} must be more than 0 seconds")
    return seconds


def _parse_parameter(value: object) -> float:
    source = "request parameter 'timeout'"
    if isinstance(value, str):
        return _parse_text(value, source)
    if isinstance(value, int | float) and _positive(value):
        return float(value)
    raise InvalidInputError(f"{source} must be {_HINT}; got {type(value).__name__}")


def parse_timeout(
    header_value: str | None, parameter: object | None, policy: AdmissionPolicy
) -> float | None:
    """The timeout of one request in seconds, or None for no deadline.

    ``header_value`` is the value of whichever ``TIMEOUT_HEADERS`` header the request carries
    (see ``timeout_header``); ``parameter`` the request's ``timeout`` parameter. Raises
    ``InvalidInputError`` for a value that does not parse or is not positive.
    """
    found = []
    if header_value is not None:
        found.append(_parse_text(header_value, "the request timeout header"))
    if parameter is not None:
        found.append(_parse_parameter(parameter))
    if not found:
        return policy.default_timeout_s
    return min(min(found), policy.max_timeout_s)


def timeout_header(headers: Mapping[str, str]) -> str | None:
    """The first ``TIMEOUT_HEADERS`` value present in ``headers`` (lower-case or
    case-insensitive keys, as Starlette's ``Headers``)."""
    for name in TIMEOUT_HEADERS:
        value = headers.get(name)
        if value is not None:
            return value
    return None


def check_content_length(header_value: str | None, policy: AdmissionPolicy) -> int | None:
    """The declared body size, checked against ``max_body_bytes`` before reading the body."""
    if header_value is None:
        return None
    text = header_value.strip()
    if not text.isdigit() or len(text) > 19:
        raise InvalidInputError("the Content-Length header must be a non-negative integer")
    size = int(text)
    check_body_size(size, policy)
    return size


def check_body_size(size: int, policy: AdmissionPolicy) -> None:
    """Raise ``RequestTooLargeError`` once a body (read so far) is over ``max_body_bytes``."""
    if size > policy.max_body_bytes:
        raise RequestTooLargeError(
            f"the request body is over the limit of {policy.max_body_bytes} bytes; send smaller"
            " batches or raise max_body_bytes"
        )


class InflightLimiter:
    """Counts requests in flight in one worker; refuses beyond ``limit``.

    Used from the event loop thread only (no locking). Every successful ``try_acquire()`` must
    be paired with one ``release()``.
    """

    def __init__(self, limit: int, retry_after_s: float = 1.0) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInputError(
                f"the in-flight limit must be a positive integer, not {limit!r}"
            )
        if not _positive(retry_after_s):
            raise InvalidInputError(f"retry_after_s must be positive, not {retry_after_s!r}")
        self._limit = limit
        self._retry_after_s = retry_after_s
        self._inflight = 0
        self._unseen = 0  # of them, requests whose siblings queue where they are not counted
        self._rejected = 0
        self._streak = 0  # refusals since the last successful acquire

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def rejected(self) -> int:
        """Requests refused so far (for metrics)."""
        return self._rejected

    def try_acquire(self) -> bool:
        if self._inflight >= self._limit:
            self._rejected += 1
            self._streak += 1
            return False
        self._inflight += 1
        self._streak = 0
        return True

    def enter_unseen(self) -> None:
        """Count a request whose admission is decided elsewhere, never refusing it: a gRPC
        call, bounded by the gRPC server, whose siblings wait in gRPC's own queue where this
        worker cannot count them. Pair it with ``leave_unseen()``."""
        self._inflight += 1
        self._unseen += 1

    def leave_unseen(self) -> None:
        if self._unseen == 0:
            raise RuntimeError("InflightLimiter.leave_unseen() called more than enter_unseen()")
        self._unseen -= 1
        self._inflight -= 1

    def contended(self) -> bool:
        """Whether another request may be on its way to a model: more than one in flight, or
        one whose protocol queues the others where they cannot be counted (``enter_unseen``).
        False only when this worker is provably serving a single request."""
        return self._inflight > 1 or self._unseen > 0

    def release(self) -> None:
        if self._inflight == 0:
            raise RuntimeError("InflightLimiter.release() called more often than try_acquire()")
        self._inflight -= 1

    def retry_after_s(self) -> float:
        """When a refused client should retry: the configured base, doubled per full multiple
        of ``limit`` refusals since the limiter last had room, up to 16 times: sustained
        overload spreads retries out instead of bringing them back at once."""
        return self._retry_after_s * (1 << min(4, self._streak // self._limit))


def retry_after_header(seconds: float) -> str:
    """A ``Retry-After`` header value: whole seconds, rounded up, at least 1 (capped at 1 h)."""
    if math.isnan(seconds) or seconds <= 1:
        return "1"
    if math.isinf(seconds):
        return str(_MAX_RETRY_AFTER)
    return str(min(math.ceil(seconds), _MAX_RETRY_AFTER))
