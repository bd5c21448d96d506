"""Fakes of the rollout controller's ports (``modelport.rollout.ports``) and a harness that wires
them to a ``Controller`` with a fake clock. ``Faults`` injects a crash at a named point."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from modelport.core.clock import FakeClock
from modelport.core.deployment import DeploymentSpec, parse_spec
from modelport.core.errors import ConflictError, NotFoundError
from modelport.core.refs import ModelRef
from modelport.core.rollouts import NewRolloutEvent
from modelport.rollout import (
    Aliases,
    Controller,
    EndpointTick,
    GateRunner,
    RolloutState,
    RolloutStore,
    SetWeights,
    ShadowWindow,
    StartShadow,
    StopShadow,
    Traffic,
    TrafficAction,
    VersionWindow,
    WindowSource,
)
from modelport.rollout.gates import Check, GateReport

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Crash(Exception):
    """The controller process died here."""


class Faults:
    """``arm("save", skip=1)``: the second save from now raises (``Crash`` by default)."""

    def __init__(self) -> None:
        self._armed: dict[str, tuple[int, Exception]] = {}

    def arm(self, point: str, skip: int = 0, error: Exception | None = None) -> None:
        self._armed[point] = (skip, error or Crash(point))

    def hit(self, point: str) -> None:
        if point not in self._armed:
            return
        skip, error = self._armed[point]
        if skip:
            self._armed[point] = (skip - 1, error)
            return
        del self._armed[point]
        raise error


@dataclass(frozen=True)
class Deployment:
    endpoint: str
    revision: int
    spec: DeploymentSpec
    digest: str


@dataclass(frozen=True)
class Rollout:
    id: int
    endpoint: str
    spec_revision: int
    phase: str
    state: Mapping[str, Any]
    revision: int
    finished_at: datetime | None = None


@dataclass(frozen=True)
class CommandRow:
    id: int
    rollout_id: int
    op: str
    actor: str
    reason: str
    consumed: bool = False


class FakeStore:
    """The registry's rollout tables in memory; states go through JSON like the real store."""

    def __init__(self, clock: FakeClock, faults: Faults) -> None:
        self.clock, self.faults = clock, faults
        self.deployments: dict[str, list[Deployment]] = {}
        self.rollouts: dict[int, Rollout] = {}
        self.events: list[tuple[int, NewRolloutEvent]] = []
        self.commands: dict[int, CommandRow] = {}
        self.on_save: Callable[[], object] | None = None

    # -- test helpers -------------------------------------------------------------------------
    def deploy(self, text: str) -> Deployment:
        spec = parse_spec(text)
        revisions = self.deployments.setdefault(spec.endpoint, [])
        found = Deployment(spec.endpoint, len(revisions) + 1, spec, spec.digest())
        revisions.append(found)
        return found

    def command(self, endpoint: str, op: str, actor: str = "alice", reason: str = "") -> int:
        """Queue ``op`` for the latest rollout (for a finished one: as if it was queued just
        before the rollout finished)."""
        current = self.latest_rollout(endpoint)
        assert current is not None
        row = CommandRow(len(self.commands) + 1, current.id, op, actor, reason)
        self.commands[row.id] = row
        return row.id

    def kinds(self, rollout_id: int | None = None) -> list[str]:
        return [e.kind for rid, e in self.events if rollout_id in (None, rid)]

    def of_kind(self, kind: str) -> list[NewRolloutEvent]:
        return [e for _, e in self.events if e.kind == kind]

    def state(self, endpoint: str = "fraud") -> RolloutState:
        current = self.latest_rollout(endpoint)
        assert current is not None
        return RolloutState.from_dict(dict(current.state))

    def history(self, endpoint: str = "fraud") -> list[Rollout]:
        return sorted((r for r in self.rollouts.values() if r.endpoint == endpoint), key=_id)

    # -- RolloutStore -------------------------------------------------------------------------
    def get_deployment(self, endpoint: str, revision: int | None = None) -> Deployment:
        revisions = self.deployments.get(endpoint) or []
        if not revisions:
            raise NotFoundError(f"no deployment {endpoint!r}")
        return revisions[-1] if revision is None else revisions[revision - 1]

    def list_deployments(self) -> list[Deployment]:
        return [revisions[-1] for revisions in self.deployments.values() if revisions]

    def start_rollout(
        self, endpoint: str, spec_revision: int, state: Mapping[str, Any], phase: str, actor: str
    ) -> Rollout:
        if self.current_rollout(endpoint) is not None:
            raise ConflictError(f"endpoint {endpoint!r} has an unfinished rollout")
        row = Rollout(len(self.rollouts) + 1, endpoint, spec_revision, phase, _json(state), 1)
        self.rollouts[row.id] = row
        return row

    def save_rollout(
        self,
        rollout_id: int,
        state: Mapping[str, Any],
        phase: str,
        expected_revision: int,
        actor: str,
        finished: bool = False,
        *,
        events: Sequence[NewRolloutEvent] = (),
        consumed: Sequence[int] = (),
    ) -> Rollout:
        """One transaction: the state, the events and the consumed commands, or nothing."""
        self.faults.hit("save")
        if self.on_save is not None:
            hook, self.on_save = self.on_save, None
            hook()
        row = self.rollouts[rollout_id]
        if row.revision != expected_revision or row.finished_at is not None:
            raise ConflictError(f"rollout {rollout_id} is at revision {row.revision}")
        for command_id in consumed:
            self._check_pending(command_id)
        row = replace(
            row,
            state=_json(state),
            phase=phase,
            revision=row.revision + 1,
            finished_at=self.clock.now() if finished else None,
        )
        self.rollouts[rollout_id] = row
        self._append(rollout_id, events)
        for command_id in consumed:
            self.commands[command_id] = replace(self.commands[command_id], consumed=True)
        return row

    def current_rollout(self, endpoint: str) -> Rollout | None:
        unfinished = [r for r in self.history(endpoint) if r.finished_at is None]
        return unfinished[-1] if unfinished else None

    def latest_rollout(self, endpoint: str) -> Rollout | None:
        found = self.history(endpoint)
        return found[-1] if found else None

    def add_rollout_events(
        self, rollout_id: int, events: Sequence[NewRolloutEvent], actor: str
    ) -> None:
        self._append(rollout_id, events)
        self.faults.hit("events")

    def pending_commands(self, rollout_id: int) -> list[CommandRow]:
        return [c for c in self.commands.values() if c.rollout_id == rollout_id and not c.consumed]

    def consume_command(self, command_id: int, actor: str) -> None:
        self._check_pending(command_id)
        self.commands[command_id] = replace(self.commands[command_id], consumed=True)

    def _check_pending(self, command_id: int) -> None:
        if self.commands[command_id].consumed:
            raise ConflictError(f"command {command_id} was consumed already")

    def _append(self, rollout_id: int, events: Sequence[NewRolloutEvent]) -> None:
        for event in events:
            json.dumps([dict(f) for f in event.figures], allow_nan=False)
            self.events.append((rollout_id, event))


