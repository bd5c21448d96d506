"""Alert notifications to a webhook, in the shape of Alertmanager's webhook (version 4).

Only allowed receivers are reached, because a webhook URL is a classic server-side request forgery
vector:

- at construction: the scheme is http or https, the URL carries no user info, and its host is in
  ``allowed_hosts`` (exact host names, ``*.example.com`` suffix patterns, or IP addresses listed
  exactly; an IP literal never matches a pattern);
- at each delivery the host is resolved and every address checked: link-local (the cloud metadata
  address 169.254.169.254, fe80::/10), multicast, unspecified and reserved addresses are always
  refused; loopback, private and other non-global addresses only when the host (or that address)
  is listed exactly, never through a ``*.`` pattern. The connection goes to the checked address
  (no second lookup an attacker's DNS could answer differently) with the URL's host in the
  ``Host`` header and TLS server name. Redirects are never followed: a 3xx is a failed delivery.

``send`` only enqueues (bounded; a full queue drops the message and counts it); one daemon thread
delivers, retrying connection errors and 5xx / 408 / 429 answers with exponential backoff.
Counters in ``stats`` are messages (one per ``send`` call). Only the standard library speaks HTTP.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import orjson

from modelport.core.errors import InvalidInputError
from modelport.monitoring.alert_events import AlertEvent
from modelport.monitoring.webhook import (
    WebhookTarget,
    check_addresses,
    parse_webhook_url,
    webhook_payload,
)

# Resolver and system_resolver are importable from here for tests and custom resolution.
__all__ = ["NotifierStats", "WebhookNotifier"]

logger = logging.getLogger(__name__)

Resolver = Callable[[str, int], Sequence[str]]
"""``(host, port)`` → the IP addresses it resolves to."""
_RETRY_STATUS = frozenset({408, 429})
_MAX_BACKOFF_S = 60.0
_MAX_RESPONSE = 64 * 1024


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``getaddrinfo`` gives for ``host`` (TCP), without duplicates, in order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class NotifierStats:
    """Messages delivered, failed (after their retries, or refused), dropped (queue full or
    closed), and retry attempts; ``last_error`` describes the latest failure."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0
    retried: int = 0
    last_error: str | None = None


class _Retry(Exception):
    """A delivery attempt that may succeed later."""


class _Failed(Exception):
    """A delivery that will not succeed by retrying."""


