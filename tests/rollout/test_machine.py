from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import modelport.rollout as rollout
from modelport.core.clock import FakeClock
from modelport.core.deployment import DeploymentSpec, parse_spec
from modelport.core.errors import ConflictError, InvalidInputError
from modelport.rollout import (
    Action,
    Command,
    Event,
    GatesReported,
    Observation,
    Promote,
    Record,
    Rollback,
    RolloutState,
    RunGates,
    SetWeights,
    ShadowWindow,
    StartShadow,
    StopShadow,
    Tick,
    VersionWindow,
    action_to_dict,
    new_rollout,
    plan,
    step,
)
from modelport.rollout.gates import Check as GateCheck
from modelport.rollout.gates import GateReport

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HEAD = "endpoint: fraud\nbaseline: fraud@champion\ncandidate: fraud:4\n"
CANARY = HEAD + "strategy: {kind: canary, steps: [10, 50, 100], step_interval: 5m}\n"
BASE = VersionWindow(requests=5000, errors=25, p95_ms=80.0)
GOOD = Observation(BASE, VersionWindow(requests=500, errors=2, p95_ms=85.0))
BAD = Observation(BASE, VersionWindow(requests=500, errors=100, p95_ms=85.0))
THIN_BAD = Observation(BASE, VersionWindow(requests=20, errors=20, p95_ms=900.0))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def gates(passed: bool = True) -> GatesReported:
    check = GateCheck("answered", 3 if passed else 1, 3, passed, op=">=")
    return GatesReported((GateReport("smoke", "fraud:4", None, (check,)),))


class Run:
    """Drives one rollout and keeps every action it emitted."""

    def __init__(self, text: str = CANARY, baseline: int = 3, candidate: int | None = 4) -> None:
        self.spec: DeploymentSpec = parse_spec(text)
        self.state = new_rollout(
            self.spec, baseline_version=baseline, candidate_version=candidate, now=T0
        )
        self.history: list[Action] = []

    def send(self, event: Event, seconds: float) -> list[Action]:
        self.state, actions = step(self.state, event, at(seconds))
        self.history.extend(actions)
        return actions

    def started(self) -> Run:
        """Past the gates, at the first stage (t=0)."""
        self.send(Tick(), 0)
        self.send(gates(), 0)
        return self

    def count(self, kind: type) -> int:
        return sum(isinstance(a, kind) for a in self.history)


def traffic(actions: list[Action]) -> list[Action]:
    return [a for a in actions if not isinstance(a, Record)]


def events(actions: list[Action]) -> list[str]:
    return [a.event for a in actions if isinstance(a, Record)]


def test_plans() -> None:
    assert [s.candidate_weight for s in plan(parse_spec(CANARY))] == [10, 50]
    shadow = parse_spec(
        HEAD + "strategy: {kind: shadow, fraction: 0.2, then: {steps: [25, 100]}}\n"
    )
    assert [(s.name, s.candidate_weight, s.shadow_fraction) for s in plan(shadow)] == [
        ("shadow", 0, 0.2),
        ("canary", 25, None),
    ]
    bg = plan(parse_spec(HEAD + "strategy: {kind: blue-green, switch_after: 1m}\n"))
    assert [(s.name, s.candidate_weight, s.analysed, s.compare_baseline) for s in bg] == [
        ("preview", 0, False, True),
        ("verify", 100, True, False),
    ]
    assert plan(parse_spec(HEAD + "strategy: {kind: direct}\n")) == ()


