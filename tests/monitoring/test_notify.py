"""Webhook notifications: URL and address policy, payload shape, and delivery to a real HTTP
server on 127.0.0.1 (retries, no redirects, bounded queue, TLS to a pinned address)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from modelport.core.clock import FakeClock
from modelport.core.errors import InvalidInputError
from modelport.monitoring.alert_events import AlertEvent
from modelport.monitoring.alert_rules import AlertRule
from modelport.monitoring.alerts import AlertEvaluator, Observation
from modelport.monitoring.notify import WebhookNotifier
from modelport.monitoring.webhook import check_addresses, parse_webhook_url, webhook_payload

WAIT_S = 10.0


# -- a real receiver -------------------------------------------------------------------------------
@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    port: int = 0
    statuses: deque[int] = field(default_factory=deque)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?token=s3cret"


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with receiver.lock:
                receiver.requests.append(
                    Received(self.path, dict(self.headers.items()), orjson.loads(body))
                )
                status = receiver.statuses.popleft() if receiver.statuses else 200
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _serve(receiver: Receiver, tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _serve(Receiver())


class Sleeps:
    """Records backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def resolver_to(*addresses: str) -> Any:
    calls: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> Sequence[str]:
        calls.append((host, port))
        return list(addresses)

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.fixture
def events() -> list[AlertEvent]:
    clock = FakeClock()
    rule = AlertRule(
        name="iris-errors", kind="error_rate", model="iris", threshold=0.1, window_s=300
    )
    evaluator = AlertEvaluator([rule], clock)
    return evaluator.evaluate(
        [Observation(model="iris", version="3", window_s=300, requests=100, errors=40)]
    )


def notifier(url: str, allowed: Sequence[str], **kwargs: Any) -> WebhookNotifier:
    kwargs.setdefault("sleep", Sleeps())
    return WebhookNotifier(url, allowed, timeout_s=5, **kwargs)


# -- URL policy (construction) ---------------------------------------------------------------------
ALLOWED = ["hooks.example.com", "*.corp.example.org", "10.0.0.5", "169.254.169.254"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///etc/passwd", "uses the 'file' scheme"),
        ("ftp://hooks.example.com/x", "uses the 'ftp' scheme"),
        ("data:text/plain,hello", "uses the 'data' scheme"),
        ("gopher://hooks.example.com/", "uses the 'gopher' scheme"),
        ("hooks.example.com/x", "uses the 'missing' scheme"),
        ("http://169.254.169.254/latest/meta-data/", "link-local, multicast"),
        ("http://[fe80::1]/", "link-local, multicast"),
        ("http://0.0.0.0:8080/", "link-local, multicast"),
        ("http://224.0.0.1/", "link-local, multicast"),
        ("http://[::ffff:169.254.169.254]/", "link-local, multicast"),
        ("http://user:pw@hooks.example.com/", "user name or password"),
        ("http://hooks.example.com@evil.example.net/", "user name or password"),
        ("http://evil.example.net/hook", "not in the allowed hosts"),
        ("http://example.com.evil.net/", "not in the allowed hosts"),
        ("http://corp.example.org/", "not in the allowed hosts"),
        ("http://xcorp.example.org/", "not in the allowed hosts"),
        ("http://10.0.0.6/", "IP address not listed"),
        ("http://hooks.example.com:99999/", "invalid port"),
        ("http://hooks.example.com:0/", "invalid port"),
        ("http://hooks.example.com\\@evil.example.net/", "backslashes"),
        ("http://hooks.example.com/a b", "spaces"),
        ("http:///no-host", "no host"),
    ],
)
def test_refused_urls(url: str, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=expected):
        WebhookNotifier(url, ALLOWED)


@pytest.mark.parametrize(
    ("url", "host", "port", "path", "exact"),
    [
        ("https://hooks.example.com/alerts", "hooks.example.com", 443, "/alerts", True),
        ("HTTP://HOOKS.EXAMPLE.COM.:8080", "hooks.example.com", 8080, "/", True),
        ("http://a.corp.example.org/x?k=v", "a.corp.example.org", 80, "/x?k=v", False),
        ("http://a.b.corp.example.org/", "a.b.corp.example.org", 80, "/", False),
        ("http://10.0.0.5:9000/h", "10.0.0.5", 9000, "/h", True),
    ],
)
def test_allowed_urls(url: str, host: str, port: int, path: str, exact: bool) -> None:
    target = parse_webhook_url(url, ALLOWED)
    assert (target.host, target.port, target.path, target.exact) == (host, port, path, exact)


