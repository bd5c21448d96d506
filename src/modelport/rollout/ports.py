"""The seams the rollout controller acts through, as ``Protocol``s (fakes in tests check against
the same contracts).

- ``RolloutStore``: deployments, rollouts (state saved with compare-and-swap), their event
  timeline and operator commands (the registry implements it).
- ``WindowSource``: window figures per version since a time (the serving monitor).
- ``GateRunner``: the pre-traffic gates (``api.gates``); blocking, it may take seconds.
- ``Traffic``: publishes an endpoint's route table (the serving side).
- ``Aliases``: moves a model alias with its history row (the registry's ``set_alias``).

Every port is synchronous; the controller calls them from a worker thread, so implementations
must be thread-safe. ``Traffic.apply`` and ``Aliases.move`` must be idempotent (applying the same
action again leaves the same routes; moving an alias to the version it already points at writes
no history row): after a crash the controller re-applies what it had committed to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from modelport.core.deployment import DeploymentSpec
from modelport.core.refs import ModelRef
from modelport.core.rollouts import NewRolloutEvent
from modelport.rollout.analysis import ShadowWindow, VersionWindow
from modelport.rollout.gates import GateReport
from modelport.rollout.state import SetWeights, StartShadow, StopShadow

__all__ = [
    "Aliases",
    "CommandRecordLike",
    "DeploymentRecordLike",
    "GateRunner",
    "Resolve",
    "RolloutRecordLike",
    "RolloutStore",
    "Traffic",
    "TrafficAction",
    "WindowSource",
]

TrafficAction = SetWeights | StartShadow | StopShadow
Resolve = Callable[[ModelRef], int]
"""A spec's ref (``fraud:3``, ``fraud@champion``) to the version number it names now."""


class DeploymentRecordLike(Protocol):
    """One recorded revision of an endpoint's spec (``core.rollouts.DeploymentRecord``)."""

    @property
    def endpoint(self) -> str: ...
    @property
    def revision(self) -> int: ...
    @property
    def spec(self) -> DeploymentSpec | Mapping[str, Any]:
        """The spec, or its ``DeploymentSpec.to_dict()``."""
        ...


class RolloutRecordLike(Protocol):
    """One rollout of an endpoint (``core.rollouts.RolloutRecord``). ``revision`` is the row's
    compare-and-swap counter, independent of the state's own revision."""

    @property
    def id(self) -> int: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def spec_revision(self) -> int: ...
    @property
    def phase(self) -> str: ...
    @property
    def state(self) -> Mapping[str, Any]: ...
    @property
    def revision(self) -> int: ...
    @property
    def finished_at(self) -> datetime | None: ...


class CommandRecordLike(Protocol):
    """A queued operator command (``core.rollouts.RolloutCommandRecord``)."""

    @property
    def id(self) -> int: ...
    @property
    def op(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def reason(self) -> str: ...


class RolloutStore(Protocol):
    """The registry's deployment and rollout tables (``registry.protocols.MetadataStore``).
    Every write names its ``actor`` for the audit log."""

    def get_deployment(
        self, endpoint: str, revision: int | None = None
    ) -> DeploymentRecordLike: ...

    def list_deployments(self) -> Sequence[DeploymentRecordLike]:
        """The latest spec revision of every endpoint."""
        ...

    def start_rollout(
        self, endpoint: str, spec_revision: int, state: Mapping[str, Any], phase: str, actor: str
    ) -> RolloutRecordLike:
        """A new unfinished rollout; ``ConflictError`` while the endpoint has one already."""
        ...

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
    ) -> RolloutRecordLike:
        """Compare-and-swap: replace the state if the rollout is still at
        ``expected_revision`` and unfinished, else ``ConflictError`` (someone else saved it
        first). ``events`` are appended and the ``consumed`` commands marked in the same
        transaction: all or nothing."""
        ...

    def current_rollout(self, endpoint: str) -> RolloutRecordLike | None:
        """The endpoint's unfinished rollout, if any."""
        ...

    def latest_rollout(self, endpoint: str) -> RolloutRecordLike | None:
        """The endpoint's newest rollout, finished or not; None if it never had one."""
        ...

    def add_rollout_events(
        self, rollout_id: int, events: Sequence[NewRolloutEvent], actor: str
    ) -> object:
        """Append events (finished rollouts too)."""
        ...

    def pending_commands(self, rollout_id: int) -> Sequence[CommandRecordLike]:
        """Commands not consumed yet, oldest first."""
        ...

    def consume_command(self, command_id: int, actor: str) -> object:
        """Mark a command acted on; ``ConflictError`` if it was consumed already."""
        ...


class WindowSource(Protocol):
    def windows(
        self, endpoint: str, versions: Sequence[int], since: datetime
    ) -> tuple[dict[int, VersionWindow], ShadowWindow | None]:
        """Figures of ``versions`` since ``since``; a version without figures is left out.
        The shadow window compares the candidate's mirrored answers with the primary's."""
        ...


class GateRunner(Protocol):
    def run(
        self, spec: DeploymentSpec, baseline_version: int, candidate_version: int
    ) -> list[GateReport]:
        """Run the spec's gates (schema, smoke, regression) on the candidate; blocking."""
        ...


class Traffic(Protocol):
    def apply(self, endpoint: str, action: TrafficAction, versions: tuple[int, int | None]) -> None:
        """Publish the endpoint's new route table. ``versions`` is (baseline, candidate).

        ``SetWeights`` replaces the routes with exactly the baseline and the candidate at those
        weights (a zero weight drops the version; ``sticky_key`` None drops stickiness) and
        keeps any shadow; ``StartShadow`` mirrors ``fraction`` of requests to the candidate;
        ``StopShadow`` removes any shadow (and does nothing when there is none)."""
        ...


class Aliases(Protocol):
    def move(self, model: str, alias: str, version: int, reason: str) -> None:
        """Point ``model@alias`` at ``version`` with its history row, atomically; a move to
        the version it already points at changes nothing."""
        ...