def test_a_full_canary_promotes_with_the_right_actions() -> None:
    run = Run()
    assert run.state.phase == "pending"
    assert traffic(run.send(Tick(), 0)) == [SetWeights(100, 0), RunGates(("schema", "smoke"))]
    assert run.state.phase == "smoke"
    assert traffic(run.send(gates(), 10)) == [SetWeights(90, 10)]
    assert (run.state.phase, run.state.weights) == ("canary", (90, 10))
    assert run.send(GOOD, 100) == []  # passing, but the step interval has not elapsed
    assert traffic(run.send(GOOD, 310)) == [SetWeights(50, 50)]
    assert run.send(GOOD, 500) == []
    final = run.send(GOOD, 610)
    assert traffic(final) == [SetWeights(0, 100), Promote("champion", 4)]
    assert run.state.phase == "promoted"
    assert run.state.terminal
    assert events(run.history) == [
        "rollout.started",
        "rollout.gates_passed",
        "rollout.step",
        "rollout.step",
        "rollout.promoted",
    ]
    promoted = final[-1]
    assert isinstance(promoted, Record)
    assert {c.name for c in promoted.figures} >= {"requests", "error_rate", "p95_ratio"}
    assert run.send(BAD, 700) == []  # promoted is terminal


def test_a_step_needs_both_the_interval_and_a_pass() -> None:
    run = Run().started()
    thin = Observation(BASE, VersionWindow(requests=50, errors=0, p95_ms=80.0))
    assert run.send(thin, 400) == []  # interval elapsed, data insufficient: wait
    assert run.state.weights == (90, 10)
    assert traffic(run.send(GOOD, 401)) == [SetWeights(50, 50)]


def test_a_breach_rolls_back_exactly_once() -> None:
    run = Run().started()
    actions = run.send(BAD, 60)
    assert traffic(actions) == [Rollback(actions[0].reason)]  # type: ignore[union-attr]
    assert "error rate 0.2 is above 0.05" in actions[0].reason  # type: ignore[union-attr]
    assert run.state.phase == "rolled_back"
    assert run.state.weights == (100, 0)
    for i, event in enumerate([BAD, GOOD, Tick(), BAD, gates(), THIN_BAD] * 5):
        assert run.send(event, 61 + i) == []
    assert run.send(Command("rollback"), 200) == []  # repeating the outcome is a no-op
    assert run.count(Rollback) == 1
    with pytest.raises(ConflictError, match="rolled back already"):
        run.send(Command("promote"), 201)


def test_missing_data_waits_then_aborts_at_the_timeout_and_never_rolls_back() -> None:
    run = Run().started()
    timeout = run.spec.analysis.no_data_timeout
    for t in range(60, int(timeout), 60):
        event = Tick() if t % 120 else THIN_BAD  # no data, or too little (all errors)
        assert run.send(event, t) == [], t
    assert run.state.phase == "canary"
    actions = run.send(Tick(), timeout)
    assert traffic(actions) == [SetWeights(100, 0)]
    assert events(actions) == ["rollout.aborted"]
    assert run.state.phase == "aborted"
    assert run.count(Rollback) == 0
    assert run.send(BAD, timeout + 1) == []


def test_the_no_data_clock_restarts_after_a_pass() -> None:
    run = Run(CANARY.replace("5m", "1h")).started()
    timeout = run.spec.analysis.no_data_timeout
    run.send(GOOD, timeout - 10)  # passes (interval not elapsed): not waiting any more
    assert run.send(Tick(), timeout + 10) == []  # waiting starts again now
    assert run.send(Tick(), 2 * timeout) == []
    assert run.state.phase == "canary"
    assert events(run.send(Tick(), 2 * timeout + 10)) == ["rollout.aborted"]


def test_a_stale_observation_is_ignored() -> None:
    run = Run().started()
    run.send(GOOD, 310)  # now at 50%, stage started at t=310
    stale = Observation(BASE, BAD.candidate, since=at(0))
    assert run.send(stale, 320) == []
    assert run.state.phase == "canary"
    fresh = Observation(BASE, BAD.candidate, since=at(310))
    assert run.count(Rollback) == 0
    run.send(fresh, 330)
    assert run.count(Rollback) == 1


def test_failing_gates_roll_back_before_any_traffic() -> None:
    run = Run()
    run.send(Tick(), 0)
    actions = run.send(gates(passed=False), 5)
    assert traffic(actions) == [Rollback("gates failed: smoke gate FAILED for fraud:4: answered")]
    record = actions[-1]
    assert isinstance(record, Record)
    assert record.figures[0].name == "answered"
    assert run.state.phase == "rolled_back"
    assert not any(isinstance(a, SetWeights) and a.candidate for a in run.history)


