"""The rollout machine's data: the plan's stages, the events it takes, the actions it emits and
the state a controller persists (``to_dict``/``from_dict``). ``machine.step`` moves between them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from modelport.core.deployment import (
    ABStrategy,
    BlueGreenStrategy,
    CanaryStrategy,
    DeploymentSpec,
    ShadowStrategy,
    spec_from_dict,
)
from modelport.core.errors import InvalidInputError
from modelport.rollout.analysis import AnalysisCheck, ShadowWindow, VersionWindow
from modelport.rollout.gates import Check as GateCheck
from modelport.rollout.gates import GateReport

__all__ = [
    "Action",
    "Command",
    "Event",
    "Figure",
    "GatesReported",
    "Observation",
    "Op",
    "Phase",
    "Promote",
    "Record",
    "Rollback",
    "RolloutState",
    "RunGates",
    "SetWeights",
    "Stage",
    "StageName",
    "StartShadow",
    "StopShadow",
    "Tick",
    "action_to_dict",
    "plan",
]

StageName = Literal["shadow", "canary", "ab", "preview", "verify"]
Phase = Literal[
    "pending",
    "smoke",
    "shadow",
    "canary",
    "ab",
    "preview",
    "verify",
    "paused",
    "promoted",
    "rolled_back",
    "aborted",
]
TERMINAL: frozenset[str] = frozenset({"promoted", "rolled_back", "aborted"})
Op = Literal["promote", "rollback", "abort", "pause", "resume"]
Figure = AnalysisCheck | GateCheck
"""A recorded figure: an analysis check or a gate check (both have ``to_dict``)."""
_FORMAT = 1
OUTBOX_KEY = "outbox"


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of the plan: the candidate's weight, how long it holds, what it must show."""

    name: StageName
    candidate_weight: int
    hold_s: float
    min_requests: int
    shadow_fraction: float | None = None
    shadow_timeout_ms: float = 1000.0
    sticky_key: str | None = None
    analysed: bool = True
    compare_baseline: bool = True


def plan(spec: DeploymentSpec) -> tuple[Stage, ...]:
    """The stages between the gates and the promotion (none for ``direct``)."""
    s, need = spec.strategy, spec.analysis.min_requests
    if isinstance(s, CanaryStrategy):
        return _canary(s, need)
    if isinstance(s, ShadowStrategy):
        first = Stage("shadow", 0, s.duration, s.min_requests or need, s.fraction, s.timeout_ms)
        return (first, *(_canary(s.then, need) if s.then else ()))
    if isinstance(s, ABStrategy):
        return (Stage("ab", s.split, s.duration, need, sticky_key=s.sticky_key),)
    if isinstance(s, BlueGreenStrategy):
        return (
            Stage("preview", 0, s.switch_after, 0, analysed=False),
            Stage("verify", 100, s.verify_for, need, compare_baseline=False),
        )
    return ()


