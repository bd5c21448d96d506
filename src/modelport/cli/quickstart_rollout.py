"""The quickstart's rollout demo: a real server, synthetic traffic with delayed labels, a canary
of a better version to promotion and of a bad one to an automatic rollback.

The server is ``modelport serve`` in a child process (its log goes to ``quickstart-server.log``
under the home). ``Traffic`` sends MLflow ``/invocations`` requests from two threads, each
paced and bounded in time and count, with its own ``X-Request-ID``; the true label of each
answered request is posted to the feedback route ``LABEL_DELAY_S`` later, as a client's ground
truth would arrive. Each canary is a deployment spec recorded in the registry (and written next
to the log, for the reader); the server's rollout controller does the rest.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx

from modelport.api.registry import Registry
from modelport.core.deployment import DeploymentSpec, parse_spec
from modelport.core.errors import UnavailableError
from modelport.core.rollouts import RolloutRecord
from modelport.core.settings import Settings

__all__ = ["DemoServer", "Traffic", "canary_spec", "run_canary"]

LABEL_DELAY_S = 1.0
RATE_PER_THREAD = 60.0  # requests per second per traffic thread
MAX_REQUESTS = 40_000
START_TIMEOUT_S = 90.0
PROGRESS_EVERY_S = 4.0
_BOUND = re.compile(r"on http://([\d.]+):(\d+)")

CANARY = """\
endpoint: {endpoint}
baseline: {endpoint}@champion
candidate: {endpoint}:{candidate}
strategy:
  kind: canary
  steps: [20, 50, 100]
  step_interval: {step_s}s
analysis:
  min_requests: 60
  max_error_rate: 0.02
  max_p95_ms: 250
  max_p95_ratio: null
  min_accuracy: 0.9
  min_labels: 40
  no_data_timeout: 90s
"""


def canary_spec(endpoint: str, candidate: int, step_s: float) -> tuple[str, DeploymentSpec]:
    """The YAML text and the parsed spec of the demo's canary of ``candidate``."""
    text = CANARY.format(endpoint=endpoint, candidate=candidate, step_s=f"{step_s:g}")
    return text, parse_spec(text, f"canary-v{candidate}.yaml")


def _global_options(settings: Settings) -> list[str]:
    options = ["--home", str(settings.home)]
    if settings.registry_uri:
        options += ["--registry-uri", settings.registry_uri]
    if settings.artifact_uri:
        options += ["--artifact-uri", settings.artifact_uri]
    return options


class DemoServer:
    """``modelport serve REF`` in a child process on a free loopback port."""

    def __init__(self, settings: Settings, ref: str, log_path: Path) -> None:
        self._settings = settings
        self._ref = ref
        self.log_path = log_path
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable,
            "-m",
            "modelport",
            *_global_options(self._settings),
            "serve",
            self._ref,
            "--port",
            "0",
            "--poll-interval",
            "0.5",
            "--rollout-interval",
            "0.5",
        ]
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise UnavailableError(
                    f"the quickstart server exited with {self._proc.returncode}; "
                    f"see {self.log_path}"
                )
            found = _BOUND.search(self.log_path.read_text(errors="replace"))
            if found and not self.url:
                self.url = f"http://{found.group(1)}:{found.group(2)}"
            if self.url and _ready(self.url):
                return self.url
            time.sleep(0.1)
        self.stop()
        raise UnavailableError(
            f"the quickstart server was not ready within {START_TIMEOUT_S:g}s; see {self.log_path}"
        )

    def wait(self) -> None:
        """Block until the server exits (Ctrl-C stops it)."""
        if self._proc is not None:
            with contextlib.suppress(KeyboardInterrupt):
                self._proc.wait()
            self.stop()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class TrafficFigures:
    sent: int = 0
    labelled: int = 0
    failed: int = 0
    by_version: Counter[str] = field(default_factory=Counter)


