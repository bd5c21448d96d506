"""``modelport deploy``, ``modelport rollout ...`` and ``modelport deployments list`` in process:
exit codes, messages naming the field or ref at fault, tables and JSON shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.cli.conftest import Cli

from modelport.api.registry import Registry
from modelport.core.rollouts import NewRolloutEvent
from modelport.core.settings import Settings
from modelport.registry.service import RegistryService, VersionDraft
from modelport.rollout import (
    Event,
    GatesReported,
    Observation,
    Record,
    RolloutState,
    Tick,
    VersionWindow,
    action_to_dict,
    new_rollout,
    step,
)
from modelport.rollout.gates import Check as GateCheck
from modelport.rollout.gates import GateReport

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CANARY = """\
endpoint: fraud
baseline: fraud@champion
candidate: fraud:4
strategy:
  kind: canary
  steps: [10, 50, 100]
  step_interval: 60s
"""
BASE = VersionWindow(requests=5000, errors=25, p95_ms=80.0)
GOOD = Observation(BASE, VersionWindow(requests=500, errors=2, p95_ms=85.0))
BAD = Observation(BASE, VersionWindow(requests=500, errors=100, p95_ms=85.0))
PLAN_KEYS = {
    "endpoint",
    "recorded",
    "dry_run",
    "unchanged",
    "revision",
    "latest_revision",
    "digest",
    "baseline",
    "candidate",
    "strategy",
    "plan",
    "gates",
    "on_failure",
    "rollout_in_progress",
    "spec",
}
EVENT_KEYS = {
    "id",
    "rollout_id",
    "endpoint",
    "at",
    "kind",
    "phase_from",
    "phase_to",
    "actor",
    "reason",
    "figures",
}
COMMAND_KEYS = {
    "id",
    "rollout_id",
    "endpoint",
    "op",
    "actor",
    "reason",
    "pending",
    "created_at",
    "consumed_at",
}


@pytest.fixture
def home(cli: Cli, tmp_path: Path) -> Path:
    """fraud:1..4 (champion → 3) and churn:1, registered without loading any model."""
    files = tmp_path / "artifact"
    files.mkdir()
    with Registry.open(settings=Settings(home=cli.home)) as registry:
        for name, count in (("fraud", 4), ("churn", 1)):
            for i in range(count):
                (files / "model.skops").write_bytes(f"{name}-{i}".encode())
                registry.service.register(VersionDraft(name, files, "sklearn"))
        registry.set_alias("fraud", "champion", 3)
    return cli.home


@pytest.fixture
def run(cli: Cli, home: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("MODELPORT_ACTOR", "ann")
    return cli


@pytest.fixture
def service(home: Path) -> Iterator[RegistryService]:
    with Registry.open(settings=Settings(home=home, actor="controller")) as registry:
        yield registry.service


def spec_file(tmp_path: Path, text: str = CANARY, name: str = "deploy.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def gates() -> GatesReported:
    check = GateCheck("answered", 3, 3, True, op=">=")
    return GatesReported((GateReport("smoke", "fraud:4", None, (check,)),))


class Controller:
    """Steps the real machine over the recorded spec and records what a controller would."""

    def __init__(self, service: RegistryService, endpoint: str = "fraud") -> None:
        self.service = service
        deployment = service.get_deployment(endpoint)
        self.state = new_rollout(deployment.spec, baseline_version=3, candidate_version=4, now=T0)
        self.record = service.start_rollout(
            endpoint, deployment.revision, self.state.to_dict(), self.state.phase
        )

    def send(self, event: Event, seconds: float) -> Controller:
        at = T0 + timedelta(seconds=seconds)
        new, actions = step(self.state, event, at)
        events = [
            NewRolloutEvent.from_action(action_to_dict(a), self.state.phase, new.phase, at=at)
            for a in actions
            if isinstance(a, Record)
        ]
        self.record = self.service.save_rollout(
            self.record.id,
            new.to_dict(),
            new.phase,
            self.record.revision,
            finished=new.terminal,
            events=events,
        )
        self.state = new
        return self


# -- deploy -------------------------------------------------------------------------------------


def test_deploy_records_a_revision_and_says_what_will_happen(run: Cli, tmp_path: Path) -> None:
    out = run("deploy", spec_file(tmp_path))
    lines = out.splitlines()
    assert lines[0] == "fraud: recorded spec revision 1"
    assert "  baseline    fraud@champion → version 3" in lines
    assert "  candidate   fraud:4 → version 4" in lines
    assert "  plan        canary 10 → 50 → 100 every 60 s, promotes champion" in lines
    assert "  gates       schema, smoke" in lines
    assert "  on failure  rollback" in lines
    assert lines[-1] == (
        "a running `modelport serve` of the model starts it (its rollout controller); "
        "follow it with `modelport rollout status fraud`"
    )

    again = run("deploy", spec_file(tmp_path))
    assert again.splitlines()[0] == "fraud: unchanged; spec revision 1 holds this spec"
    changed = run.json("deploy", spec_file(tmp_path, CANARY.replace("60s", "5m")))
    assert set(changed) == PLAN_KEYS
    assert (changed["revision"], changed["recorded"], changed["unchanged"]) == (2, True, False)
    assert changed["baseline"] == {"ref": "fraud@champion", "version": 3}
    assert changed["candidate"] == {"ref": "fraud:4", "version": 4}
    assert changed["plan"] == "canary 10 → 50 → 100 every 5 min, promotes champion"
    assert changed["spec"]["strategy"]["step_interval"] == 300

    (audit, *_) = run.json("audit", "--action", "deployment.record")
    assert (audit["actor"], audit["object_type"], audit["object_name"]) == (
        "ann",
        "endpoint",
        "fraud",
    )


def test_deploy_describes_each_strategy(run: Cli, tmp_path: Path) -> None:
    head = "endpoint: fraud\nbaseline: fraud@champion\ncandidate: fraud:4\n"
    cases = {
        "strategy: {kind: shadow, fraction: 0.25, duration: 15m, min_requests: 500,"
        " then: {steps: [10, 100], step_interval: 5m}}": "shadow 25% of requests for 15 min (at"
        " least 500 compared), then canary 10 → 100 every 5 min, promotes champion",
        "strategy: {kind: ab, split: 30, sticky_key: header:X-User, duration: 1h}": "A/B 30% of"
        " cohorts by header:x-user for 1 h, promotes champion",
        "strategy: {kind: blue-green, verify_for: 10m}\npromotion: manual": "blue-green: switch"
        " after 0 s, verify for 10 min, then waits for `modelport rollout promote` (moves"
        " champion)",
        "strategy: {kind: direct}\npromote_alias: null": "direct: the candidate takes all"
        " traffic once the gates pass, moves no alias",
    }
    for strategy, plan in cases.items():
        shown = run.json("deploy", "--dry-run", spec_file(tmp_path, head + strategy))
        assert shown["plan"] == plan
    plain = run.json(
        "deploy", "--dry-run", spec_file(tmp_path, "endpoint: churn\nbaseline: churn:1")
    )
    assert plain["plan"] == "direct: churn:1 serves all traffic"
    assert plain["candidate"] is None
    assert plain["gates"] == []


def test_bad_spec_fields_exit_2_with_one_line_each(run: Cli, tmp_path: Path) -> None:
    text = CANARY.replace("[10, 50, 100]", "[10, 5, 100]") + "analysis: {max_eror_rate: 0.1}\n"
    err = run("deploy", spec_file(tmp_path, text), code=2)
    assert err.splitlines() == [
        "error: deploy.yaml: strategy.steps[1]: weights must increase (got 5 after 10)",
        "error: deploy.yaml: analysis.max_eror_rate: unknown field; remove it or fix its name",
    ]
    broken = run("deploy", spec_file(tmp_path, "endpoint: [fraud\n"), code=2)
    assert broken.startswith("error: deploy.yaml: not valid YAML at line")
    huge = run("deploy", spec_file(tmp_path, "# " + "x" * 1_000_001), code=2)
    assert "is over 1000000 bytes" in huge
    assert run.json("deployments", "list") == []


def test_refs_that_do_not_resolve_exit_3_naming_the_ref(
    run: Cli, tmp_path: Path, service: RegistryService
) -> None:
    cases = {
        "fraud:9": "candidate fraud:9 does not resolve: model 'fraud' has no version 9",
        "fraud@prod": "candidate fraud@prod does not resolve: model 'fraud' has no alias 'prod'",
    }
    for ref, message in cases.items():
        err = run("deploy", spec_file(tmp_path, CANARY.replace("fraud:4", ref)), code=3)
        assert message in err
    other = CANARY.replace("fraud@champion", "fraud@stable")
    assert "baseline fraud@stable does not resolve" in run(
        "deploy", spec_file(tmp_path, other), code=3
    )
    missing = "endpoint: nope\nbaseline: nope:1\n"
    assert "baseline nope:1 does not resolve: model 'nope' is not registered" in run(
        "deploy", spec_file(tmp_path, missing), code=3
    )
    golden = CANARY + "gates: {regression: {dataset: 'golden:1'}}\n"
    err = run("deploy", spec_file(tmp_path, golden), code=3)
    assert "gates.regression.dataset golden:1 does not resolve" in err
    same = run("deploy", spec_file(tmp_path, CANARY.replace("fraud:4", "fraud:3")), code=2)
    assert "candidate fraud:3 is version 3, which baseline fraud@champion already is" in same
    assert run.json("deployments", "list") == []

    (tmp_path / "golden.csv").write_text("f1,label\n1,0\n2,1\n")
    service.register_dataset(tmp_path / "golden.csv", "golden")
    ok = run("deploy", spec_file(tmp_path, golden))
    assert "  gates       schema, smoke, regression on golden:1" in ok.splitlines()


def test_dry_run_writes_nothing(run: Cli, tmp_path: Path) -> None:
    out = run("deploy", "--dry-run", spec_file(tmp_path))
    assert out.splitlines()[0] == (
        "fraud: the spec is valid and its refs resolve; would record revision 1 (dry run)"
    )
    shown = run.json("deploy", "--dry-run", spec_file(tmp_path))
    assert (shown["dry_run"], shown["recorded"], shown["revision"]) == (True, False, None)
    assert run.json("deployments", "list") == []
    assert run.json("audit", "--action", "deployment.record") == []
    run("deploy", spec_file(tmp_path))
    again = run("deploy", "--dry-run", spec_file(tmp_path))
    assert "revision 1 holds it already (dry run)" in again


# -- status, history ----------------------------------------------------------------------------


def test_status_before_and_during_a_rollout(
    run: Cli, tmp_path: Path, service: RegistryService
) -> None:
    assert "endpoint 'fraud' has no deployment" in run("rollout", "status", "fraud", code=3)
    run("deploy", spec_file(tmp_path))
    before = run("rollout", "status", "fraud")
    assert "none yet; the rollout controller starts one from revision 1" in before
    assert run.json("rollout", "status", "fraud")["rollout"] is None

    ctl = Controller(service).send(Tick(), 0).send(gates(), 1).send(GOOD, 61)
    run("rollout", "pause", "fraud", "--reason", "checking dashboards")
    out = run("rollout", "status", "fraud")
    assert out.splitlines()[0] == (
        "fraud  spec revision 1: canary 10 → 50 → 100 every 60 s, promotes champion"
    )
    assert "  phase       canary, stage 2/2 (candidate at 50%, holds 60 s)" in out
    assert "  versions    baseline 3, candidate 4" in out
    assert "  weights     baseline 50% / candidate 50%" in out
    assert "  pending     pause by ann: checking dashboards (command #" in out
    assert "gates_passed" in out
    assert "smoke → canary" in out

    shown = run.json("rollout", "status", "fraud")
    assert set(shown) == {
        "endpoint",
        "spec_revision",
        "plan",
        "rollout",
        "stage",
        "weights",
        "pending_commands",
        "events",
    }
    assert shown["rollout"]["id"] == ctl.record.id
    assert shown["rollout"]["phase"] == "canary"
    assert shown["rollout"]["candidate_version"] == 4
    assert shown["stage"]["number"] == 2
    assert shown["stage"]["count"] == 2
    assert shown["weights"] == {"baseline": 50, "candidate": 50}
    assert [c["op"] for c in shown["pending_commands"]] == ["pause"]
    assert [e["kind"] for e in shown["events"]] == [
        "rollout.started",
        "rollout.gates_passed",
        "rollout.step",
        "rollout.step",
    ]
    assert all(set(e) == EVENT_KEYS for e in shown["events"])


def test_history_is_a_timeline_with_figures(
    run: Cli, tmp_path: Path, service: RegistryService
) -> None:
    run("deploy", spec_file(tmp_path))
    Controller(service).send(Tick(), 0).send(gates(), 1).send(BAD, 30)
    out = run("rollout", "history", "fraud")
    lines = out.splitlines()
    assert lines[0].split() == ["AT", "ROLLOUT", "EVENT", "PHASE", "ACTOR", "REASON", "FIGURES"]
    assert [line.split()[4] for line in lines[1:]] == [
        "started",
        "gates_passed",
        "step",
        "rolled_back",
    ]
    assert "#1 v3→v4" in lines[1]
    assert "pending → smoke" in lines[1]
    assert "canary → rolled_back" in lines[-1]
    assert "error_rate 0.2 (vs 0.05) FAIL" in lines[-1]
    assert "answered 3" in lines[2]
    assert lines[1].split()[0] == "2026-03-01"

    events = run.json("rollout", "history", "fraud")
    assert [e["kind"] for e in events][-1] == "rollout.rolled_back"
    assert {e["actor"] for e in events} == {"controller"}
    failed = [f for f in events[-1]["figures"] if f["outcome"] == "fail"]
    assert [f["name"] for f in failed] == ["error_rate", "error_rate_increase"]
    status = run("rollout", "status", "fraud")
    assert "  phase       rolled back, finished " in status
    assert "endpoint 'nope' has no deployment" in run("rollout", "history", "nope", code=3)


# -- commands, list -----------------------------------------------------------------------------


def test_commands_are_queued_for_the_controller(
    run: Cli, tmp_path: Path, service: RegistryService
) -> None:
    assert "endpoint 'fraud' has no deployment" in run("rollout", "abort", "fraud", code=3)
    run("deploy", spec_file(tmp_path))
    err = run("rollout", "promote", "fraud", code=3)
    assert "endpoint 'fraud' has no rollout in progress, so there is nothing to promote" in err

    ctl = Controller(service)
    out = run("rollout", "resume", "fraud")
    assert out.startswith(f"fraud: resume queued as command #1 for rollout #{ctl.record.id}")
    assert "acts on it at its next step" in out
    assert "note: the rollout is not paused" in out
    for op in ("promote", "rollback", "abort", "pause"):
        cmd = run.json("rollout", op, "fraud", "--reason", f"{op} please")
        assert set(cmd) == COMMAND_KEYS
        assert (cmd["op"], cmd["actor"], cmd["reason"], cmd["pending"]) == (
            op,
            "ann",
            f"{op} please",
            True,
        )
    pending = service.pending_commands(ctl.record.id)
    assert [c.op for c in pending] == ["resume", "promote", "rollback", "abort", "pause"]
    helped = run("rollout", "pause", "--help")
    assert "Pause: hold the" in helped
    assert "--reason" in helped


def test_deployments_list_table_and_json(
    run: Cli, tmp_path: Path, service: RegistryService
) -> None:
    assert "(none)" in run("deployments", "list")
    run("deploy", spec_file(tmp_path))
    run("deploy", spec_file(tmp_path, "endpoint: churn\nbaseline: churn:1\n"))
    run("deploy", spec_file(tmp_path, CANARY.replace("60s", "2m")))
    Controller(service).send(Tick(), 0)

    lines = run("deployments", "list").splitlines()
    assert lines[0].split() == [
        "ENDPOINT",
        "REVISION",
        "STRATEGY",
        "BASELINE",
        "CANDIDATE",
        "ROLLOUT",
        "RECORDED",
        "BY",
    ]
    assert lines[1].split()[:5] == ["churn", "1", "direct", "churn:1", "-"]
    assert lines[2].split()[:7] == [
        "fraud",
        "2",
        "canary",
        "fraud@champion",
        "fraud:4",
        "#1",
        "smoke",
    ]
    assert lines[2].split()[-1] == "ann"

    listed = run.json("deployments", "list")
    assert [(d["endpoint"], d["revision"]) for d in listed] == [("churn", 1), ("fraud", 2)]
    assert listed[0]["rollout"] is None
    assert listed[1]["rollout"] == {
        "id": 1,
        "spec_revision": 2,
        "phase": "smoke",
        "revision": 2,
        "finished": False,
    }
    assert listed[1]["spec"]["strategy"]["step_interval"] == 120
    assert json.dumps(listed)  # plain JSON all the way down
    latest = service.latest_rollout("fraud")
    assert latest is not None
    assert RolloutState.from_dict(dict(latest.state)).phase == "smoke"