def test_gates_that_never_report_abort() -> None:
    run = Run()
    run.send(Tick(), 0)
    timeout = run.spec.analysis.no_data_timeout
    assert run.send(GOOD, timeout - 1) == []
    assert events(run.send(Tick(), timeout)) == ["rollout.aborted"]
    assert run.count(Rollback) == 0


def test_on_failure_pause_returns_traffic_and_resumes_the_stage_afresh() -> None:
    run = Run(CANARY + "on_failure: pause\n").started()
    actions = run.send(BAD, 60)
    assert traffic(actions) == [SetWeights(100, 0)]
    assert events(actions) == ["rollout.paused"]
    assert (run.state.phase, run.state.paused_by) == ("paused", "failure")
    assert run.send(BAD, 70) == []
    assert run.send(GOOD, 80) == []
    assert run.send(Command("pause"), 90) == []
    resumed = run.send(Command("resume", actor="ana"), 1000)
    assert traffic(resumed) == [SetWeights(90, 10)]
    assert events(resumed) == ["rollout.resumed"]
    assert run.state.phase == "canary"
    assert run.state.stage_started_at == at(1000)
    assert run.send(GOOD, 1100) == []  # the stage clock restarted at the resume
    assert traffic(run.send(GOOD, 1300)) == [SetWeights(50, 50)]
    assert run.count(Rollback) == 0


def test_operator_pause_holds_weights_and_keeps_guarding() -> None:
    run = Run().started()
    run.send(GOOD, 310)  # 50%
    paused = run.send(Command("pause", actor="ana", reason="investigating"), 320)
    assert traffic(paused) == []
    assert paused[0].reason == "paused by ana: investigating; weights held at 50/50"  # type: ignore[union-attr]
    assert run.state.weights == (50, 50)
    assert run.send(GOOD, 10_000) == []  # no step and no timeout while paused
    assert run.send(Tick(), 20_000) == []
    actions = run.send(BAD, 20_001)  # still guarded: a breach triggers on_failure
    assert [type(a) for a in traffic(actions)] == [Rollback]
    assert run.state.phase == "rolled_back"


def test_operator_resume_restarts_the_stage_clock() -> None:
    run = Run().started()
    run.send(Command("pause"), 100)
    resumed = run.send(Command("resume"), 400)
    assert traffic(resumed) == []  # weights were held, nothing to move
    assert run.send(GOOD, 500) == []  # interval counts from the resume, not the stage start
    assert traffic(run.send(GOOD, 700)) == [SetWeights(50, 50)]


def test_operator_promote_mid_canary() -> None:
    run = Run().started()
    actions = run.send(Command("promote", actor="ana"), 30)
    assert traffic(actions) == [SetWeights(0, 100), Promote("champion", 4)]
    assert run.state.phase == "promoted"
    assert run.send(Command("promote"), 31) == []
    with pytest.raises(ConflictError, match="cannot rollback"):
        run.send(Command("rollback"), 32)


def test_operator_rollback_and_abort() -> None:
    run = Run().started()
    actions = run.send(Command("rollback", actor="ana", reason="bad latency"), 30)
    assert traffic(actions) == [Rollback("rolled back by ana: bad latency")]
    run = Run().started()
    assert traffic(run.send(Command("abort"), 30)) == [SetWeights(100, 0)]
    assert run.state.phase == "aborted"
    assert run.send(Command("abort"), 31) == []
    with pytest.raises(ConflictError):
        run.send(Command("resume"), 32)


def test_commands_that_change_nothing() -> None:
    run = Run().started()
    before = run.state
    assert run.send(Command("resume"), 10) == []  # not paused
    assert run.state is before
    with pytest.raises(InvalidInputError, match="unknown rollout command"):
        Command("explode")  # type: ignore[arg-type]


