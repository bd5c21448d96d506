"""Deployments and rollouts as the registry records them. Rows are mapped to these at the store
boundary.

- ``DeploymentRecord``: one revision of an endpoint's spec. Revisions are append-only and
  numbered from 1 per endpoint; recording the spec the latest revision already holds adds none.
- ``RolloutRecord``: one rollout of an endpoint. ``state`` is the rollout machine's
  ``RolloutState.to_dict()`` (the registry stores it without interpreting it) and ``phase`` a copy
  of its phase for queries. ``revision`` is the row's compare-and-swap counter: it grows by one
  on every save, independently of the state's own ``revision``. At most one rollout per endpoint
  is unfinished (``finished_at`` is None).
- ``RolloutEventRecord``: one transition of a rollout with the figures that justified it
  (``NewRolloutEvent`` is what a controller appends; ``from_action`` takes a ``Record`` action
  as ``rollout.action_to_dict`` writes it).
- ``RolloutCommandRecord``: an operator command (promote, rollback, abort, pause, resume) queued
  for the controller; ``consumed_at`` is set once, when the controller has acted on it.
- ``RouteRecord``: the route table an endpoint's serving replicas route by, replaced as a whole
  with compare-and-swap on its ``generation``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelport.core.deployment import DeploymentSpec

__all__ = [
    "COMMAND_OPS",
    "DeploymentRecord",
    "NewRolloutEvent",
    "RolloutCommandRecord",
    "RolloutEventRecord",
    "RolloutRecord",
    "RouteRecord",
]

COMMAND_OPS: tuple[str, ...] = ("promote", "rollback", "abort", "pause", "resume")
"""The operator commands a rollout takes (the same as ``rollout.state.Op``)."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """Revision ``revision`` of the spec of ``endpoint``; ``digest`` is ``spec.digest()`` as
    recorded."""

    id: int
    endpoint: str
    revision: int
    spec: DeploymentSpec
    digest: str
    created_by: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "revision": self.revision,
            "digest": self.digest,
            "spec": self.spec.to_dict(),
            "created_by": self.created_by,
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """One rollout of ``endpoint`` under spec revision ``spec_revision``."""

    id: int
    endpoint: str
    spec_revision: int
    phase: str
    state: Mapping[str, Any]
    revision: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "spec_revision": self.spec_revision,
            "phase": self.phase,
            "state": dict(self.state),
            "revision": self.revision,
            "finished": self.finished,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "finished_at": _iso(self.finished_at),
        }


@dataclass(frozen=True, slots=True)
class NewRolloutEvent:
    """A transition to append to a rollout's history.

    ``kind`` is the ``Record`` action's event (``rollout.step``, ``rollout.rolled_back``...);
    ``figures`` the checks behind it, each as its ``to_dict()``. ``actor`` defaults to whoever
    appends the event (the controller's actor) and ``at`` to the store's clock.
    """

    kind: str
    phase_from: str | None = None
    phase_to: str | None = None
    reason: str = ""
    figures: Sequence[Mapping[str, Any]] = ()
    actor: str | None = None
    at: datetime | None = None

    @classmethod
    def from_action(
        cls,
        action: Mapping[str, Any],
        phase_from: str | None = None,
        phase_to: str | None = None,
        actor: str | None = None,
        at: datetime | None = None,
    ) -> NewRolloutEvent:
        """The event of a ``Record`` action given as ``rollout.action_to_dict(record)``."""
        return cls(
            kind=str(action.get("event", "")),
            phase_from=phase_from,
            phase_to=phase_to,
            reason=str(action.get("reason", "")),
            figures=tuple(action.get("figures") or ()),
            actor=actor,
            at=at,
        )


@dataclass(frozen=True, slots=True)
class RolloutEventRecord:
    id: int
    rollout_id: int
    endpoint: str
    at: datetime
    kind: str
    phase_from: str | None
    phase_to: str | None
    actor: str
    reason: str
    figures: tuple[Mapping[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rollout_id": self.rollout_id,
            "endpoint": self.endpoint,
            "at": _iso(self.at),
            "kind": self.kind,
            "phase_from": self.phase_from,
            "phase_to": self.phase_to,
            "actor": self.actor,
            "reason": self.reason,
            "figures": [dict(f) for f in self.figures],
        }


@dataclass(frozen=True, slots=True)
class RolloutCommandRecord:
    id: int
    rollout_id: int
    endpoint: str
    op: str
    actor: str
    reason: str
    created_at: datetime
    consumed_at: datetime | None = None

    @property
    def pending(self) -> bool:
        return self.consumed_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rollout_id": self.rollout_id,
            "endpoint": self.endpoint,
            "op": self.op,
            "actor": self.actor,
            "reason": self.reason,
            "pending": self.pending,
            "created_at": _iso(self.created_at),
            "consumed_at": _iso(self.consumed_at),
        }


@dataclass(frozen=True, slots=True)
class RouteRecord:
    """The route table published for ``endpoint``: ``table`` is the document the serving
    router reads (``serving.router.RouteTable.to_dict()``; the registry checks only that it is
    JSON), ``generation`` the compare-and-swap counter, 1 at the first publish and one more at
    each one after, which replicas also use to ignore tables older than the one they route by.
    """

    endpoint: str
    generation: int
    table: Mapping[str, Any]
    updated_at: datetime
    updated_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "generation": self.generation,
            "table": dict(self.table),
            "updated_at": _iso(self.updated_at),
            "updated_by": self.updated_by,
        }