def test_ipv6_literals_are_listed_exactly() -> None:
    target = parse_webhook_url("http://[::1]:8080/x", ["[::1]"])
    assert (target.host, target.ip, target.exact, target.shown) == (
        "::1",
        True,
        True,
        "http://[::1]:8080",
    )
    assert check_addresses(target, ["::1"]) == ["::1"]


def test_messages_never_show_the_path_or_query() -> None:
    with pytest.raises(InvalidInputError) as info:
        WebhookNotifier("http://evil.example.net/T0KEN?secret=abc", ALLOWED)
    assert "T0KEN" not in str(info.value)
    assert "abc" not in str(info.value)


@pytest.mark.parametrize(
    "entries", [[], ["*"], ["*.com"], ["exa mple.com"], ["-bad.com"], ["ex*.com"]]
)
def test_bad_allowed_host_entries(entries: list[str]) -> None:
    with pytest.raises(InvalidInputError, match="allowed webhook host"):
        WebhookNotifier("http://hooks.example.com/", entries)


def test_header_injection_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="webhook header 'X-Token'"):
        WebhookNotifier("http://hooks.example.com/", ALLOWED, headers={"X-Token": "a\r\nHost: x"})


# -- address policy (delivery time) ----------------------------------------------------------------
EXACT = parse_webhook_url("http://hooks.example.com/", ALLOWED)
PATTERN = parse_webhook_url("http://a.corp.example.org/", ALLOWED)


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.0.1",
        "fe80::1",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "240.0.0.1",
        "255.255.255.255",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::1",
        "not-an-ip",
    ],
)
def test_addresses_always_refused(address: str) -> None:
    for target in (EXACT, PATTERN):
        with pytest.raises(InvalidInputError, match="resolve"):
            check_addresses(target, [address])


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "192.168.1.1", "172.16.0.1", "::1", "fd00::1", "100.64.0.1"],
)
def test_private_addresses_need_an_exact_listing(address: str) -> None:
    assert check_addresses(EXACT, [address]) == [str(ipaddress.ip_address(address))]
    with pytest.raises(InvalidInputError, match="loopback or private address"):
        check_addresses(PATTERN, [address])


def test_a_listed_ip_allows_a_pattern_host_to_resolve_to_it() -> None:
    assert check_addresses(PATTERN, ["10.0.0.5"]) == ["10.0.0.5"]


def test_one_bad_address_refuses_the_host() -> None:
    assert check_addresses(PATTERN, ["8.8.8.8", "2001:4860:4860::8888"]) == [
        "8.8.8.8",
        "2001:4860:4860::8888",
    ]
    with pytest.raises(InvalidInputError):
        check_addresses(PATTERN, ["8.8.8.8", "127.0.0.1"])
    with pytest.raises(InvalidInputError, match="no address"):
        check_addresses(PATTERN, [])


# -- payload ---------------------------------------------------------------------------------------
def test_payload_has_the_alertmanager_webhook_shape(events: list[AlertEvent]) -> None:
    (event,) = events
    payload = webhook_payload(events)
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["receiver"] == "modelport"
    (alert,) = payload["alerts"]
    assert alert == {
        "status": "firing",
        "labels": {
            "alertname": "iris-errors",
            "rule": "iris-errors",
            "severity": "warning",
            "kind": "error_rate",
            "model": "iris",
            "version": "3",
        },
        "annotations": {
            "summary": event.summary,
            "threshold": "10%",
            "window": "5m",
            "value": "40%",
        },
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": event.fingerprint,
    }
    assert payload["commonLabels"] == alert["labels"]


