"""The controller's outbox: traffic and alias effects it has decided on and not yet applied.

A decision becomes real when the controller saves the machine's new state under
compare-and-swap, together with its rollout events and the operator commands it consumed (the
store writes them in the same transaction), and with its traffic actions and alias moves under
the key ``outbox`` of the saved state. Only then does it apply those, and then it saves the
state without the outbox. A controller that finds an outbox left behind (a crash, or an adapter
that raised) applies it before deciding anything new. Traffic actions and alias moves are
idempotent, so applying an outbox again is harmless; events and commands never repeat.

``effects`` turns machine transitions into effects: ``Rollback`` becomes ``StopShadow`` and
``SetWeights(100, 0)``; a rollout leaving ``pending`` first stops any shadow, so it starts from a
baseline-only table; ``Promote`` moves the alias (if the spec names one); each ``Record`` and each
phase change becomes one ``NewRolloutEvent`` with the checks behind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelport.core.errors import InvalidInputError
from modelport.core.rollouts import NewRolloutEvent
from modelport.rollout.ports import TrafficAction
from modelport.rollout.state import (
    OUTBOX_KEY,
    Action,
    Promote,
    Record,
    Rollback,
    RolloutState,
    SetWeights,
    StartShadow,
    StopShadow,
    action_to_dict,
)

__all__ = [
    "AliasMoveIntent",
    "Outbox",
    "Transition",
    "document",
    "effects",
    "load",
]

PHASE_CHANGED = "rollout.phase_changed"


@dataclass(frozen=True, slots=True)
class AliasMoveIntent:
    model: str
    alias: str
    version: int
    reason: str


@dataclass(frozen=True, slots=True)
class Transition:
    """One ``machine.step``: the states either side, the actions, who caused it and when."""

    before: RolloutState
    after: RolloutState
    actions: tuple[Action, ...]
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Outbox:
    """Effects of one decision; ``owner`` is the controller instance that committed them."""

    endpoint: str
    versions: tuple[int, int | None]
    owner: str
    committed_at: datetime
    traffic: tuple[TrafficAction, ...] = ()
    aliases: tuple[AliasMoveIntent, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.traffic or self.aliases)

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "versions": list(self.versions),
            "owner": self.owner,
            "committed_at": self.committed_at.isoformat(),
            "traffic": [action_to_dict(a) for a in self.traffic],
            "aliases": [
                {"model": m.model, "alias": m.alias, "version": m.version, "reason": m.reason}
                for m in self.aliases
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outbox:
        """Restore a saved outbox; ``InvalidInputError`` if it is not one."""
        try:
            baseline, candidate = data["versions"]
            return cls(
                endpoint=str(data["endpoint"]),
                versions=(int(baseline), None if candidate is None else int(candidate)),
                owner=str(data["owner"]),
                committed_at=datetime.fromisoformat(data["committed_at"]),
                traffic=tuple(_traffic_from_dict(a) for a in data["traffic"]),
                aliases=tuple(AliasMoveIntent(**m) for m in data["aliases"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"the rollout outbox of endpoint {str(data.get('endpoint'))[:100]!r} is corrupt "
                f"({exc!r}); fix or remove the 'outbox' key of the saved rollout state"
            ) from exc


def document(state: RolloutState, outbox: Outbox | None = None) -> dict[str, Any]:
    """What the controller saves: ``state.to_dict()``, plus the outbox while one is pending."""
    data = state.to_dict()
    if outbox is not None and not outbox.empty:
        data[OUTBOX_KEY] = outbox.to_dict()
    return data


def load(data: Mapping[str, Any]) -> tuple[RolloutState, Outbox | None]:
    """The state and the pending outbox (None when there is none) of a saved document."""
    state = RolloutState.from_dict(dict(data))
    raw = data.get(OUTBOX_KEY)
    return state, None if raw is None else Outbox.from_dict(raw)


def effects(
    model: str, items: Sequence[Transition | NewRolloutEvent]
) -> tuple[tuple[TrafficAction, ...], tuple[AliasMoveIntent, ...], tuple[NewRolloutEvent, ...]]:
    """The traffic actions, alias moves and events of ``items`` (transitions, or events the
    controller wrote itself such as a rejected command), each kind in order."""
    traffic: list[TrafficAction] = []
    aliases: list[AliasMoveIntent] = []
    events: list[NewRolloutEvent] = []
    for item in items:
        if isinstance(item, NewRolloutEvent):
            events.append(item)
            continue
        routes = _traffic(item)
        if item.before.phase == "pending" and routes:
            routes.insert(0, StopShadow())  # a new rollout starts from a baseline-only table
        traffic += routes
        aliases += [
            AliasMoveIntent(model, a.alias, a.version, item.after.reason)
            for a in item.actions
            if isinstance(a, Promote) and a.alias is not None
        ]
        events += _events(item)
    return tuple(traffic), tuple(aliases), tuple(events)


def _traffic(item: Transition) -> list[TrafficAction]:
    out: list[TrafficAction] = []
    for action in item.actions:
        if isinstance(action, SetWeights | StartShadow | StopShadow):
            out.append(action)
        elif isinstance(action, Rollback):
            out += [StopShadow(), SetWeights(100, 0)]
    return out


def _events(item: Transition) -> list[NewRolloutEvent]:
    before, after = item.before.phase, item.after.phase
    records = [a for a in item.actions if isinstance(a, Record)]
    out = [
        NewRolloutEvent(
            kind=r.event,
            phase_from=before,
            phase_to=after,
            reason=r.reason,
            figures=tuple(f.to_dict() for f in r.figures),
            actor=item.actor,
            at=item.at,
        )
        for r in records
    ]
    if before != after:
        out.append(
            NewRolloutEvent(
                kind=PHASE_CHANGED,
                phase_from=before,
                phase_to=after,
                reason=item.after.reason,
                figures=tuple(f.to_dict() for r in records for f in r.figures),
                actor=item.actor,
                at=item.at,
            )
        )
    return out


def _traffic_from_dict(data: Mapping[str, Any]) -> TrafficAction:
    kind = data["type"]
    if kind == "SetWeights":
        return SetWeights(int(data["baseline"]), int(data["candidate"]), data.get("sticky_key"))
    if kind == "StartShadow":
        return StartShadow(float(data["fraction"]), float(data["timeout_ms"]))
    if kind == "StopShadow":
        return StopShadow()
    raise ValueError(f"unknown traffic action {kind!r}")