def _canary(s: CanaryStrategy, need: int) -> tuple[Stage, ...]:
    return tuple(Stage("canary", w, s.step_interval, need) for w in s.steps[:-1])


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed and nothing was measured (timers may fire)."""


@dataclass(frozen=True, slots=True)
class Observation:
    """Windows over the current stage; ``since`` is when they start (stale ones are ignored)."""

    baseline: VersionWindow
    candidate: VersionWindow
    shadow: ShadowWindow | None = None
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class GatesReported:
    """The reports of the gates a ``RunGates`` asked for; they pass when every report passes."""

    reports: tuple[GateReport, ...]

    @property
    def passed(self) -> bool:
        return bool(self.reports) and all(r.passed for r in self.reports)

    @property
    def checks(self) -> tuple[GateCheck, ...]:
        return tuple(c for r in self.reports for c in r.checks)

    @property
    def summary(self) -> str:
        return "; ".join(r.summary() for r in self.reports) or "no gate reported"


@dataclass(frozen=True, slots=True)
class Command:
    op: Op
    actor: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        if self.op not in get_args(Op):
            raise InvalidInputError(
                f"unknown rollout command {self.op!r}; use {', '.join(get_args(Op))}"
            )


Event = Tick | Observation | GatesReported | Command


# -- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetWeights:
    """Route ``baseline``/``candidate`` percent of traffic; cohorts by ``sticky_key`` if set."""

    baseline: int
    candidate: int
    sticky_key: str | None = None


@dataclass(frozen=True, slots=True)
class StartShadow:
    fraction: float
    timeout_ms: float


@dataclass(frozen=True, slots=True)
class StopShadow:
    pass


@dataclass(frozen=True, slots=True)
class RunGates:
    """Run these pre-traffic gates (``schema``, ``smoke``, ``regression``) on the candidate and
    answer with ``GatesReported``."""

    gates: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Promote:
    """The candidate takes all traffic for good; move ``alias`` (if any) to ``version``."""

    alias: str | None
    version: int


@dataclass(frozen=True, slots=True)
class Rollback:
    """All traffic back to the baseline, shadow stopped, the candidate marked rolled back."""

    reason: str


@dataclass(frozen=True, slots=True)
class Record:
    """An audit event with the checks (figures, thresholds, outcomes) behind it."""

    event: str
    reason: str
    figures: tuple[Figure, ...] = ()


Action = SetWeights | StartShadow | StopShadow | RunGates | Promote | Rollback | Record


def action_to_dict(action: Action) -> dict[str, Any]:
    """``{"type": "SetWeights", ...fields}`` in JSON types (figures as their ``to_dict()``)."""
    data: dict[str, Any] = {"type": type(action).__name__}
    for f in fields(action):
        value = getattr(action, f.name)
        if isinstance(value, tuple):
            value = [v.to_dict() if hasattr(v, "to_dict") else v for v in value]
        data[f.name] = value
    return data


# -- state --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RolloutState:
    """Where one endpoint's rollout stands. ``weights`` and ``shadow_fraction`` are what the
    machine last asked for; ``stage`` indexes ``plan(spec)``."""

    spec: DeploymentSpec
    baseline_version: int
    candidate_version: int | None
    phase: Phase
    started_at: datetime
    updated_at: datetime
    stage: int = 0
    stage_started_at: datetime | None = None
    waiting_since: datetime | None = None
    weights: tuple[int, int] = (100, 0)
    shadow_fraction: float | None = None
    resume_phase: Phase | None = None
    paused_by: Literal["operator", "failure"] | None = None
    ready: bool = False
    revision: int = 0
    reason: str = ""

    @property
    def endpoint(self) -> str:
        return self.spec.endpoint

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        skip = {"format", "spec_digest"}
        data = {f: getattr(self, f) for f in _StateRecord.model_fields if f not in skip}
        data.update(format=_FORMAT, spec=self.spec.to_dict(), spec_digest=self.spec.digest())
        data["weights"] = list(self.weights)
        for key in ("started_at", "updated_at", "stage_started_at", "waiting_since"):
            data[key] = None if data[key] is None else data[key].isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutState:
        """Restore a persisted state; raises ``InvalidInputError`` naming what is wrong.

        A top-level ``outbox`` (the controller's committed, not yet applied effects, kept next
        to the state it belongs to: ``rollout.outbox``) is not part of the state and is ignored.
        """
        what = f"rollout state of endpoint {str(data.get('endpoint'))[:100]!r}"
        data = {k: v for k, v in data.items() if k != OUTBOX_KEY}
        try:
            record = _StateRecord.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            path = ".".join(str(p) for p in first["loc"])
            raise InvalidInputError(f"{what} is corrupt at {path}: {first['msg']}") from exc
        spec = spec_from_dict(record.spec, source=what)
        if spec.digest() != record.spec_digest or spec.endpoint != record.endpoint:
            raise InvalidInputError(f"{what} does not match its recorded spec digest")
        values = record.model_dump(exclude={"format", "spec", "spec_digest", "endpoint"})
        state = cls(spec=spec, **values)
        if not 0 <= state.stage < max(1, len(plan(spec))) or sum(state.weights) != 100:
            raise InvalidInputError(f"{what} is corrupt: stage or weights out of range")
        return state


class _StateRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1]
    endpoint: str
    spec: dict[str, Any]
    spec_digest: str
    baseline_version: int
    candidate_version: int | None
    phase: Phase
    started_at: AwareDatetime
    updated_at: AwareDatetime
    stage: int
    stage_started_at: AwareDatetime | None
    waiting_since: AwareDatetime | None
    weights: tuple[int, int]
    shadow_fraction: float | None
    resume_phase: Phase | None
    paused_by: Literal["operator", "failure"] | None
    ready: bool
    revision: int
    reason: str
