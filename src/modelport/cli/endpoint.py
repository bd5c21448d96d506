"""A small JSON-over-HTTP client for the commands that ask a running ``modelport serve``.

Standard library only (httpx is a test dependency). Every failure is a ``ModelportError`` that
names the URL and says what to do; the CLI maps them to exit codes in one place::

    cannot connect, timed out, TLS failed, HTTP 502/503/504  StoreUnavailableError (exit 6)
    HTTP 400/413/415/422                                     InvalidInputError     (exit 2)
    HTTP 404                                                 NotFoundError         (exit 3)
    any other failure, or an answer that is not JSON         ModelportError        (exit 1)

Redirects of GET requests are followed only within the same scheme, host and port; a redirected
POST is an error (urllib would resend it as a GET without its body). The transport is a seam:
``EndpointClient(url, transport=...)`` takes any callable with ``Transport``'s signature.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol

import orjson

from modelport._version import __version__
from modelport.core.errors import (
    InvalidInputError,
    ModelportError,
    NotFoundError,
    StoreUnavailableError,
)

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_TIMEOUT_S",
    "MAX_RESPONSE_BYTES",
    "EndpointClient",
    "Reply",
    "Transport",
    "UrllibTransport",
    "check_endpoint",
]

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_SERVER_DOWN_HINT = (
    "start it with `modelport serve REF --port PORT`, or give the right ENDPOINT "
    "(argument, --endpoint or MODELPORT_ENDPOINT)"
)


def check_endpoint(url: str) -> str:
    """``url`` without its trailing ``/`` if it is an http(s) URL with a host; else an error."""
    parsed = urllib.parse.urlsplit(url.strip())
    shown = url[:100]
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidInputError(
            f"endpoint {shown!r} is not an http(s) URL; give one like {DEFAULT_ENDPOINT}"
        )
    if parsed.username is not None or parsed.password is not None:
        raise InvalidInputError(
            "endpoint URLs must not carry credentials (user:password@); remove them"
        )
    if parsed.query or parsed.fragment:
        raise InvalidInputError(f"endpoint {shown!r} must not have a query or a fragment")
    try:
        parsed.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidInputError(f"endpoint {shown!r} has an invalid port") from exc
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, headers (lower-case names) and the body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport(Protocol):
    def __call__(self, request: urllib.request.Request, timeout: float) -> Reply:
        """Send ``request``; any HTTP status is a ``Reply``; a failure to get one raises
        ``StoreUnavailableError``."""
        ...


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if req.get_method() != "GET":  # urllib would turn a POST into a GET without its body
            raise ModelportError(
                f"{req.full_url} redirected a {req.get_method()} to {newurl[:100]}; give the "
                "final URL as the endpoint"
            )
        if _origin(newurl) != _origin(req.full_url):
            raise ModelportError(
                f"{req.full_url} redirected to another host ({newurl[:100]}); modelport follows "
                "redirects only on the same host: give the final URL as the endpoint"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _read(stream: IO[bytes], url: str) -> bytes:
    body = stream.read(MAX_RESPONSE_BYTES + 1)
    if len(body) > MAX_RESPONSE_BYTES:
        raise ModelportError(f"the answer of {url} is larger than {MAX_RESPONSE_BYTES} bytes")
    return body


class UrllibTransport:
    """The default transport: ``urllib`` with same-origin redirects and proxies from the
    environment (``no_proxy`` is honoured)."""

    def __init__(self) -> None:
        self._opener = urllib.request.OpenerDirector()  # http(s) only: no file:, ftp:, data:
        for handler in (
            urllib.request.ProxyHandler(),
            urllib.request.HTTPHandler(),
            urllib.request.HTTPSHandler(),
            urllib.request.HTTPDefaultErrorHandler(),
            _SameOriginRedirects(),
            urllib.request.HTTPErrorProcessor(),
        ):
            self._opener.add_handler(handler)

    def __call__(self, request: urllib.request.Request, timeout: float) -> Reply:
        url = request.full_url
        try:
            try:
                with self._opener.open(request, timeout=timeout) as response:
                    return Reply(response.status, _headers(response.headers), _read(response, url))
            except urllib.error.HTTPError as exc:  # an answer with an error status
                with exc:
                    return Reply(exc.code, _headers(exc.headers), _read(exc, url))
        except urllib.error.URLError as exc:
            raise _unreachable(url, exc.reason) from exc
        except (TimeoutError, ConnectionError, ssl.SSLError, http.client.HTTPException) as exc:
            raise _unreachable(url, exc) from exc


def _headers(message: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in message.items()} if message is not None else {}


def _unreachable(url: str, reason: object) -> StoreUnavailableError:
    if isinstance(reason, TimeoutError):
        why = "timed out (raise --timeout if the server is busy)"
    elif isinstance(reason, ConnectionRefusedError):
        why = "connection refused: no server is listening there"
    elif isinstance(reason, ssl.SSLError):
        why = f"the TLS handshake failed ({getattr(reason, 'reason', None) or reason})"
    elif isinstance(reason, http.client.HTTPException | ConnectionError):
        why = f"the connection broke ({type(reason).__name__}): is it an HTTP server?"
    else:
        why = str(reason)[:200] or type(reason).__name__
    return StoreUnavailableError(
        f"cannot reach the modelport server at {url}: {why}; {_SERVER_DOWN_HINT}"
    )


class EndpointClient:
    """GET and POST JSON documents under one base URL (``http://host:port[/prefix]``)."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: Transport | None = None,
    ) -> None:
        if not timeout > 0:
            raise InvalidInputError(f"the timeout must be more than 0 seconds, got {timeout}")
        self.endpoint = check_endpoint(endpoint)
        self.timeout = timeout
        self._transport: Transport = transport or UrllibTransport()

    def url(self, path: str, params: Mapping[str, object | None] | None = None) -> str:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        return self.endpoint + path + (f"?{query}" if query else "")

    def get_json(self, path: str, params: Mapping[str, object | None] | None = None) -> Any:
        url = self.url(path, params)  # http(s): checked by check_endpoint
        return self._call(urllib.request.Request(url, method="GET"))  # noqa: S310

    def post_json(self, path: str, body: Any) -> Any:
        data = orjson.dumps(body)
        request = urllib.request.Request(self.url(path), data=data, method="POST")  # noqa: S310
        request.add_header("Content-Type", "application/json")
        return self._call(request)

    def _call(self, request: urllib.request.Request) -> Any:
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", f"modelport-cli/{__version__}")
        url = request.full_url
        reply = self._transport(request, self.timeout)
        document, parsed = _json(reply.body)
        if 200 <= reply.status < 300:
            if not parsed:
                raise ModelportError(
                    f"{url} answered HTTP {reply.status} with a body that is not JSON; is "
                    f"{self.endpoint} a modelport server?"
                )
            return document
        raise _http_error(url, self.endpoint, reply, document if parsed else None)


def _json(body: bytes) -> tuple[Any, bool]:
    try:
        return orjson.loads(body), True
    except orjson.JSONDecodeError:
        return None, False


def _http_error(url: str, endpoint: str, reply: Reply, document: Any) -> ModelportError:
    status = reply.status
    message = document.get("error") if isinstance(document, Mapping) else None
    said = f": {str(message)[:500]}" if message else ""
    if status == 404 and not message:
        return NotFoundError(
            f"{url} does not exist (HTTP 404): {endpoint} is not a modelport server, or one "
            "without this route; check the ENDPOINT, or upgrade the server"
        )
    if status == 404:
        return NotFoundError(f"{url} (HTTP 404){said}")
    if status in (400, 413, 415, 422):
        return InvalidInputError(f"{url} refused the request (HTTP {status}){said}")
    if status in (502, 503, 504):
        retry = reply.headers.get("retry-after")
        when = f"retry in {retry} s" if retry else "retry later"
        return StoreUnavailableError(
            f"the modelport server at {endpoint} cannot answer now (HTTP {status}{said}); {when}"
        )
    if status in (401, 403):
        return ModelportError(f"{url} refused access (HTTP {status}){said}")
    return ModelportError(f"{url} failed (HTTP {status}){said}; see the server's log")