class FakeWindows:
    """Figures per endpoint as the test sets them; a version left out has no window."""

    def __init__(self) -> None:
        self.figures: dict[str, tuple[dict[int, VersionWindow], ShadowWindow | None]] = {}
        self.calls: list[tuple[str, tuple[int, ...], datetime]] = []
        self.error: Exception | None = None

    def set(
        self,
        windows: dict[int, VersionWindow],
        shadow: ShadowWindow | None = None,
        *,
        endpoint: str = "fraud",
    ) -> None:
        self.figures[endpoint] = (windows, shadow)

    def windows(
        self, endpoint: str, versions: Sequence[int], since: datetime
    ) -> tuple[dict[int, VersionWindow], ShadowWindow | None]:
        self.calls.append((endpoint, tuple(versions), since))
        if self.error is not None:
            raise self.error
        found, shadow = self.figures.get(endpoint, ({}, None))
        return {v: w for v, w in found.items() if v in versions}, shadow


def smoke_report(passed: bool = True) -> GateReport:
    check = Check("answered", 3 if passed else 1, 3, passed, op=">=")
    return GateReport("smoke", "fraud:4", None, (check,))


class FakeGates:
    def __init__(self) -> None:
        self.reports = [smoke_report()]
        self.calls: list[tuple[str, int, int]] = []
        self.error: Exception | None = None

    def run(
        self, spec: DeploymentSpec, baseline_version: int, candidate_version: int
    ) -> list[GateReport]:
        self.calls.append((spec.endpoint, baseline_version, candidate_version))
        if self.error is not None:
            raise self.error
        return list(self.reports)


