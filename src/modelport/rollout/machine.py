"""The rollout state machine of one endpoint: pure, driven by events and an injected time.

    pending ─► smoke ─► [shadow] ─► canary steps │ ab │ preview ─► verify ─► promoted
                 │          │ a failing gate or stage ─► rolled_back (on_failure: rollback)
                 │          │                         └► paused      (on_failure: pause)
                 └──────────┴ no data for analysis.no_data_timeout ─► aborted

``step(state, event, now) -> (state, actions)``: events are ``Tick`` (time passed),
``Observation`` (windows measured since ``state.stage_started_at``), ``GatesReported`` (the
``rollout.gates`` reports a ``RunGates`` asked for) and operator ``Command``s; actions are data for
the controller to apply (weights, shadow, gates, promotion, rollback) and ``Record``s for the
audit log, carrying the checks that justified each move. The types live in ``rollout.state``.

Rules:
- a stage advances only when ``hold_s`` (``step_interval``, ``duration``...) has elapsed since it
  began *and* its analysis passes; the final step to 100% is the promotion (with
  ``promotion: manual`` the machine marks itself ``ready`` and waits for an operator promote).
- a failure yields exactly one ``Rollback`` and the terminal ``rolled_back``; terminal states
  ignore further observations, so no second action can follow.
- missing data never fails a stage: it waits, and after ``no_data_timeout`` without a pass the
  rollout is ``aborted`` with one ``SetWeights(100, 0)``. Gates that never report abort alike.
- ``on_failure: pause`` is the safe pause: traffic goes back to the baseline (and any shadow
  stops) but the rollout stays resumable; ``resume`` re-enters the failed stage afresh.
- an operator ``pause`` holds the current weights (nothing failed), stops every timer and keeps
  guarding: a failing analysis while paused still triggers ``on_failure``. ``resume`` restarts
  the current stage's clock, so a resume never skips a step.
- commands work in any non-terminal phase. Repeating the terminal outcome (``rollback`` on a
  rolled back rollout) is a no-op; contradicting it raises ``ConflictError``.

The state is a frozen dataclass with ``to_dict``/``from_dict``; ``revision`` grows on every
change, so a controller can persist with compare-and-swap and a new leader resumes exactly where
the old one stopped (an observation measured before the current stage began is ignored).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from modelport.core.clock import Clock
from modelport.core.deployment import DeploymentSpec
from modelport.core.errors import ConflictError, InvalidInputError
from modelport.rollout.analysis import Verdict, ab_figures, analyse
from modelport.rollout.state import (
    Action,
    Command,
    Event,
    Figure,
    GatesReported,
    Observation,
    Phase,
    Promote,
    Record,
    Rollback,
    RolloutState,
    RunGates,
    SetWeights,
    Stage,
    StartShadow,
    StopShadow,
    plan,
)

__all__ = ["new_rollout", "step"]

_OUTCOME = {"promote": "promoted", "rollback": "rolled_back", "abort": "aborted"}


def new_rollout(
    spec: DeploymentSpec,
    *,
    baseline_version: int,
    candidate_version: int | None = None,
    now: datetime | Clock,
) -> RolloutState:
    """A ``pending`` rollout; the versions are the spec's refs as the registry resolved them."""
    at, ep = _instant(now), spec.endpoint
    if (spec.candidate is None) != (candidate_version is None):
        raise InvalidInputError(
            f"endpoint {ep!r}: pass candidate_version exactly when the spec names a candidate"
        )
    for ref, version in ((spec.baseline, baseline_version), (spec.candidate, candidate_version)):
        if ref is not None and version is not None and ref.version not in (None, version):
            raise InvalidInputError(f"endpoint {ep!r}: {ref} cannot resolve to version {version}")
        if version is not None and version < 1:
            raise InvalidInputError(f"endpoint {ep!r}: versions start at 1 (got {version})")
    if candidate_version == baseline_version:
        raise InvalidInputError(
            f"endpoint {ep!r}: candidate {spec.candidate} is version {candidate_version}, the "
            f"baseline itself; register a new version or move the alias first"
        )
    return RolloutState(
        spec, baseline_version, candidate_version, "pending", at, at, reason="waiting to start"
    )


