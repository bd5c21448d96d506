"""Rollouts end to end in a real server: the registry, the controller, the router and the windows.

Every test serves ``ep@champion`` through ``api.serve.build_app`` (the app ``modelport serve``
runs), records a deployment spec, drives generated traffic until the rollout finishes (bounded in
time and count) and checks what the clients saw, the route table, the alias and the timeline.
Versions are Python-class models (``tests.serving.rollout_models``): v1 and v2 answer 0, v3
answers 1 and fails on inputs above 100.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from starlette.testclient import TestClient
from tests.serving.conftest import wait_ready
from tests.serving.rollout_models import AlsoZero, One, Zero, ZeroOnY

from modelport.api.gates import gate_reports
from modelport.api.registry import Registry
from modelport.api.serve import build_app
from modelport.core.deployment import parse_spec
from modelport.core.rollouts import RolloutRecord
from modelport.core.settings import Settings
from modelport.serving.config import MonitoringConfig, ServeConfig

EXAMPLE = pd.DataFrame({"x": [0.0, 1.0]})
CANARY = "{kind: canary, steps: [50, 100], step_interval: 1s}"
ANALYSIS = """
analysis:
  min_requests: 20
  max_p95_ms: 500
  max_p95_ratio: null
  min_shadow_agreement: 0.9
  no_data_timeout: {no_data}
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    reg = Registry.open(settings=settings)
    reg.register(Zero(), name="ep", input_example=EXAMPLE, alias="champion")
    reg.register(AlsoZero(), name="ep", input_example=EXAMPLE)
    reg.register(One(), name="ep", input_example=EXAMPLE)
    try:
        yield reg
    finally:
        reg.close()


@contextmanager
def serving(settings: Settings) -> Iterator[TestClient]:
    config = ServeConfig(
        refs=("ep@champion",),
        poll_interval_s=0.2,
        rollout_interval_s=0.2,
        monitoring=MonitoringConfig(window_s=30),  # 0.5 s slices: stages see data at once
    )
    with TestClient(build_app(settings, config)) as client:
        wait_ready(client)
        yield client


def deploy(
    registry: Registry, strategy: str, candidate: int, no_data: str = "60s", extra: str = ""
) -> int:
    text = (
        f"endpoint: ep\nbaseline: ep@champion\ncandidate: ep:{candidate}\n"
        f"strategy: {strategy}\n" + ANALYSIS.format(no_data=no_data) + extra
    )
    plan = registry.deploy(parse_spec(text, "test.yaml"))
    assert plan.record is not None
    return plan.record.revision


def infer(client: TestClient, x: float = 0.0, user: str | None = None) -> Any:
    headers = {"X-User-ID": user} if user is not None else {}
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [x]}]}
    return client.post("/v2/models/ep/infer", json=body, headers=headers)


def drive(
    client: TestClient,
    registry: Registry,
    revision: int,
    *,
    x: float = 0.0,
    users: int = 0,
    timeout: float = 60.0,
) -> tuple[RolloutRecord, Counter[str], dict[str, set[str]]]:
    """Send requests until the rollout of spec ``revision`` finishes; return it, the answers
    by status and version, and (with ``users``) the versions each user was answered by."""
    seen: Counter[str] = Counter()
    cohorts: dict[str, set[str]] = {}
    deadline = time.monotonic() + timeout
    for n in range(100_000):
        assert time.monotonic() < deadline, f"no outcome; answers so far {seen}"
        user = f"user-{n % users}" if users else None
        response = infer(client, x, user)
        version = response.headers.get("x-model-version") or response.json().get("model_version")
        seen[f"{response.status_code} v{version}"] += 1
        if user is not None and response.status_code == 200:
            cohorts.setdefault(user, set()).add(str(version))
        if n % 10 == 0:
            record = registry.service.latest_rollout("ep")
            if record is not None and record.spec_revision == revision and record.finished_at:
                return record, seen, cohorts
        time.sleep(0.002)
    raise AssertionError("unreachable: the loop is bounded by its deadline")