def test_pause_while_pending_and_during_gates() -> None:
    run = Run()
    run.send(Command("pause"), 0)
    assert run.send(Tick(), 10) == []
    assert traffic(run.send(Command("resume"), 20)) == []
    assert run.state.phase == "pending"
    run.send(Tick(), 30)
    run.send(Command("pause"), 40)
    assert run.send(gates(), 50) == []  # a report while paused is not acted on
    resumed = run.send(Command("resume"), 60)
    assert traffic(resumed) == [RunGates(("schema", "smoke"))]
    assert traffic(run.send(gates(), 70)) == [SetWeights(90, 10)]


def test_serialise_and_restore_mid_rollout_without_a_double_step() -> None:
    leader = Run().started()
    leader.send(GOOD, 310)  # advanced to 50% at t=310
    saved = json.dumps(leader.state.to_dict())
    restored = RolloutState.from_dict(json.loads(saved))
    assert restored == leader.state
    # a new leader feeding the same figures right away does not step again
    state, actions = step(restored, GOOD, at(311))
    assert actions == []
    assert state.weights == (50, 50)
    state, actions = step(state, GOOD, at(611))
    assert traffic(actions) == [SetWeights(0, 100), Promote("champion", 4)]


def test_replaying_an_event_on_the_state_before_it_gives_the_same_result() -> None:
    run = Run().started()
    before = RolloutState.from_dict(json.loads(json.dumps(run.state.to_dict())))
    first = step(run.state, GOOD, at(310))
    again = step(before, GOOD, at(310))
    assert first == again
    assert first[0].revision == run.state.revision + 1


def test_revision_grows_only_on_change() -> None:
    run = Run().started()
    revision = run.state.revision
    run.send(THIN_BAD, 10)  # waiting since the stage start: nothing changes
    assert run.state.revision == revision
    run.send(GOOD, 20)  # a pass clears the wait marker
    assert run.state.revision == revision + 1


def test_restoring_a_corrupt_state_is_refused() -> None:
    data = Run().started().state.to_dict()
    tampered = dict(data, spec={**data["spec"], "on_failure": "pause"})
    with pytest.raises(InvalidInputError, match="spec digest"):
        RolloutState.from_dict(tampered)
    with pytest.raises(InvalidInputError, match="corrupt at phase"):
        RolloutState.from_dict(dict(data, phase="flying"))
    with pytest.raises(InvalidInputError, match="corrupt at started_at"):
        RolloutState.from_dict(dict(data, started_at="2026-03-01T12:00:00"))
    with pytest.raises(InvalidInputError, match="corrupt"):
        RolloutState.from_dict(dict(data, stage=7))
    with pytest.raises(InvalidInputError, match="corrupt at extra"):
        RolloutState.from_dict(dict(data, extra=1))


def test_shadow_then_canary() -> None:
    run = Run(
        HEAD + "strategy: {kind: shadow, fraction: 0.2, timeout_ms: 300, duration: 10m, "
        "min_requests: 300, then: {steps: [25, 100], step_interval: 5m}}\n"
    )
    run.send(Tick(), 0)
    assert traffic(run.send(gates(), 0)) == [StartShadow(0.2, 300)]
    assert (run.state.phase, run.state.weights) == ("shadow", (100, 0))
    mirrored = VersionWindow(requests=400, errors=1, p95_ms=90.0)
    agreeing = Observation(BASE, mirrored, ShadowWindow(compared=400, agreed=396))
    assert run.send(agreeing, 300) == []
    assert traffic(run.send(agreeing, 600)) == [StopShadow(), SetWeights(75, 25)]
    assert traffic(run.send(GOOD, 900)) == [SetWeights(0, 100), Promote("champion", 4)]


def test_shadow_disagreement_rolls_back() -> None:
    run = Run(HEAD + "strategy: {kind: shadow, fraction: 0.5}\n").started()
    mirrored = VersionWindow(requests=400, errors=0, p95_ms=80.0)
    actions = run.send(Observation(BASE, mirrored, ShadowWindow(400, 300)), 30)
    assert [type(a) for a in actions] == [Rollback, Record]
    assert "shadow agreement 0.75 is below 0.95" in actions[0].reason  # type: ignore[union-attr]