class WebhookNotifier:
    """Posts alert events to one webhook URL from a background thread."""

    def __init__(
        self,
        url: str,
        allowed_hosts: Iterable[str],
        *,
        timeout_s: float = 5.0,
        max_queue: int = 1000,
        retries: int = 3,
        backoff_s: float = 0.5,
        headers: Mapping[str, str] | None = None,
        resolver: Resolver = system_resolver,
        sleep: Callable[[float], object] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        receiver: str = "modelport",
    ) -> None:
        self._target: WebhookTarget = parse_webhook_url(url, allowed_hosts, headers)
        if not (timeout_s > 0 and max_queue >= 1 and retries >= 0 and backoff_s >= 0):
            raise InvalidInputError(
                "webhook notifier needs timeout_s > 0, max_queue >= 1, retries >= 0 and "
                "backoff_s >= 0"
            )
        self._timeout_s = timeout_s
        self._max_queue = max_queue
        self._retries = retries
        self._backoff_s = backoff_s
        self._resolver = resolver
        self._abort = threading.Event()
        self._sleep = sleep if sleep is not None else self._abort.wait
        self._ssl_context = ssl_context
        self._receiver = receiver
        self._queue: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._stats = NotifierStats()

    @property
    def target(self) -> str:
        """``scheme://host:port`` of the receiver (the path may hold a secret; never shown)."""
        return self._target.shown

    @property
    def stats(self) -> NotifierStats:
        with self._cond:
            return self._stats

    def start(self) -> None:
        """Start the delivery thread (``send`` does it too). Idempotent."""
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="modelport-webhook", daemon=True
                )
                self._thread.start()

    def send(self, events: Iterable[AlertEvent]) -> bool:
        """Queue one message with ``events``; False when it was dropped (queue full, closed)."""
        batch = list(events)
        if not batch:
            return True
        body = orjson.dumps(webhook_payload(batch, receiver=self._receiver))
        with self._cond:
            if self._closed or len(self._queue) + self._busy >= self._max_queue:
                self._count(dropped=1, error="queue full" if not self._closed else "closed")
                return False
            self._queue.append(body)
            self._cond.notify_all()
        self.start()
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until every queued message is delivered or has failed; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Stop taking messages, deliver the queued ones for up to ``timeout`` seconds, stop.
        False when the thread had to be abandoned (the messages it still held are dropped)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if not thread.is_alive():
            return True
        self._abort.set()
        with self._cond:
            self._cond.notify_all()
        return False

    # -- delivery thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._closed)
                if self._abort.is_set() or not self._queue:
                    self._count(dropped=len(self._queue))
                    self._queue.clear()
                    self._cond.notify_all()
                    return
                body = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(body)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, body: bytes) -> None:
        error = "not attempted"
        for attempt in range(self._retries + 1):
            if attempt:
                if self._abort.is_set():
                    break
                self._count(retried=1)
                self._sleep(min(self._backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S))
                if self._abort.is_set():
                    break
            try:
                self._post(body)
            except _Retry as exc:
                error = str(exc)
                continue
            except _Failed as exc:
                error = str(exc)
                break
            except Exception as exc:  # a broken resolver...: fail this message, keep the thread
                logger.exception("alert webhook %s: unexpected error", self._target.shown)
                error = f"unexpected {type(exc).__name__}"
                break
            self._count(sent=1)
            return
        logger.warning("alert webhook %s: delivery failed: %s", self._target.shown, error)
        self._count(failed=1, error=error)

    def _post(self, body: bytes) -> None:
        target = self._target
        try:
            addresses = [target.host] if target.ip else self._resolver(target.host, target.port)
        except OSError as exc:
            raise _Retry(f"cannot resolve {target.host!r}: {exc}") from exc
        try:
            allowed = check_addresses(target, addresses)
        except InvalidInputError as exc:
            raise _Failed(str(exc)) from exc
        last: Exception | None = None
        for address in allowed:
            conn = self._connection(address)
            try:
                conn.request("POST", target.path, body=body, headers=target.headers)
                response = conn.getresponse()
                response.read(_MAX_RESPONSE)
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                last = exc
                continue
            finally:
                conn.close()
            if 200 <= status < 300:
                return
            if status >= 500 or status in _RETRY_STATUS:
                raise _Retry(f"the receiver answered HTTP {status}")
            if 300 <= status < 400:
                raise _Failed(
                    f"the receiver answered a redirect ({status}), which is not "
                    "followed; configure the final URL"
                )
            raise _Failed(f"the receiver answered HTTP {status}; check the URL and the headers")
        raise _Retry(f"cannot reach {target.shown}: {type(last).__name__}: {last}")

    def _connection(self, address: str) -> http.client.HTTPConnection:
        target = self._target
        if target.scheme == "https":
            if self._ssl_context is None:  # only the delivery thread gets here
                self._ssl_context = ssl.create_default_context()
            return _PinnedHTTPSConnection(
                target.host, target.port, address, self._timeout_s, self._ssl_context
            )
        return _PinnedHTTPConnection(target.host, target.port, address, self._timeout_s)

    def _count(
        self,
        *,
        sent: int = 0,
        failed: int = 0,
        dropped: int = 0,
        retried: int = 0,
        error: str | None = None,
    ) -> None:
        with self._cond:  # re-entrant
            s = self._stats
            self._stats = NotifierStats(
                sent=s.sent + sent,
                failed=s.failed + failed,
                dropped=s.dropped + dropped,
                retried=s.retried + retried,
                last_error=error if error is not None else s.last_error,
            )


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to an already-checked address; ``Host`` is still the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an already-checked address; certificate and SNI are for the URL's host."""

    def __init__(
        self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        try:
            self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise
