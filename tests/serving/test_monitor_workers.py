"""``modelport serve --workers 2`` in a subprocess: the status counts the requests of both
workers, whichever answers it, and the leader's accuracy shows in every worker's status."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from tests.serving.monitor_fixtures import flaky_body
from tests.serving.monitor_models import FlakyModel

from modelport.api.registry import Registry
from modelport.core.settings import Settings

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).with_name("modelport")


def _until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _ready(url: str) -> bool:
    try:  # several fresh connections: each may reach the other worker
        return all(
            httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200 for _ in "123456"
        )
    except httpx.TransportError:
        return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """Two workers serving ``flaky:1``; yields (url, home, the shared monitoring directory)."""
    home = tmp_path / "home"
    example = pd.DataFrame({"x": [0.5], "delay": [0.0], "fail": [0]})
    with Registry.open(settings=Settings(home=home)) as registry:
        registry.register(FlakyModel(), name="flaky", input_example=example)
    server_tmp = tmp_path / "server-tmp"
    server_tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["TMPDIR"] = str(server_tmp)
    log = tmp_path / "serve.log"
    args = ["--workers", "2", "--port", "0", "--evaluate-interval", "0.5", "--log-format", "json"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN), "--home", str(home), "serve", "flaky", *args],
            stdout=subprocess.DEVNULL,
            stderr=out,
            env=env,
        )
    try:

        def bound() -> str | None:
            assert proc.poll() is None, log.read_text()[-3000:]
            match = re.search(r"http://127\.0\.0\.1:(\d+)", log.read_text())
            return f"http://127.0.0.1:{match.group(1)}" if match else None

        url = _until(bound, "the server to bind", 60)
        _until(lambda: _ready(url), "both workers to be ready", 90)
        shared = _until(
            lambda: next(server_tmp.glob("modelport-metrics-*/monitoring"), None), "dir"
        )
        yield url, home, shared
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
        assert not list(server_tmp.iterdir()), "the shared directory is removed on exit"
        for line in log.read_text().splitlines()[1:]:  # after the banner: JSON records only
            json.loads(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _per_worker(shared: Path) -> dict[str, int]:
    """Requests each worker has published in its window file."""
    out = {}
    for path in shared.glob("windows-*.json"):
        try:
            exported = json.loads(path.read_text())
        except (json.JSONDecodeError, FileNotFoundError):
            continue
        window = exported.get("300", {})
        out[path.name] = sum(s["count"] for k in window.get("keys", []) for s in k["slices"])
    return out


def test_status_counts_every_workers_requests(server: tuple[str, Path, Path]) -> None:
    url, _home, shared = server
    sent = errors = 0
    ids = []

    def both_busy() -> bool:
        nonlocal sent, errors
        for i in range(10):
            fail = int(i == 3)
            answer = httpx.post(  # a fresh connection each time: the kernel picks a worker
                f"{url}/v2/models/flaky/infer", json=flaky_body(1.0 if i % 2 else -1.0, fail=fail)
            )
            assert answer.status_code == (500 if fail else 200)
            sent += 1
            errors += fail
            if not fail:
                ids.append((answer.headers["x-request-id"], int(i % 2 == 1)))
        counts = _per_worker(shared)
        return len(counts) == 2 and all(counts.values()) and sent >= 40

    _until(both_busy, "requests on both workers", 60)

    def agreed() -> dict[str, Any] | None:
        answers = [httpx.get(f"{url}/v2/monitoring/status").json() for _ in range(6)]
        figures = [a["versions"][0] for a in answers]
        if all(f["requests"] == sent for f in figures):
            return figures[0]
        return None

    figures = _until(agreed, f"every worker's status to count {sent} requests")
    assert figures["error_rate"] == pytest.approx(errors / sent)
    assert figures["traffic_share"] == 1.0

    def labeled() -> bool:  # records are written within a second by whichever worker served them
        answer = httpx.post(
            f"{url}/v2/models/flaky/feedback", json=[{"id": i, "label": y} for i, y in ids]
        ).json()
        return answer["accepted"] == len(ids)

    _until(labeled, "every prediction to be logged")

    def accurate() -> dict[str, Any] | None:
        answers = [httpx.get(f"{url}/v2/monitoring/status").json() for _ in range(6)]
        found = [a["versions"][0]["accuracy"] for a in answers]
        return found[0] if all(f is not None and f["labeled"] == len(ids) for f in found) else None

    accuracy = _until(accurate, "the leader's accuracy in every worker's status")
    assert accuracy["value"] == 1.0  # the labels are the model's own rule