def step(
    state: RolloutState, event: Event, now: datetime | Clock
) -> tuple[RolloutState, list[Action]]:
    """Apply one event at time ``now`` (a timezone-aware datetime, or a ``Clock``)."""
    at = _instant(now)
    new: RolloutState
    actions: list[Action]
    if isinstance(event, Command):
        new, actions = _command(state, event, at)
    elif state.terminal:
        return state, []
    elif state.phase == "pending":
        new, actions = (state, []) if isinstance(event, GatesReported) else _begin(state, at)
    elif state.phase == "paused":
        new, actions = _guard(state, event, at)
    elif isinstance(event, GatesReported):
        new, actions = _gates(state, event, at) if state.phase == "smoke" else (state, [])
    elif state.phase == "smoke":
        new, actions = _wait(state, at, "the gates did not report", ())
    else:
        new, actions = _observe(state, _fresh(state, event), at)
    if new == state:
        return state, actions
    return replace(new, revision=state.revision + 1, updated_at=at), actions


def _begin(state: RolloutState, at: datetime) -> tuple[RolloutState, list[Action]]:
    spec = state.spec
    if state.candidate_version is None:
        reason = f"direct: {spec.baseline} (version {state.baseline_version}) takes all traffic"
        new = replace(state, phase="promoted", reason=reason)
        return new, [SetWeights(100, 0), Record("rollout.promoted", reason)]
    gates = _gate_names(spec)
    reason = (
        f"{spec.strategy.kind} rollout of version {state.candidate_version} over version "
        f"{state.baseline_version} started; running gates: {', '.join(gates)}"
    )
    new = replace(state, phase="smoke", stage_started_at=at, waiting_since=at, reason=reason)
    return new, [SetWeights(100, 0), RunGates(gates), Record("rollout.started", reason)]


def _gate_names(spec: DeploymentSpec) -> tuple[str, ...]:
    names = ["schema"]
    if spec.gates.smoke.enabled:
        names.append("smoke")
    if spec.gates.regression is not None:
        names.append("regression")
    return tuple(names)


def _gates(
    state: RolloutState, report: GatesReported, at: datetime
) -> tuple[RolloutState, list[Action]]:
    if not report.passed:
        return _fail(state, at, f"gates failed: {report.summary}", report.checks)
    passed: list[Action] = [Record("rollout.gates_passed", report.summary, report.checks)]
    if not plan(state.spec):
        new, actions = _promote(state, at, "gates passed; direct switch", ())
    else:
        new, actions = _enter(state, 0, at, "rollout.step", "gates passed", ())
    return new, passed + actions


def _observe(
    state: RolloutState, obs: Observation | None, at: datetime
) -> tuple[RolloutState, list[Action]]:
    stage = plan(state.spec)[state.stage]
    held = _elapsed(state.stage_started_at, at) >= stage.hold_s
    if not stage.analysed:
        return _advance(state, at, ()) if held else (state, [])
    verdict = _verdict(state, stage, obs)
    if verdict is None:
        return _wait(state, at, "no observation arrived", ())
    if verdict.outcome == "fail":
        return _fail(state, at, f"{_label(state)} failed: {verdict.summary}", verdict.checks)
    if verdict.outcome == "wait":
        return _wait(state, at, verdict.summary, verdict.checks)
    state = replace(state, waiting_since=None)
    if state.ready or not held:
        return state, []
    return _advance(state, at, verdict.checks)


def _verdict(state: RolloutState, stage: Stage, obs: Observation | None) -> Verdict | None:
    if obs is None:
        return None
    verdict = analyse(
        state.spec.analysis,
        obs.baseline if stage.compare_baseline else None,
        obs.candidate,
        obs.shadow if stage.shadow_fraction is not None else None,
        min_requests=stage.min_requests,
    )
    if stage.name == "ab":  # the arms' differences, with their intervals, go on the record
        verdict = Verdict(
            verdict.outcome, (*verdict.checks, *ab_figures(obs.baseline, obs.candidate))
        )
    return verdict