def test_payload_of_resolved_and_mixed_events(events: list[AlertEvent]) -> None:
    (event,) = events
    ended = dt.datetime(2026, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    resolved = AlertEvent(
        **{**_fields(event), "status": "resolved", "ends_at": ended, "model": "wine"}
    )
    payload = webhook_payload([resolved])
    assert payload["status"] == "resolved"
    assert payload["alerts"][0]["endsAt"] == "2025-12-31T23:00:00Z"
    mixed = webhook_payload([event, resolved])
    assert mixed["status"] == "firing"
    assert "model" not in mixed["commonLabels"]
    assert mixed["commonLabels"]["alertname"] == "iris-errors"


def _fields(event: AlertEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in AlertEvent.__slots__}


# -- delivery --------------------------------------------------------------------------------------
def test_delivers_the_payload(receiver: Receiver, events: list[AlertEvent]) -> None:
    n = notifier(receiver.url, ["127.0.0.1"], headers={"Authorization": "Bearer t"})
    try:
        assert n.send(events)
        assert n.send([])  # nothing to say: no message
        assert n.flush(WAIT_S)
    finally:
        assert n.close()
    (got,) = receiver.requests
    assert got.path == "/hook?token=s3cret"
    assert got.headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["Authorization"] == "Bearer t"
    assert got.body == orjson.loads(orjson.dumps(webhook_payload(events)))
    assert (n.stats.sent, n.stats.failed, n.stats.dropped, n.stats.retried) == (1, 0, 0, 0)
    assert n.target == f"http://127.0.0.1:{receiver.port}"


def test_connects_to_the_checked_address_with_the_host_header(
    receiver: Receiver, events: list[AlertEvent]
) -> None:
    resolve = resolver_to("127.0.0.1")
    url = f"http://hooks.example.com:{receiver.port}/hook"
    n = notifier(url, ["hooks.example.com"], resolver=resolve)
    try:
        n.send(events)
        assert n.flush(WAIT_S)
    finally:
        n.close()
    assert resolve.calls == [("hooks.example.com", receiver.port)]
    (got,) = receiver.requests
    assert got.headers["Host"] == f"hooks.example.com:{receiver.port}"
    assert n.stats.sent == 1


@pytest.mark.parametrize(
    ("allowed", "address", "reason"),
    [
        (["hooks.example.com"], "169.254.169.254", "link-local"),
        (["hooks.example.com"], "::ffff:169.254.169.254", "link-local"),
        (["*.example.com"], "127.0.0.1", "loopback or private"),
    ],
)
def test_refused_resolutions_fail_without_retry(
    receiver: Receiver, events: list[AlertEvent], allowed: list[str], address: str, reason: str
) -> None:
    url = f"http://hooks.example.com:{receiver.port}/hook"
    n = notifier(url, allowed, resolver=resolver_to(address))
    try:
        n.send(events)
        assert n.flush(WAIT_S)
    finally:
        n.close()
    assert receiver.requests == []
    assert (n.stats.sent, n.stats.failed, n.stats.retried) == (0, 1, 0)
    assert reason in (n.stats.last_error or "")


def test_redirects_are_not_followed(receiver: Receiver, events: list[AlertEvent]) -> None:
    receiver.statuses.extend([302, 200])
    n = notifier(receiver.url, ["127.0.0.1"])
    try:
        n.send(events)
        assert n.flush(WAIT_S)
    finally:
        n.close()
    assert [r.path for r in receiver.requests] == ["/hook?token=s3cret"]
    assert (n.stats.sent, n.stats.failed, n.stats.retried) == (0, 1, 0)
    assert "redirect (302)" in (n.stats.last_error or "")


def test_server_errors_are_retried_with_backoff(
    receiver: Receiver, events: list[AlertEvent]
) -> None:
    receiver.statuses.extend([500, 503, 200])
    sleeps = Sleeps()
    n = notifier(receiver.url, ["127.0.0.1"], sleep=sleeps, backoff_s=0.5)
    try:
        n.send(events)
        assert n.flush(WAIT_S)
    finally:
        n.close()
    assert len(receiver.requests) == 3
    assert receiver.requests[0].body == receiver.requests[2].body
    assert sleeps.delays == [0.5, 1.0]
    assert (n.stats.sent, n.stats.failed, n.stats.retried) == (1, 0, 2)


def test_retries_are_bounded(receiver: Receiver, events: list[AlertEvent]) -> None:
    receiver.statuses.extend([500] * 10)
    n = notifier(receiver.url, ["127.0.0.1"], retries=2)
    try:
        n.send(events)
        assert n.flush(WAIT_S)
    finally:
        n.close()
    assert len(receiver.requests) == 3
    assert (n.stats.sent, n.stats.failed, n.stats.retried) == (0, 1, 2)
    assert n.stats.last_error == "the receiver answered HTTP 500"


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_not_retried(
    receiver: Receiver, events: list[AlertEvent], status: int
) -> None:
    receiver.statuses.append(status)
    n = notifier(receiver.url, ["127.0.0.1"])
    try:
        n.send(events)
        assert n.flush(WAIT_S)
    finally:
        n.close()
    assert len(receiver.requests) == 1
    assert (n.stats.sent, n.stats.failed, n.stats.retried) == (0, 1, 0)


def test_connection_errors_are_retried(events: list[AlertEvent]) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()
    n = notifier(f"http://127.0.0.1:{port}/", ["127.0.0.1"], retries=2, sleep=sleeps)
    try:
        n.send(events)
        assert n.flush(WAIT_S)
    finally:
        n.close()
    assert (n.stats.failed, n.stats.retried) == (1, 2)
    assert "ConnectionRefusedError" in (n.stats.last_error or "")


def test_resolution_errors_are_retried(events: list[AlertEvent]) -> None:
    def broken(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror("temporary failure in name resolution")

    n = notifier("http://hooks.example.com/", ["hooks.example.com"], retries=1, resolver=broken)
    try:
        n.send(events)
        assert n.flush(WAIT_S)
    finally:
        n.close()
    assert (n.stats.failed, n.stats.retried) == (1, 1)
    assert "cannot resolve 'hooks.example.com'" in (n.stats.last_error or "")


def test_an_unexpected_error_fails_the_message_not_the_thread(
    receiver: Receiver, events: list[AlertEvent], caplog: pytest.LogCaptureFixture
) -> None:
    answers: list[Any] = [ValueError("bug"), ["127.0.0.1"]]

    def flaky(host: str, port: int) -> Sequence[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    url = f"http://hooks.example.com:{receiver.port}/"
    n = notifier(url, ["hooks.example.com"], resolver=flaky)
    try:
        n.send(events)
        n.send(events)
        assert n.flush(WAIT_S)
    finally:
        n.close()
    assert (n.stats.sent, n.stats.failed, n.stats.last_error) == (1, 1, "unexpected ValueError")
    assert "unexpected error" in caplog.text


@pytest.mark.parametrize(
    "bad", [{"timeout_s": 0}, {"max_queue": 0}, {"retries": -1}, {"backoff_s": -1}]
)
def test_bad_settings(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match="webhook notifier needs"):
        WebhookNotifier("http://hooks.example.com/", ["hooks.example.com"], **bad)


def test_a_full_queue_drops_and_counts(receiver: Receiver, events: list[AlertEvent]) -> None:
    release = threading.Event()

    def slow(host: str, port: int) -> Sequence[str]:
        release.wait(WAIT_S)
        return ["127.0.0.1"]

    url = f"http://hooks.example.com:{receiver.port}/"
    n = notifier(url, ["hooks.example.com"], max_queue=2, resolver=slow)
    try:
        assert n.send(events)  # delivering (blocked in the resolver) or queued
        assert n.send(events)  # queued
        assert not n.send(events)  # full
        assert not n.send(events)
        assert (n.stats.dropped, n.stats.last_error) == (2, "queue full")
        release.set()
        assert n.flush(WAIT_S)
    finally:
        release.set()
        assert n.close()
    assert (n.stats.sent, n.stats.dropped) == (2, 2)
    assert len(receiver.requests) == 2


def test_close_delivers_what_is_queued_then_refuses(
    receiver: Receiver, events: list[AlertEvent]
) -> None:
    n = notifier(receiver.url, ["127.0.0.1"])
    for _ in range(3):
        n.send(events)
    assert n.close(WAIT_S)
    assert (n.stats.sent, len(receiver.requests)) == (3, 3)
    assert not n.send(events)
    assert n.stats.dropped == 1
    assert n.close()  # idempotent


def test_close_without_sending_is_immediate() -> None:
    n = notifier("http://hooks.example.com/", ["hooks.example.com"])
    assert n.close(0)


def test_close_gives_up_on_a_stuck_delivery(events: list[AlertEvent]) -> None:
    release = threading.Event()

    def stuck(host: str, port: int) -> Sequence[str]:
        release.wait(WAIT_S)
        raise socket.gaierror("gave up")

    n = notifier("http://hooks.example.com/", ["hooks.example.com"], resolver=stuck, retries=5)
    n.send(events)
    n.send(events)
    assert not n.close(0.05)
    release.set()
    assert n.close(WAIT_S)  # the thread stops at its next step: no more retries
    assert (n.stats.retried, n.stats.failed, n.stats.dropped) == (0, 1, 1)


# -- TLS to a pinned address -----------------------------------------------------------------------
def _tls_pair(tmp_path: Path, host: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context with a certificate for ``host``, client context trusting its CA)."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelport test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(ca_file))
    return server, client


@pytest.mark.parametrize(("name", "delivered"), [("hooks.test", True), ("other.test", False)])
def test_https_checks_the_certificate_of_the_url_host(
    tmp_path: Path, events: list[AlertEvent], name: str, delivered: bool
) -> None:
    server_tls, client_tls = _tls_pair(tmp_path, "hooks.test")
    for receiver in _serve(Receiver(), tls=server_tls):
        url = f"https://{name}:{receiver.port}/hook"
        n = notifier(
            url, [name], resolver=resolver_to("127.0.0.1"), ssl_context=client_tls, retries=0
        )
        try:
            n.send(events)
            assert n.flush(WAIT_S)
        finally:
            n.close()
        assert n.stats.sent == int(delivered)
        assert len(receiver.requests) == int(delivered)
        if delivered:
            assert receiver.requests[0].headers["Host"] == f"hooks.test:{receiver.port}"
        else:
            assert "CERTIFICATE_VERIFY_FAILED" in (n.stats.last_error or "")
