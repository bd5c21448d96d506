"""Committing and applying the controller's decisions, and what a tick reports.

``Applier.commit`` is save-then-apply. It saves the machine's new state under compare-and-swap
with the decision's rollout events and consumed commands (one transaction in the store) and,
under ``outbox``, its traffic actions and alias moves; a ``ConflictError`` there means another
controller decided first, and nothing is applied. Then it applies the outbox (traffic first,
then aliases) and saves the state without it (``finished`` when the state is terminal; a
rollout never finishes with effects pending). ``Applier.recover`` applies an outbox left behind
by a crash or a failed adapter: at once when this controller instance committed it, after
``recover_after_s`` when another one did (it may still be applying it), and only after claiming
it with a compare-and-swap save, so one controller takes it over. Re-applying is safe because
traffic actions and alias moves are idempotent; events and command consumption are never
repeated since they landed with the decision.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from modelport.core.clock import Clock
from modelport.core.errors import ConflictError
from modelport.core.rollouts import NewRolloutEvent
from modelport.rollout.outbox import Outbox, Transition, document, effects
from modelport.rollout.ports import Aliases, RolloutRecordLike, RolloutStore, Traffic
from modelport.rollout.state import RolloutState, action_to_dict

__all__ = ["Applier", "EndpointTick", "Item", "TickReport", "Trace"]

log = logging.getLogger("modelport.rollout")
Item = Transition | NewRolloutEvent
"""What one decision is made of: machine transitions, and events the controller writes itself
(a rejected or ignored command)."""


@dataclass(frozen=True, slots=True)
class EndpointTick:
    """What one tick did for one endpoint: the effects it applied and the events it wrote;
    ``conflict`` when another controller acted first, ``waiting`` when it held back."""

    endpoint: str
    rollout_id: int | None = None
    phase: str | None = None
    started: bool = False
    conflict: bool = False
    waiting: str = ""
    error: str = ""
    applied: tuple[dict[str, Any], ...] = ()
    events: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TickReport:
    at: datetime
    endpoints: tuple[EndpointTick, ...]

    def endpoint(self, name: str) -> EndpointTick:
        """The report of endpoint ``name`` (``KeyError`` if the tick did not visit it)."""
        for found in self.endpoints:
            if found.endpoint == name:
                return found
        raise KeyError(name)

    @property
    def errors(self) -> tuple[EndpointTick, ...]:
        return tuple(e for e in self.endpoints if e.error)


@dataclass(slots=True)
class Trace:
    """``EndpointTick`` while it is being gathered."""

    endpoint: str
    rollout_id: int | None = None
    phase: str | None = None
    started: bool = False
    conflict: bool = False
    waiting: str = ""
    error: str = ""
    applied: list[dict[str, Any]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def seen(self, record: RolloutRecordLike) -> RolloutRecordLike:
        self.rollout_id, self.phase = record.id, record.phase
        return record

    def report(self) -> EndpointTick:
        return EndpointTick(
            self.endpoint,
            self.rollout_id,
            self.phase,
            self.started,
            self.conflict,
            self.waiting,
            self.error,
            tuple(self.applied),
            tuple(self.events),
        )


class Applier:
    """Commits decisions and applies their effects; ``owner`` names this controller instance."""

    def __init__(
        self,
        store: RolloutStore,
        traffic: Traffic,
        aliases: Aliases,
        clock: Clock,
        *,
        actor: str,
        owner: str,
        recover_after_s: float,
    ) -> None:
        self._store, self._traffic, self._aliases, self._clock = store, traffic, aliases, clock
        self._actor, self._owner, self._recover_after_s = actor, owner, recover_after_s

    def commit(
        self,
        record: RolloutRecordLike,
        before: RolloutState,
        after: RolloutState,
        items: Sequence[Item],
        commands: Sequence[int],
        trace: Trace,
    ) -> RolloutRecordLike:
        """Save ``after`` with the effects of ``items`` (and ``commands`` consumed), then apply
        them; returns the record as last saved."""
        traffic, aliases, events = effects(after.spec.model, items)
        versions = (after.baseline_version, after.candidate_version)
        outbox = Outbox(after.endpoint, versions, self._owner, self._clock.now(), traffic, aliases)
        unfinished = after.terminal and record.finished_at is None
        if outbox.empty and not events and not commands and after == before and not unfinished:
            return record
        record = self._save(record, after, outbox, events, commands)  # the decision (CAS)
        trace.events += [e.kind for e in events]
        return trace.seen(self._apply(record, after, outbox, trace))

    def recover(
        self, record: RolloutRecordLike, state: RolloutState, outbox: Outbox, trace: Trace
    ) -> RolloutRecordLike | None:
        """Apply a left ``outbox``; None while another instance may still be applying it."""
        age = (self._clock.now() - outbox.committed_at).total_seconds()
        if outbox.owner != self._owner and age < self._recover_after_s:
            trace.waiting = (
                f"{outbox.owner} committed a decision {age:.0f}s ago and may be applying it; "
                f"taking it over after {self._recover_after_s:g}s"
            )
            return None
        log.warning("endpoint %r: applying what %s left unapplied", state.endpoint, outbox.owner)
        claimed = replace(outbox, owner=self._owner, committed_at=self._clock.now())
        record = self._save(record, state, claimed)  # only one controller takes it over
        return trace.seen(self._apply(record, state, claimed, trace))

    def consume(self, command_id: int) -> None:
        """Mark a command of a finished rollout consumed (outside any decision)."""
        try:
            self._store.consume_command(command_id, self._actor)
        except ConflictError as exc:  # consumed already: what we want
            log.info("rollout command %s was consumed already (%s)", command_id, exc)

    def _apply(
        self, record: RolloutRecordLike, state: RolloutState, outbox: Outbox, trace: Trace
    ) -> RolloutRecordLike:
        if outbox.empty:
            return record
        for action in outbox.traffic:
            self._traffic.apply(outbox.endpoint, action, outbox.versions)
            trace.applied.append(action_to_dict(action))
        for move in outbox.aliases:
            self._aliases.move(move.model, move.alias, move.version, move.reason)
            trace.applied.append(
                {"type": "MoveAlias", "alias": move.alias, "version": move.version}
            )
        return self._save(record, state, None)

    def _save(
        self,
        record: RolloutRecordLike,
        state: RolloutState,
        outbox: Outbox | None,
        events: Sequence[NewRolloutEvent] = (),
        commands: Sequence[int] = (),
    ) -> RolloutRecordLike:
        pending = outbox is not None and not outbox.empty
        return self._store.save_rollout(
            record.id,
            document(state, outbox),
            state.phase,
            record.revision,
            self._actor,
            state.terminal and not pending,
            events=events,
            consumed=commands,
        )
