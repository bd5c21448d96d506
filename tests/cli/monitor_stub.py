"""A real HTTP server on 127.0.0.1 serving the monitoring contract of ``modelport serve``.

It stands in for the server's monitoring routes (built separately) so that the CLI's HTTP client,
rendering and exit codes run over real sockets. ``StubServer.routes`` maps ``(method, path)`` to
a handler returning ``(status, body, headers)``; every request is kept in ``seen``.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, Any, dict[str, str]]
Route = Callable[["Seen"], Answer]

STATUS: dict[str, Any] = {
    "window_s": 300,
    "generated_at": "2026-03-01T12:00:00.123+00:00",
    "ready": True,
    "versions": [
        {
            "model": "fraud",
            "version": "3",
            "state": "serving",
            "traffic_share": 0.9,
            "requests": 5400,
            "rate_per_s": 18.0,
            "p50_ms": 4.2,
            "p95_ms": 12.5,
            "p99_ms": 30.1,
            "error_rate": 0.0123,
            "accuracy": {
                "value": 0.912,
                "labeled": 532,
                "window_s": 3600,
                "task": "classification",
                "mae": None,
                "rmse": None,
            },
            "drift": {
                "verdict": "drift",
                "drifted": ["amount", "merchant_category", "country", "device_type"],
                "window_s": 3600,
            },
        },
        {
            "model": "fraud",
            "version": "4",
            "state": "canary",
            "traffic_share": 0.1,
            "requests": 600,
            "rate_per_s": 2.0,
            "p50_ms": 3.9,
            "p95_ms": 11.0,
            "p99_ms": 1250.0,
            "error_rate": 0.0,
            "accuracy": None,
            "drift": {"verdict": "insufficient data", "drifted": [], "window_s": 3600},
        },
        {
            "model": "price",
            "version": "1",
            "state": "serving",
            "traffic_share": 1.0,
            "requests": 0,
            "rate_per_s": 0.0,
            "p50_ms": None,
            "p95_ms": None,
            "p99_ms": None,
            "error_rate": None,
            "accuracy": {
                "value": None,
                "labeled": 40,
                "window_s": 3600,
                "task": "regression",
                "mae": 1.25,
                "rmse": 2.0,
            },
            "drift": None,
        },
    ],
    "alerts": [
        {
            "rule": "fraud-p95",
            "kind": "p95_latency",
            "severity": "critical",
            "model": "fraud",
            "version": "3",
            "feature": None,
            "value": 0.4,
            "threshold": 0.25,
            "since": "2026-03-01T11:55:00+00:00",
            "stale": False,
        },
        {
            "rule": "fraud-drift",
            "kind": "drift",
            "severity": "warning",
            "model": "fraud",
            "version": "3",
            "feature": "amount",
            "value": 0.61,
            "threshold": 0.2,
            "since": "2026-03-01T11:00:00+00:00",
            "stale": True,
        },
    ],
}

DRIFT: dict[str, Any] = {
    "model": "fraud",
    "version": 3,
    "window_s": 600,
    "rows": 800,
    "features": [
        {
            "feature": "amount",
            "kind": "numeric",
            "statistic": "psi",
            "score": 0.8312,
            "p_value": 1.2e-12,
            "verdict": "drift",
            "reason": "PSI 0.831 >= 0.2 and KS p=1.2e-12 < 0.01",
        },
        {
            "feature": "age",
            "kind": "numeric",
            "statistic": "psi",
            "score": 0.012,
            "p_value": 0.64,
            "verdict": "ok",
            "reason": "PSI 0.012 < 0.2 (KS p=0.64)",
        },
        {
            "feature": "country",
            "kind": "categorical",
            "statistic": "psi",
            "score": None,
            "p_value": None,
            "verdict": "insufficient_data",
            "reason": "12 values; need at least 30",
        },
    ],
    "prediction": {
        "feature": "prediction",
        "kind": "categorical",
        "statistic": "psi",
        "score": 0.05,
        "p_value": 0.2,
        "verdict": "ok",
        "reason": "PSI 0.050 < 0.2 (chi-squared p=0.2)",
    },
}

ALERTS: dict[str, Any] = {
    "firing": [STATUS["alerts"][0]],
    "history": [
        {
            "recorded_at": "2026-03-01T11:55:01+00:00",
            "status": "firing",
            "rule": "fraud-p95",
            "kind": "p95_latency",
            "severity": "critical",
            "model": "fraud",
            "version": "3",
            "feature": None,
            "value": 0.4,
            "threshold": 0.25,
            "summary": "fraud:3 p95 latency 400 ms over 5m, above the 250 ms threshold",
        },
        {
            "recorded_at": "2026-03-01T11:40:00+00:00",
            "status": "resolved",
            "rule": "fraud-errors",
            "kind": "error_rate",
            "severity": "warning",
            "model": "fraud",
            "version": "3",
            "feature": None,
            "value": 0.01,
            "threshold": 0.05,
            "summary": "resolved: fraud:3 error rate 1% over 5m",
        },
    ],
}


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def feedback_route(seen: Seen) -> Answer:
    """Ids starting with ``x-`` are unknown; more than 10,000 items are refused like the server."""
    items = seen.json()
    if len(items) > 10_000:
        return 413, {"error": "feedback has too many items"}, {}
    unknown = [i["id"] for i in items if i["id"].startswith("x-")]
    return 200, {"accepted": len(items) - len(unknown), "unknown_ids": unknown}, {}


@dataclass
class StubServer:
    url: str
    port: int
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def answer(self, method: str, path: str, status: int, body: Any, **headers: str) -> None:
        self.routes[(method, path)] = lambda _seen: (status, body, headers)


def _handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep stderr for the CLI
            pass

        def _serve(self, method: str) -> None:
            parts = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(
                method,
                parts.path,
                urllib.parse.parse_qs(parts.query),
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length) if length else b"",
            )
            stub.seen.append(seen)
            route = stub.routes.get((method, parts.path))
            if route is None:
                status, body, headers = 404, b"Not Found", {"content-type": "text/plain"}
            else:
                status, body, headers = route(seen)
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"content-type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (the timeout test) is expected; nothing is printed."""


def serve_stub() -> Iterator[StubServer]:
    """Start the stub on a free port with the documented routes; stop it afterwards."""
    stub = StubServer(url="", port=0)
    server = _Server(("127.0.0.1", 0), _handler(stub))
    stub.port = int(server.server_address[1])
    stub.url = f"http://127.0.0.1:{stub.port}"
    stub.answer("GET", "/v2/monitoring/status", 200, STATUS)
    stub.answer("GET", "/v2/models/fraud/drift", 200, DRIFT)
    stub.answer("GET", "/v2/monitoring/alerts", 200, ALERTS)
    stub.routes[("POST", "/v2/models/fraud/feedback")] = feedback_route
    thread = threading.Thread(target=server.serve_forever, name="monitor-stub", daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stub.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