def kinds(registry: Registry) -> Counter[str]:
    return Counter(e.kind for e in registry.rollout_history("ep"))


def answers_after(client: TestClient, count: int = 30) -> set[str]:
    time.sleep(0.6)  # three polls: every replica has the final table
    return {str(infer(client).json()["model_version"]) for _ in range(count)}


def test_a_canary_earns_full_traffic_and_moves_the_alias(
    settings: Settings, registry: Registry
) -> None:
    with serving(settings) as client:
        revision = deploy(registry, "{kind: canary, steps: [50, 100], step_interval: 1s}", 2)
        record, seen, _ = drive(client, registry, revision)
        assert record.phase == "promoted", registry.rollout_history("ep")
        assert seen["200 v2"] > 0  # the candidate answered during the canary
        assert not [k for k in seen if not k.startswith("200")]
        assert registry.get("ep@champion").number == 2
        assert answers_after(client) == {"2"}
        table = registry.service.meta.get_routes("ep")
        assert table is not None
        assert table.table["routes"] == [["2", 100]]
    assert kinds(registry)["rollout.promoted"] == 1


def test_a_failing_canary_rolls_back_exactly_once_and_a_new_one_leaves_no_stale_route(
    settings: Settings, registry: Registry
) -> None:
    with serving(settings) as client:
        revision = deploy(registry, "{kind: canary, steps: [30, 100], step_interval: 1s}", 3)
        record, seen, _ = drive(client, registry, revision, x=1000.0)  # v3 fails on it
        assert record.phase == "rolled_back"
        assert seen["500 v3"] > 0
        assert seen["200 v1"] > 0
        assert registry.get("ep@champion").number == 1
        assert answers_after(client) == {"1"}
        time.sleep(1.0)  # more ticks change nothing: the rollback happened once
        assert kinds(registry)["rollout.rolled_back"] == 1
        rollback = [e for e in registry.rollout_history("ep") if e.kind == "rollout.rolled_back"]
        assert any(f["name"] == "error_rate" for f in rollback[0].figures)

        revision = deploy(registry, "{kind: canary, steps: [50, 100], step_interval: 1s}", 2)
        record, seen, _ = drive(client, registry, revision)
        assert record.phase == "promoted"
        assert "200 v3" not in seen
        assert "500 v3" not in seen
        assert answers_after(client) == {"2"}
        table = registry.service.meta.get_routes("ep")
        assert table is not None
        assert table.table["routes"] == [["2", 100]]
        assert table.table["shadow"] is None


def test_a_shadow_never_answers_clients_and_its_agreement_decides(
    settings: Settings, registry: Registry
) -> None:
    with serving(settings) as client:
        spec = "{kind: shadow, fraction: 1.0, duration: 1s, min_requests: 20}"
        revision = deploy(registry, spec, 3)  # v3 answers 1 where v1 answers 0
        record, seen, _ = drive(client, registry, revision)
        assert record.phase == "rolled_back"
        assert set(seen) == {"200 v1"}  # the shadow's answers never reached a client
        rollback = [e for e in registry.rollout_history("ep") if e.kind == "rollout.rolled_back"]
        agreement = [f for f in rollback[0].figures if f["name"] == "shadow_agreement"]
        assert agreement
        assert agreement[0]["figure"] == 0.0

        revision = deploy(registry, spec, 2)  # v2 agrees with v1 on every request
        record, seen, _ = drive(client, registry, revision)
        assert record.phase == "promoted"
        assert set(seen) <= {"200 v1", "200 v2"}
        assert registry.get("ep@champion").number == 2


