"""Fixtures of the monitoring tests: the app with its monitor over a real SQLite log, a model
that fails and sleeps on demand, V2 request bodies, and a real webhook receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from tests.serving.conftest import wait_ready
from tests.serving.monitor_models import FlakyModel

from modelport.api.registry import Registry
from modelport.core.model import ModelVersion
from modelport.runtime.base import Runtime
from modelport.serving.app import create_app, server_monitor
from modelport.serving.config import MonitoringConfig, ServeConfig
from modelport.serving.monitor import ServerMonitor


@dataclass
class Running:
    """A monitored app being served in process."""

    client: TestClient
    app: Starlette
    log_url: str
    db: Path

    @property
    def monitor(self) -> ServerMonitor:
        monitor = server_monitor(self.app)
        assert monitor is not None
        return monitor

    def evaluate(self) -> None:
        """One evaluation of drift, accuracy and alerts now (the periodic task's work)."""
        portal = self.client.portal
        assert portal is not None
        portal.call(self.monitor.evaluate)


Monitored = Callable[..., AbstractContextManager[Running]]


@pytest.fixture
def flaky(registry: Registry) -> Registry:
    """``flaky:1``: a ``FlakyModel`` with columns x (float), delay (float) and fail (int)."""
    example = pd.DataFrame({"x": [0.5, -0.5], "delay": [0.0, 0.0], "fail": [0, 0]})
    registry.register(FlakyModel(), name="flaky", input_example=example)
    return registry


@pytest.fixture
def monitored(registry: Registry, tmp_path: Path) -> Monitored:
    """``with monitored("clf@champion", redact=("f1",), max_queue=8) as run:``: monitoring
    options go to ``MonitoringConfig``, the others to ``ServeConfig``; the prediction log is
    ``tmp_path/monitoring.db``; evaluation only when the test asks (``run.evaluate()``)."""

    @contextmanager
    def factory(*refs: str, **options: Any) -> Iterator[Running]:
        monitoring_fields = set(MonitoringConfig.model_fields)
        watched = {k: options.pop(k) for k in list(options) if k in monitoring_fields}
        watched.setdefault("evaluate_interval_s", 3600)
        db = tmp_path / "monitoring.db"
        url = f"sqlite:///{db}"
        config = ServeConfig(
            refs=refs,
            poll_interval_s=0.2,
            monitoring=MonitoringConfig(**watched),
            **options,
        )

        def load(version: ModelVersion) -> Runtime:
            return registry.load(version.ref, threads=1)

        app = create_app(config, registry.get, load, log_url=url, state_dir=tmp_path / "state")
        with TestClient(app) as client:
            wait_ready(client)
            yield Running(client, app, url, db)

    return factory


def tensors(**columns: list[Any]) -> dict[str, Any]:
    """A V2 JSON body with one FP64 (or INT64 for ints) tensor per column."""
    inputs = []
    for name, values in columns.items():
        datatype = "INT64" if all(isinstance(v, int) for v in values) else "FP64"
        inputs.append({"name": name, "datatype": datatype, "shape": [len(values)], "data": values})
    return {"inputs": inputs}


def flaky_body(x: float, delay: float = 0.0, fail: int = 0) -> dict[str, Any]:
    return tensors(x=[x], delay=[delay], fail=[fail])


@dataclass
class Receiver:
    """Webhook messages received (parsed JSON), in order."""

    url: str
    messages: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            assert time.monotonic() < deadline, f"{len(self.messages)} message(s), wanted {count}"
            time.sleep(0.02)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP webhook receiver on 127.0.0.1 (http.server in a thread)."""
    received = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = orjson.loads(self.rfile.read(length))
            with received.lock:
                received.messages.append(body)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
