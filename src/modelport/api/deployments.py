"""Recording deployment specs and reading where an endpoint's rollout stands.

``deploy(service, spec)`` checks that the spec's refs resolve in the registry (the baseline, the
candidate and the regression gate's dataset), then records the spec as the endpoint's next
revision; a running controller starts the rollout from it. ``endpoint_status`` gathers what an
operator asks first: the spec revision, the rollout's phase, stage and weights, the commands
waiting for the controller and the latest events.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.core.deployment import (
    MAX_SPEC_CHARS,
    ABStrategy,
    BlueGreenStrategy,
    CanaryStrategy,
    DeploymentSpec,
    ShadowStrategy,
    parse_spec,
)
from modelport.core.errors import (
    DatasetNotFoundError,
    InvalidInputError,
    NotFoundError,
    SpecError,
)
from modelport.core.refs import ModelRef
from modelport.core.rollouts import (
    DeploymentRecord,
    RolloutCommandRecord,
    RolloutEventRecord,
    RolloutRecord,
)
from modelport.registry.service import RegistryService
from modelport.rollout.state import plan

__all__ = [
    "DeployPlan",
    "EndpointStatus",
    "deploy",
    "describe",
    "endpoint_status",
    "format_duration",
    "gate_names",
    "read_spec",
]

LAST_EVENTS = 10


def read_spec(path: Path) -> DeploymentSpec:
    """Read and validate a spec file; ``SpecError`` (one line per problem) names the file."""
    source = path.name
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SPEC_CHARS + 1)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read spec file {str(path)!r} ({exc.strerror}); check the path"
        ) from exc
    if len(data) > MAX_SPEC_CHARS:
        raise SpecError(source, [f"is over {MAX_SPEC_CHARS} bytes; a spec is a short file"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(source, ["is not UTF-8 text; save it as UTF-8"]) from exc
    return parse_spec(text, source)


def format_duration(seconds: float) -> str:
    """``45 s``, ``60 s``, ``5 min``, ``2 h``: seconds below two minutes, else the largest
    whole unit."""
    if seconds < 120 or seconds % 60:
        return f"{seconds:g} s"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min"


def _canary(s: CanaryStrategy) -> str:
    return f"canary {' → '.join(str(w) for w in s.steps)} every {format_duration(s.step_interval)}"


def describe(spec: DeploymentSpec) -> str:
    """What the rollout will do, in one line:
    ``canary 10 → 50 → 100 every 60 s, promotes champion``."""
    if spec.candidate is None:
        return f"direct: {spec.baseline} serves all traffic"
    s = spec.strategy
    if isinstance(s, CanaryStrategy):
        how = _canary(s)
    elif isinstance(s, ShadowStrategy):
        how = f"shadow {s.fraction:.0%} of requests for {format_duration(s.duration)}"
        if s.min_requests is not None:
            how += f" (at least {s.min_requests} compared)"
        if s.then is not None:
            how += f", then {_canary(s.then)}"
    elif isinstance(s, ABStrategy):
        how = f"A/B {s.split}% of cohorts by {s.sticky_key} for {format_duration(s.duration)}"
    elif isinstance(s, BlueGreenStrategy):
        how = (
            f"blue-green: switch after {format_duration(s.switch_after)}, verify for "
            f"{format_duration(s.verify_for)}"
        )
    else:
        how = "direct: the candidate takes all traffic once the gates pass"
    moves = f"moves {spec.promote_alias}" if spec.promote_alias else "moves no alias"
    if spec.promotion == "manual":
        return f"{how}, then waits for `modelport rollout promote` ({moves})"
    return f"{how}, promotes {spec.promote_alias}" if spec.promote_alias else f"{how}, {moves}"


def gate_names(spec: DeploymentSpec) -> tuple[str, ...]:
    """The gates that run before any traffic (none without a candidate)."""
    if spec.candidate is None:
        return ()
    names = ["schema"]
    if spec.gates.smoke.enabled:
        names.append("smoke")
    if spec.gates.regression is not None:
        names.append(f"regression on {spec.gates.regression.dataset}")
    return tuple(names)


@dataclass(frozen=True, slots=True)
class DeployPlan:
    """A validated spec with its refs resolved; ``record`` is None for a dry run, and
    ``unchanged`` says the latest revision holds this spec already."""

    spec: DeploymentSpec
    baseline_version: int
    candidate_version: int | None
    latest_revision: int | None
    record: DeploymentRecord | None
    unchanged: bool
    rollout: RolloutRecord | None

    @property
    def revision(self) -> int | None:
        return None if self.record is None else self.record.revision

    def to_dict(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "endpoint": spec.endpoint,
            "recorded": self.record is not None and not self.unchanged,
            "dry_run": self.record is None,
            "unchanged": self.unchanged,
            "revision": self.revision,
            "latest_revision": self.latest_revision,
            "digest": spec.digest(),
            "baseline": {"ref": str(spec.baseline), "version": self.baseline_version},
            "candidate": None
            if spec.candidate is None
            else {"ref": str(spec.candidate), "version": self.candidate_version},
            "strategy": spec.strategy.kind,
            "plan": describe(spec),
            "gates": list(gate_names(spec)),
            "on_failure": spec.on_failure,
            "rollout_in_progress": None if self.rollout is None else self.rollout.id,
            "spec": spec.to_dict(),
        }


def _resolve(service: RegistryService, field: str, ref: ModelRef) -> int:
    try:
        return service.resolve(ref).number
    except NotFoundError as exc:
        raise type(exc)(f"{field} {ref} does not resolve: {exc.message}") from exc


def deploy(service: RegistryService, spec: DeploymentSpec, dry_run: bool = False) -> DeployPlan:
    """Check the spec's refs against the registry, then record it (unless ``dry_run``).

    ``NotFoundError`` (model, version, alias, dataset) names the field and ref that does not
    resolve; a candidate that resolves to the baseline's version is an ``InvalidInputError``.
    """
    baseline = _resolve(service, "baseline", spec.baseline)
    candidate = None if spec.candidate is None else _resolve(service, "candidate", spec.candidate)
    if candidate == baseline:
        raise InvalidInputError(
            f"candidate {spec.candidate} is version {candidate}, which baseline {spec.baseline} "
            "already is; name another version, or register a new one"
        )
    regression = spec.gates.regression
    if regression is not None and spec.candidate is not None:
        name, _, number = regression.dataset.partition(":")
        try:
            service.get_dataset(name, int(number))
        except DatasetNotFoundError as exc:
            raise DatasetNotFoundError(
                f"gates.regression.dataset {regression.dataset} does not resolve: {exc.message}"
            ) from exc
    try:
        latest: DeploymentRecord | None = service.get_deployment(spec.endpoint)
    except NotFoundError:
        latest = None
    unchanged = latest is not None and latest.digest == spec.digest()
    record = None if dry_run else service.record_deployment(spec)
    return DeployPlan(
        spec=spec,
        baseline_version=baseline,
        candidate_version=candidate,
        latest_revision=None if latest is None else latest.revision,
        record=record,
        unchanged=unchanged,
        rollout=service.current_rollout(spec.endpoint),
    )


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """The endpoint's latest spec revision, its current rollout (or else its last finished
    one), the stage that rollout is at, pending commands and the rollout's latest events."""

    endpoint: str
    deployment: DeploymentRecord
    rollout: RolloutRecord | None
    stage: dict[str, Any] | None
    pending: tuple[RolloutCommandRecord, ...]
    events: tuple[RolloutEventRecord, ...]

    def to_dict(self) -> dict[str, Any]:
        state = self.rollout.state if self.rollout is not None else {}
        weights = state.get("weights") or [None, None]
        return {
            "endpoint": self.endpoint,
            "spec_revision": self.deployment.revision,
            "plan": describe(self.deployment.spec),
            "rollout": None if self.rollout is None else _rollout_summary(self.rollout),
            "stage": self.stage,
            "weights": {"baseline": weights[0], "candidate": weights[-1]},
            "pending_commands": [c.to_dict() for c in self.pending],
            "events": [e.to_dict() for e in self.events],
        }


