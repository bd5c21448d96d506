"""``modelport serve --spec``: the spec is recorded, its endpoint served and rolled out, in a
real server process answering real HTTP clients, for every strategy with stages.

Versions are Python-class models (``tests.serving.rollout_models``): v1 (``@champion``) and v2
answer 0, v3 answers 1. Every loop is bounded by a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from tests.serving.rollout_models import AlsoZero, One, Zero

from modelport.api.registry import Registry
from modelport.core.rollouts import RolloutRecord
from modelport.core.settings import Settings

pytestmark = pytest.mark.e2e

BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [0.0]}]}
ANALYSIS = "analysis: {min_requests: 10, max_p95_ratio: null, max_p95_ms: 1000}\n"


def spec_for(candidate: int, strategy: str, analysis: str = ANALYSIS) -> str:
    """The spec rolling ``ep:candidate`` out to endpoint ``ep`` by ``strategy``."""
    return (
        f"endpoint: ep\nbaseline: ep@champion\ncandidate: ep:{candidate}\n"
        f"strategy: {strategy}\n{analysis}"
    )


@dataclass
class Server:
    url: str
    home: Path
    log: Path

    def rollout(self) -> RolloutRecord | None:
        with Registry.open(settings=Settings(home=self.home)) as registry:
            return registry.service.latest_rollout("ep")

    def champion(self) -> int:
        with Registry.open(settings=Settings(home=self.home)) as registry:
            return registry.get("ep@champion").number


@contextmanager
def serving(tmp_path: Path, spec: str, *extra: str) -> Iterator[Server]:
    """``modelport serve --spec`` of ``spec`` over a home holding ep:1..3, on a free port."""
    home = tmp_path / "home"
    with Registry.open(settings=Settings(home=home)) as registry:
        example = pd.DataFrame({"x": [0.0, 1.0]})
        registry.register(Zero(), name="ep", input_example=example, alias="champion")
        registry.register(AlsoZero(), name="ep", input_example=example)
        registry.register(One(), name="ep", input_example=example)
    spec_file = tmp_path / "deploy.yaml"
    spec_file.write_text(spec)
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # the test models' module
    args = [sys.executable, "-m", "modelport", "--home", str(home), "serve"]
    args += ["--spec", str(spec_file)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*args, "--port", "0", "--poll-interval", "0.2", "--rollout-interval", "0.2", *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None:
            assert time.monotonic() < deadline, log.read_text()
            assert proc.poll() is None, log.read_text()
            found = re.search(r"on (http://127\.0\.0\.1:\d+)", log.read_text())
            url = found.group(1) if found else None
            time.sleep(0.1)
        while httpx.get(f"{url}/v2/health/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield Server(url, home, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()


def drive(
    server: Server, *, timeout_s: float = 60.0, max_requests: int = 20_000
) -> tuple[list[tuple[float, int]], RolloutRecord]:
    """Send requests until the rollout finished (bounded in time and count): for each answer,
    in order, the wall time it was sent at and the version that answered; and the rollout."""
    answered: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=server.url, timeout=5) as client:
        for sent in range(max_requests):
            assert time.monotonic() < deadline, server.log.read_text()
            at = time.time()
            answer = client.post("/v2/models/ep/infer", json=BODY)
            assert answer.status_code == 200, answer.text
            version = int(answer.json()["model_version"])
            assert answer.headers["x-model-version"] == str(version)
            answered.append((at, version))
            if sent % 20 == 0:
                record = server.rollout()
                if record is not None and record.finished_at is not None:
                    return answered, record
            time.sleep(0.005)
    raise AssertionError(f"the rollout did not finish in {max_requests} requests")


def versions(answered: list[tuple[float, int]]) -> list[int]:
    return [version for _, version in answered]


def published(server: Server) -> list[tuple[float, dict[str, Any]]]:
    """Every route table published for ``ep``, oldest first, with its wall time."""
    with Registry.open(settings=Settings(home=server.home)) as registry:
        events = registry.service.audit(action="routes.publish")
    events = sorted(events, key=lambda e: e.id)
    return [(e.at.timestamp(), e.details["table"]) for e in events]


def test_serve_from_a_spec_records_it_and_rolls_it_out(tmp_path: Path) -> None:
    spec = spec_for(2, "{kind: canary, steps: [50, 100], step_interval: 1s}")
    with serving(tmp_path, spec) as server:
        answered, record = drive(server)
        assert record.phase == "promoted", server.log.read_text()
        assert set(versions(answered)) == {1, 2}
        assert server.champion() == 2
        with Registry.open(settings=Settings(home=server.home)) as registry:
            assert [d.endpoint for d in registry.deployments()] == ["ep"]


def test_a_shadow_over_two_workers_never_answers_a_client_and_is_promoted(
    tmp_path: Path,
) -> None:
    """Each worker mirrors its share; clients only ever see the baseline until promotion."""
    spec = spec_for(
        2,
        "{kind: shadow, fraction: 1.0, duration: 2s, min_requests: 10}",
        ANALYSIS.replace("}", ", min_shadow_agreement: 0.9}"),
    )
    with serving(tmp_path, spec, "--workers", "2") as server:
        answered, record = drive(server)
        assert record.phase == "promoted", server.log.read_text()
        tables = published(server)
        *during, (promoted_at, final) = tables
        assert (final["routes"], final["shadow"]) == ([["2", 100]], None)
        assert all(t["routes"] == [["1", 100]] for _, t in during)  # v1 answered until then
        assert ["2", 1.0] in [t["shadow"] for _, t in during]  # while v2 was mirrored
        before = [v for at, v in answered if at < promoted_at]
        assert len(before) >= 20
        assert set(before) == {1}  # the shadow's answers never reached a client
        assert server.champion() == 2
        with httpx.Client(base_url=server.url, timeout=5) as client:
            deadline = time.monotonic() + 30
            while client.post("/v2/models/ep/infer", json=BODY).json()["model_version"] != "2":
                assert time.monotonic() < deadline, "the promoted version never answered"
                time.sleep(0.05)


def test_a_shadow_that_disagrees_is_rolled_back_without_a_client_noticing(
    tmp_path: Path,
) -> None:
    spec = spec_for(
        3,
        "{kind: shadow, fraction: 1.0, duration: 30s, min_requests: 10}",
        ANALYSIS.replace("}", ", min_shadow_agreement: 0.9}"),
    )
    with serving(tmp_path, spec) as server:
        answered, record = drive(server)
        assert record.phase == "rolled_back", server.log.read_text()
        assert set(versions(answered)) == {1}
        assert server.champion() == 1
        with Registry.open(settings=Settings(home=server.home)) as registry:
            kinds = [e.kind for e in registry.rollout_history("ep")]
        assert kinds.count("rollout.rolled_back") == 1, kinds


def _routed(client: httpx.Client) -> tuple[int, str | None]:
    """``(generation, sticky key)`` of the table the (single) worker routes ``ep`` by."""
    (endpoint,) = client.get("/v2/endpoints").json()["endpoints"]
    return endpoint["generation"], endpoint["table"]["sticky"]


def test_ab_cohorts_are_sticky_over_http_until_promotion(tmp_path: Path) -> None:
    """A request counts for the A/B cohorts when the sticky table was in force both before
    and after it (read from ``/v2/endpoints``), so promotion does not blur the check."""
    spec = spec_for(2, "{kind: ab, split: 50, sticky_key: header:X-User-ID, duration: 2s}")
    with serving(tmp_path, spec) as server:
        seen: dict[str, set[int]] = {}
        deadline = time.monotonic() + 60
        record = None
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for sent in range(20_000):
                assert time.monotonic() < deadline, server.log.read_text()
                user = f"user-{sent % 30}"
                before = _routed(client)
                answer = client.post("/v2/models/ep/infer", json=BODY, headers={"X-User-ID": user})
                assert answer.status_code == 200, answer.text
                if before[1] is not None and _routed(client) == before:
                    seen.setdefault(user, set()).add(int(answer.json()["model_version"]))
                if sent % 20 == 0:
                    record = server.rollout()
                    if record is not None and record.finished_at is not None:
                        break
        assert record is not None
        assert record.phase == "promoted", server.log.read_text()
        assert server.champion() == 2
        assert len(seen) == 30
        assert all(len(v) == 1 for v in seen.values()), seen
        assert {next(iter(v)) for v in seen.values()} == {1, 2}  # both cohorts populated


def test_blue_green_switches_in_one_step_and_is_promoted(tmp_path: Path) -> None:
    spec = spec_for(2, "{kind: blue-green, switch_after: 1s, verify_for: 2s}")
    with serving(tmp_path, spec) as server:
        answered, record = drive(server)
        assert record.phase == "promoted", server.log.read_text()
        seen = versions(answered)
        assert set(seen) == {1, 2}
        switch = seen.index(2)
        assert set(seen[:switch]) == {1}  # one step: never back once switched
        assert set(seen[switch:]) == {2}
        assert server.champion() == 2