def test_ab_cohorts_are_sticky_and_the_split_holds_for_its_duration(
    settings: Settings, registry: Registry
) -> None:
    with serving(settings) as client:
        spec = "{kind: ab, split: 50, sticky_key: 'header:X-User-ID', duration: 6s}"
        revision = deploy(registry, spec, 2)
        deadline = time.monotonic() + 30
        while True:  # until the split is routed here: some request answered by v2
            assert time.monotonic() < deadline, "the A/B split never started"
            if any(
                infer(client, user=f"user-{u}").json()["model_version"] == "2" for u in range(40)
            ):
                break
            time.sleep(0.1)
        cohorts: dict[str, set[str]] = {}
        for _ in range(3):
            for u in range(40):
                answer = infer(client, user=f"user-{u}").json()
                cohorts.setdefault(f"user-{u}", set()).add(answer["model_version"])
        record = registry.service.latest_rollout("ep")
        assert record is not None
        assert record.phase == "ab"  # the samples were all taken during the split
        assert all(len(versions) == 1 for versions in cohorts.values()), cohorts
        on_v2 = sum(versions == {"2"} for versions in cohorts.values())
        assert 8 <= on_v2 <= 32  # 40 users split 50/50
        record, _, _ = drive(client, registry, revision, users=40)
        assert record.phase == "promoted"
        assert answers_after(client) == {"2"}


def test_blue_green_switches_in_one_step(settings: Settings, registry: Registry) -> None:
    with serving(settings) as client:
        revision = deploy(registry, "{kind: blue-green, switch_after: 0s, verify_for: 1s}", 2)
        record, seen, _ = drive(client, registry, revision)
        assert record.phase == "promoted"
        assert set(seen) == {"200 v1", "200 v2"}
        assert answers_after(client) == {"2"}
    published = registry.service.audit(action="routes.publish")
    tables = [e.details["table"]["routes"] for e in sorted(published, key=lambda e: e.id)]
    assert tables == [[["1", 100]], [["2", 100]]]  # every request to v1, then every one to v2


def test_the_gates_stop_a_breaking_or_regressing_candidate_before_any_traffic(
    settings: Settings, registry: Registry, tmp_path: Path
) -> None:
    """In the server: the schema gate blocks a candidate that no longer accepts ``x``; the
    regression gate, on a registered golden dataset, blocks v3 (it answers 1 where the labels
    and the baseline say 0). Neither candidate answers a request; every report is stored."""
    breaking = registry.register(ZeroOnY(), name="ep", input_example=pd.DataFrame({"y": [0.0]}))
    golden = tmp_path / "golden.csv"
    pd.DataFrame({"x": [float(i % 40) for i in range(60)], "label": [0] * 60}).to_csv(
        golden, index=False
    )
    dataset = registry.register_dataset(golden, "golden")
    regression = (
        f"gates: {{regression: {{dataset: 'golden:{dataset.number}', label_column: label, "
        "metric_tolerances: {accuracy: 0.01}}}\n"
    )
    with serving(settings) as client:
        revision = deploy(registry, CANARY, breaking.number)
        record, seen, _ = drive(client, registry, revision)
        assert record.phase == "rolled_back"
        assert set(seen) == {"200 v1"}
        (schema,) = gate_reports(registry, f"ep:{breaking.number}", "schema")
        assert not schema.passed

        revision = deploy(registry, CANARY, 3, extra=regression)
        record, seen, _ = drive(client, registry, revision)
        assert record.phase == "rolled_back"
        assert set(seen) == {"200 v1"}
        (report,) = gate_reports(registry, "ep:3", "regression")
        assert not report.passed
        rollback = [e for e in registry.rollout_history("ep") if e.kind == "rollout.rolled_back"]
        assert len(rollback) == 2
        assert "regression" in rollback[-1].reason
    assert registry.get("ep@champion").number == 1


def test_missing_data_waits_and_then_aborts_without_a_rollback(
    settings: Settings, registry: Registry
) -> None:
    with serving(settings):
        revision = deploy(
            registry, "{kind: canary, steps: [50, 100], step_interval: 1s}", 3, no_data="3s"
        )
        deadline = time.monotonic() + 30
        while True:  # no request is sent: the candidate never has figures
            record = registry.service.latest_rollout("ep")
            if record is not None and record.spec_revision == revision and record.finished_at:
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert record.phase == "aborted"
        assert kinds(registry)["rollout.rolled_back"] == 0
        assert registry.get("ep@champion").number == 1