def _wait(
    state: RolloutState, at: datetime, why: str, checks: tuple[Figure, ...]
) -> tuple[RolloutState, list[Action]]:
    since = state.waiting_since or at
    timeout = state.spec.analysis.no_data_timeout
    if _elapsed(since, at) >= timeout:
        return _abort(state, at, f"aborted after {timeout:g}s without enough data: {why}", checks)
    return replace(state, waiting_since=since), []


def _advance(
    state: RolloutState, at: datetime, checks: tuple[Figure, ...]
) -> tuple[RolloutState, list[Action]]:
    stages, label = plan(state.spec), _label(state)
    if state.stage + 1 < len(stages):
        return _enter(state, state.stage + 1, at, "rollout.step", f"{label} passed", checks)
    if state.spec.promotion == "manual":
        reason = f"{label} passed; waiting for an operator to promote"
        return replace(state, ready=True, reason=reason), [Record("rollout.ready", reason, checks)]
    return _promote(state, at, f"{label} passed; promoting", checks)


def _enter(
    state: RolloutState, index: int, at: datetime, event: str, why: str, checks: tuple[Figure, ...]
) -> tuple[RolloutState, list[Action]]:
    stage = plan(state.spec)[index]
    weights = (100 - stage.candidate_weight, stage.candidate_weight)
    actions = _route(state, weights, stage)
    new = replace(
        state,
        phase=stage.name,
        stage=index,
        stage_started_at=at,
        waiting_since=at,
        weights=weights,
        shadow_fraction=stage.shadow_fraction,
        ready=False,
        resume_phase=None,
        paused_by=None,
    )
    reason = f"{why}; now {_label(new)}"
    return replace(new, reason=reason), [*actions, Record(event, reason, checks)]


def _route(state: RolloutState, weights: tuple[int, int], stage: Stage | None) -> list[Action]:
    """The actions that take the routes from ``state``'s to ``weights`` and ``stage``'s shadow."""
    shadow = None if stage is None else stage.shadow_fraction
    actions: list[Action] = []
    if state.shadow_fraction is not None and shadow != state.shadow_fraction:
        actions.append(StopShadow())
    if weights != state.weights:
        actions.append(SetWeights(*weights, sticky_key=None if stage is None else stage.sticky_key))
    if stage is not None and shadow is not None and shadow != state.shadow_fraction:
        actions.append(StartShadow(shadow, stage.shadow_timeout_ms))
    return actions


def _promote(
    state: RolloutState, at: datetime, reason: str, checks: tuple[Figure, ...]
) -> tuple[RolloutState, list[Action]]:
    assert state.candidate_version is not None
    actions = _route(state, (0, 100), None)
    actions += [
        Promote(state.spec.promote_alias, state.candidate_version),
        Record("rollout.promoted", reason, checks),
    ]
    return _settle(state, "promoted", (0, 100), reason), actions


def _fail(
    state: RolloutState, at: datetime, reason: str, checks: tuple[Figure, ...]
) -> tuple[RolloutState, list[Action]]:
    if state.spec.on_failure == "rollback":
        return _rollback(state, reason, checks)
    actions = _route(state, (100, 0), None)
    resume = state.resume_phase if state.phase == "paused" else state.phase
    new = replace(
        _settle(state, "paused", (100, 0), reason), resume_phase=resume, paused_by="failure"
    )
    return new, [*actions, Record("rollout.paused", f"{reason}; traffic back to baseline", checks)]


def _rollback(
    state: RolloutState, reason: str, checks: tuple[Figure, ...]
) -> tuple[RolloutState, list[Action]]:
    actions: list[Action] = [Rollback(reason), Record("rollout.rolled_back", reason, checks)]
    return _settle(state, "rolled_back", (100, 0), reason), actions