@dataclass
class Table:
    routes: dict[int, int] = field(default_factory=dict)
    shadow: tuple[int, float] | None = None
    sticky: str | None = None


class FakeTraffic:
    """Route tables as the serving side would publish them (idempotent per the protocol)."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.tables: dict[str, Table] = {}
        self.calls: list[tuple[str, TrafficAction, tuple[int, int | None]]] = []

    def apply(self, endpoint: str, action: TrafficAction, versions: tuple[int, int | None]) -> None:
        table = self.tables.setdefault(endpoint, Table())
        baseline, candidate = versions
        if isinstance(action, SetWeights):
            weights = {baseline: action.baseline}
            if candidate is not None:
                weights[candidate] = action.candidate
            table.routes = {v: w for v, w in weights.items() if w > 0}
            table.sticky = action.sticky_key
        elif isinstance(action, StartShadow):
            assert candidate is not None
            table.shadow = (candidate, action.fraction)
        elif isinstance(action, StopShadow):
            table.shadow = None
        self.calls.append((endpoint, action, versions))
        self.faults.hit("traffic")

    def weights(self, endpoint: str = "fraud") -> list[tuple[int, int]]:
        """The SetWeights applied, in order."""
        return [
            (a.baseline, a.candidate)
            for e, a, _ in self.calls
            if e == endpoint and isinstance(a, SetWeights)
        ]

    def routes(self, endpoint: str = "fraud") -> list[TrafficAction]:
        return [a for e, a, _ in self.calls if e == endpoint]


class FakeAliases:
    """The registry's aliases: a move to the current version writes no history row."""

    def __init__(self, faults: Faults, current: dict[tuple[str, str], int]) -> None:
        self.faults, self.current = faults, dict(current)
        self.calls: list[tuple[str, str, int, str]] = []
        self.history: list[tuple[str, str, int | None, int]] = []

    def move(self, model: str, alias: str, version: int, reason: str) -> None:
        self.calls.append((model, alias, version, reason))
        before = self.current.get((model, alias))
        if before != version:
            self.current[(model, alias)] = version
            self.history.append((model, alias, before, version))
        self.faults.hit("alias")


def _json(state: Mapping[str, Any]) -> dict[str, Any]:
    loaded = json.loads(json.dumps(state, allow_nan=False))
    assert isinstance(loaded, dict)
    return loaded


def _id(row: Rollout) -> int:
    return row.id


class Harness:
    """Every fake wired to a controller; ``restart()`` replaces the controller (a new process)."""

    def __init__(self, champion: int = 3) -> None:
        self.clock = FakeClock(T0)
        self.faults = Faults()
        self.store = FakeStore(self.clock, self.faults)
        self.windows = FakeWindows()
        self.gates = FakeGates()
        self.traffic = FakeTraffic(self.faults)
        self.aliases = FakeAliases(self.faults, {("fraud", "champion"): champion})
        self.controller = self.rival()

    def resolve(self, ref: ModelRef) -> int:
        if ref.version is not None:
            return ref.version
        assert ref.alias is not None
        return self.aliases.current[(ref.name, ref.alias)]

    def restart(self, **options: Any) -> Controller:
        self.controller = self.rival(**options)
        return self.controller

    def rival(self, **options: Any) -> Controller:
        """Another controller (process) over the same store, ports and clock."""
        store: RolloutStore = self.store
        windows: WindowSource = self.windows
        gates: GateRunner = self.gates
        traffic: Traffic = self.traffic
        aliases: Aliases = self.aliases
        return Controller(
            store, windows, gates, traffic, aliases, self.clock, resolve=self.resolve, **options
        )

    def tick(self, at: float | None = None, endpoint: str = "fraud") -> EndpointTick:
        """Move the clock to ``at`` seconds after T0 (if given) and run one tick."""
        if at is not None:
            self.clock.advance(at - (self.clock.now() - T0).total_seconds())
        report = asyncio.run(self.controller.tick())
        return report.endpoint(endpoint)