def test_shadow_alone_promotes_after_its_duration() -> None:
    run = Run(HEAD + "strategy: {kind: shadow, fraction: 0.5, duration: 1m}\n").started()
    agreeing = Observation(BASE, VersionWindow(200, 0, 80.0), ShadowWindow(200, 200))
    actions = run.send(agreeing, 60)
    assert traffic(actions) == [StopShadow(), SetWeights(0, 100), Promote("champion", 4)]


def test_ab_routes_sticky_cohorts_then_promotes() -> None:
    run = Run(HEAD + "strategy: {kind: ab, split: 30, sticky_key: header:X-User, duration: 1h}\n")
    run.send(Tick(), 0)
    assert traffic(run.send(gates(), 0)) == [SetWeights(70, 30, sticky_key="header:x-user")]
    assert run.send(GOOD, 1800) == []
    assert traffic(run.send(GOOD, 3600)) == [SetWeights(0, 100), Promote("champion", 4)]


def test_blue_green_switches_in_one_step_and_verifies_without_a_baseline() -> None:
    run = Run(HEAD + "strategy: {kind: blue-green, switch_after: 2m, verify_for: 5m}\n").started()
    assert run.state.phase == "preview"
    assert run.state.weights == (100, 0)
    assert run.send(Tick(), 60) == []
    assert traffic(run.send(Tick(), 120)) == [SetWeights(0, 100)]
    assert run.state.phase == "verify"
    switched = Observation(VersionWindow(), VersionWindow(requests=800, errors=4, p95_ms=90.0))
    assert run.send(switched, 300) == []
    assert traffic(run.send(switched, 420)) == [Promote("champion", 4)]


def test_blue_green_rolls_back_in_one_step() -> None:
    run = Run(HEAD + "strategy: {kind: blue-green}\n").started()
    run.send(Tick(), 0)  # switch_after defaults to 0
    assert run.state.weights == (0, 100)
    broken = Observation(VersionWindow(), VersionWindow(requests=800, errors=400, p95_ms=90.0))
    assert [type(a) for a in traffic(run.send(broken, 30))] == [Rollback]


def test_direct_with_a_candidate_switches_after_the_gates() -> None:
    run = Run(HEAD + "strategy: {kind: direct}\ngates: {smoke: false}\n")
    assert traffic(run.send(Tick(), 0)) == [SetWeights(100, 0), RunGates(("schema",))]
    assert traffic(run.send(gates(), 1)) == [SetWeights(0, 100), Promote("champion", 4)]


def test_direct_without_a_candidate_routes_the_baseline() -> None:
    run = Run("endpoint: fraud\nbaseline: fraud:3\n", candidate=None)
    assert run.send(Tick(), 0) == [
        SetWeights(100, 0),
        Record("rollout.promoted", "direct: fraud:3 (version 3) takes all traffic"),
    ]
    assert run.state.phase == "promoted"
    with pytest.raises(ConflictError):
        Run("endpoint: fraud\nbaseline: fraud:3\n", candidate=None).send(Command("promote"), 0)


def test_manual_promotion_waits_for_the_operator() -> None:
    run = Run(CANARY + "promotion: manual\npromote_alias: null\n").started()
    run.send(GOOD, 300)
    ready = run.send(GOOD, 600)
    assert traffic(ready) == []
    assert events(ready) == ["rollout.ready"]
    assert run.state.ready
    assert run.state.weights == (50, 50)
    assert run.send(GOOD, 900) == []
    assert run.send(GOOD, 5000) == []
    assert traffic(run.send(Command("promote"), 5001)) == [SetWeights(0, 100), Promote(None, 4)]


def test_manual_promotion_keeps_guarding() -> None:
    run = Run(CANARY + "promotion: manual\n").started()
    run.send(GOOD, 300)
    run.send(GOOD, 600)
    assert [type(a) for a in traffic(run.send(BAD, 700))] == [Rollback]