def _rollout_summary(rollout: RolloutRecord) -> dict[str, Any]:
    state = rollout.state
    out = {k: v for k, v in rollout.to_dict().items() if k != "state"}
    for key in ("baseline_version", "candidate_version", "shadow_fraction", "reason", "ready"):
        out[key] = state.get(key)
    out["paused_by"] = state.get("paused_by")
    out["resume_phase"] = state.get("resume_phase")
    return out


def _stage(rollout: RolloutRecord, spec: DeploymentSpec) -> dict[str, Any] | None:
    stages = plan(spec)
    state = rollout.state
    phase = state.get("resume_phase") if rollout.phase == "paused" else rollout.phase
    index = state.get("stage")
    if phase not in {s.name for s in stages} or not isinstance(index, int):
        return None
    if not 0 <= index < len(stages):
        return None
    stage = stages[index]
    return {
        "number": index + 1,
        "count": len(stages),
        "name": stage.name,
        "candidate_weight": stage.candidate_weight,
        "hold_s": stage.hold_s,
        "started_at": state.get("stage_started_at"),
    }


def endpoint_status(
    service: RegistryService, endpoint: str, last: int = LAST_EVENTS
) -> EndpointStatus:
    """Where ``endpoint`` stands; ``DeploymentNotFoundError`` if it was never deployed."""
    latest = service.get_deployment(endpoint)
    rollout = service.latest_rollout(endpoint)
    if rollout is None:
        return EndpointStatus(endpoint, latest, None, None, (), ())
    spec = (
        latest
        if rollout.spec_revision == latest.revision
        else service.get_deployment(endpoint, rollout.spec_revision)
    ).spec
    pending = () if rollout.finished else tuple(service.pending_commands(rollout.id))
    events = [e for e in service.rollout_history(endpoint) if e.rollout_id == rollout.id]
    return EndpointStatus(
        endpoint, latest, rollout, _stage(rollout, spec), pending, tuple(events[-last:])
    )