class Traffic:
    """Paced requests and delayed labels against ``url`` (see module doc), until ``stop``."""

    def __init__(self, url: str, model: str, rows: Any, labels: Any, *, threads: int = 2):
        self._url = url
        self._model = model
        self._columns = [str(c) for c in rows.columns]
        self._rows = rows.to_numpy().tolist()
        self._labels = [int(v) for v in labels]
        self._threads = threads
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: deque[tuple[float, str, int]] = deque(maxlen=MAX_REQUESTS)
        self._ids = itertools.count(1)
        self.figures = TrafficFigures()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self._threads):
            thread = threading.Thread(target=self._send, args=(i,), daemon=True)
            thread.start()
            self._workers.append(thread)
        labeller = threading.Thread(target=self._label, daemon=True)
        labeller.start()
        self._workers.append(labeller)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(10)

    def _send(self, index: int) -> None:
        path = f"{self._url}/invocations"
        period = 1.0 / RATE_PER_THREAD
        with httpx.Client(timeout=5.0) as client:
            next_at = time.monotonic()
            for n in range(index, MAX_REQUESTS * self._threads, self._threads):
                if self._stop.is_set():
                    return
                row = n % len(self._rows)
                request_id = f"qs-{os.getpid()}-{next(self._ids)}"
                payload = {"dataframe_split": {"columns": self._columns, "data": [self._rows[row]]}}
                try:
                    answer = client.post(path, json=payload, headers={"X-Request-ID": request_id})
                    ok = answer.status_code == 200
                except httpx.HTTPError:
                    ok = False
                    answer = None
                with self._lock:
                    self.figures.sent += 1
                    if ok and answer is not None:
                        version = answer.headers.get("x-model-version", "?")
                        self.figures.by_version[version] += 1
                        self._pending.append((time.monotonic(), request_id, self._labels[row]))
                    else:
                        self.figures.failed += 1
                next_at += period
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _label(self) -> None:
        path = f"{self._url}/v2/models/{self._model}/feedback"
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.wait(0.25):
                due = []
                cutoff = time.monotonic() - LABEL_DELAY_S
                with self._lock:
                    while self._pending and self._pending[0][0] <= cutoff:
                        _, request_id, label = self._pending.popleft()
                        due.append({"id": request_id, "label": label})
                if not due:
                    continue
                with contextlib.suppress(httpx.HTTPError):
                    if client.post(path, json=due).status_code == 200:
                        with self._lock:
                            self.figures.labelled += len(due)


def run_canary(
    registry: Registry,
    spec: DeploymentSpec,
    traffic: Traffic,
    timeout_s: float,
) -> RolloutRecord:
    """Record ``spec`` and follow its rollout until it finishes, one progress line a second."""
    plan = registry.deploy(spec)
    revision = plan.record.revision if plan.record is not None else None
    deadline = time.monotonic() + timeout_s
    stage, shown_at = "", 0.0
    while time.monotonic() < deadline:
        record = registry.service.latest_rollout(spec.endpoint)
        if record is not None and record.spec_revision == revision:
            now_stage, line = _progress(record, traffic)
            if now_stage != stage or time.monotonic() - shown_at >= PROGRESS_EVERY_S:
                click.echo(f"    {line}")
                stage, shown_at = now_stage, time.monotonic()
            if record.finished_at is not None:
                return record
        time.sleep(0.5)
    raise UnavailableError(
        f"the rollout of endpoint {spec.endpoint!r} did not finish within {timeout_s:g}s; "
        f"see `modelport rollout status {spec.endpoint}`"
    )


def _progress(record: RolloutRecord, traffic: Traffic) -> tuple[str, str]:
    """``(stage, line)``: where the rollout stands, and that with the traffic so far."""
    weights = record.state.get("weights") or (100, 0)
    stage = f"{record.phase.replace('_', ' ')}"
    if record.finished_at is None and record.phase not in ("pending", "smoke"):
        stage += f" at {weights[1]}%"
    figures = traffic.figures
    versions = ", ".join(f"v{v} {n}" for v, n in sorted(figures.by_version.items()))
    failed = f", failed {figures.failed}" if figures.failed else ""
    line = f"{stage:<16} requests {figures.sent} ({versions}){failed}, labels {figures.labelled}"
    return stage, line