def test_new_rollout_checks_the_resolved_versions() -> None:
    spec = parse_spec(CANARY)
    with pytest.raises(InvalidInputError, match="cannot resolve to version 5"):
        new_rollout(spec, baseline_version=3, candidate_version=5, now=T0)
    with pytest.raises(InvalidInputError, match="the baseline itself"):
        new_rollout(spec, baseline_version=4, candidate_version=4, now=T0)
    with pytest.raises(InvalidInputError, match="candidate_version"):
        new_rollout(spec, baseline_version=3, now=T0)
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        new_rollout(spec, baseline_version=3, candidate_version=4, now=datetime(2026, 1, 1))


def test_a_clock_can_stand_in_for_now() -> None:
    clock = FakeClock(T0)
    state = new_rollout(parse_spec(CANARY), baseline_version=3, candidate_version=4, now=clock)
    clock.advance(5)
    state, _ = step(state, Tick(), clock)
    assert state.updated_at == at(5)
    assert state.stage_started_at == at(5)


def test_actions_serialise_for_the_audit_log() -> None:
    run = Run().started()
    run.send(BAD, 10)
    rows: list[dict[str, Any]] = [action_to_dict(a) for a in run.history]
    assert json.loads(json.dumps(rows)) == rows
    assert rows[1] == {"type": "RunGates", "gates": ["schema", "smoke"]}
    rolled = next(r for r in rows if r["type"] == "Record" and r["event"] == "rollout.rolled_back")
    rate = next(f for f in rolled["figures"] if f["name"] == "error_rate")
    assert rate["outcome"] == "fail"
    assert rate["threshold"] == 0.05


def test_package_all_is_sorted_and_resolvable() -> None:
    assert rollout.__all__ == sorted(rollout.__all__)
    for name in rollout.__all__:
        assert hasattr(rollout, name), name


def test_an_abort_or_pause_during_shadow_stops_the_mirror() -> None:
    shadow = HEAD + "strategy: {kind: shadow, fraction: 0.5}\n"
    run = Run(shadow).started()
    timeout = run.spec.analysis.no_data_timeout
    assert traffic(run.send(Tick(), timeout)) == [StopShadow(), SetWeights(100, 0)]
    assert run.state.phase == "aborted"
    paused = Run(shadow + "on_failure: pause\n").started()
    mirrored = VersionWindow(requests=400, errors=0, p95_ms=80.0)
    actions = paused.send(Observation(BASE, mirrored, ShadowWindow(400, 100)), 30)
    assert traffic(actions) == [StopShadow()]  # weights were already all on the baseline
    resumed = paused.send(Command("resume"), 40)
    assert traffic(resumed) == [StartShadow(0.5, 1000)]


def test_the_ab_promotion_records_the_arms_differences_with_intervals() -> None:
    run = Run(HEAD + "strategy: {kind: ab, split: 50, sticky_key: header:X-User, duration: 1h}\n")
    run.started()
    arms = Observation(
        VersionWindow(requests=2000, errors=60, p95_ms=10.0, labeled=1000, accuracy=0.90),
        VersionWindow(requests=2000, errors=20, p95_ms=10.0, labeled=1000, accuracy=0.95),
    )
    actions = run.send(arms, 3600)
    assert Promote("champion", 4) in actions
    promoted = next(a for a in actions if isinstance(a, Record) and a.event == "rollout.promoted")
    figures = {f.name: f for f in promoted.figures}
    errors, accuracy = figures["ab_error_rate_diff"], figures["ab_accuracy_diff"]
    assert errors.outcome == accuracy.outcome == "info"
    assert errors.figure == pytest.approx(0.01 - 0.03)
    assert accuracy.figure == pytest.approx(0.05)
    assert "95% CI" in errors.note
    assert "differs" in errors.note  # 1% against 3% over 2000 requests each
    assert "differs" in accuracy.note


def test_ab_figures_wait_for_both_arms() -> None:
    from modelport.rollout.analysis import ab_figures

    checks = ab_figures(VersionWindow(), VersionWindow(requests=10))
    assert [c.name for c in checks] == ["ab_error_rate_diff"]
    assert checks[0].figure is None
    assert "no data" in checks[0].note