def _abort(
    state: RolloutState, at: datetime, reason: str, checks: tuple[Figure, ...]
) -> tuple[RolloutState, list[Action]]:
    actions: list[Action] = [StopShadow()] if state.shadow_fraction is not None else []
    actions += [SetWeights(100, 0), Record("rollout.aborted", reason, checks)]
    return _settle(state, "aborted", (100, 0), reason), actions


def _settle(
    state: RolloutState, phase: Phase, weights: tuple[int, int], reason: str
) -> RolloutState:
    return replace(
        state,
        phase=phase,
        weights=weights,
        shadow_fraction=None,
        waiting_since=None,
        ready=False,
        resume_phase=None,
        paused_by=None,
        reason=reason,
    )


def _command(state: RolloutState, cmd: Command, at: datetime) -> tuple[RolloutState, list[Action]]:
    by = (f" by {cmd.actor}" if cmd.actor else "") + (f": {cmd.reason}" if cmd.reason else "")
    if state.terminal:
        if _OUTCOME.get(cmd.op) == state.phase:
            return state, []
        raise ConflictError(
            f"the rollout of endpoint {state.endpoint!r} is {state.phase.replace('_', ' ')} "
            f"already, so it cannot {cmd.op}; run modelport deploy to start a new rollout"
        )
    if cmd.op == "promote":
        if state.candidate_version is None:
            raise ConflictError(f"endpoint {state.endpoint!r} has no candidate to promote")
        return _promote(state, at, f"promoted{by}", ())
    if cmd.op == "rollback":
        return _rollback(state, f"rolled back{by}", ())
    if cmd.op == "abort":
        return _abort(state, at, f"aborted{by}", ())
    if cmd.op == "pause":
        if state.phase == "paused":
            return state, []
        reason = f"paused{by}; weights held at {state.weights[0]}/{state.weights[1]}"
        new = replace(
            state, phase="paused", resume_phase=state.phase, paused_by="operator", reason=reason
        )
        return new, [Record("rollout.paused", reason)]
    if state.phase != "paused":
        return state, []
    return _resume(state, at, f"resumed{by}")


def _resume(state: RolloutState, at: datetime, reason: str) -> tuple[RolloutState, list[Action]]:
    target = state.resume_phase or "pending"
    base = replace(state, resume_phase=None, paused_by=None, reason=reason)
    if target == "pending":
        return replace(base, phase="pending"), [Record("rollout.resumed", reason)]
    if target == "smoke":
        new = replace(base, phase="smoke", stage_started_at=at, waiting_since=at)
        return new, [RunGates(_gate_names(state.spec)), Record("rollout.resumed", reason)]
    return _enter(base, state.stage, at, "rollout.resumed", reason, ())


def _guard(state: RolloutState, event: Event, at: datetime) -> tuple[RolloutState, list[Action]]:
    """While paused by an operator at a stage, a failing analysis still triggers on_failure."""
    if state.paused_by != "operator" or state.resume_phase in ("pending", "smoke"):
        return state, []
    stage = plan(state.spec)[state.stage]
    verdict = _verdict(state, stage, _fresh(state, event)) if stage.analysed else None
    if verdict is None or verdict.outcome != "fail":
        return state, []
    return _fail(
        state, at, f"{_label(state)} failed while paused: {verdict.summary}", verdict.checks
    )


def _fresh(state: RolloutState, event: Event) -> Observation | None:
    if not isinstance(event, Observation):
        return None
    start = state.stage_started_at
    if event.since is not None and start is not None and event.since < start:
        return None
    return event


def _label(state: RolloutState) -> str:
    stages = plan(state.spec)
    stage = stages[state.stage]
    return (
        f"{stage.name} stage {state.stage + 1}/{len(stages)} "
        f"(candidate at {stage.candidate_weight}%)"
    )


def _elapsed(since: datetime | None, at: datetime) -> float:
    return 0.0 if since is None else (at - since).total_seconds()


def _instant(now: datetime | Clock) -> datetime:
    at = now if isinstance(now, datetime) else now.now()
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInputError("rollout times must be timezone-aware; pass clock.now()")
    return at
