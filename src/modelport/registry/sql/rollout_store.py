"""The deployment and rollout half of ``SqlMetadataStore`` (a mixin: it runs its work through
the store's ``_read``/``_write`` and reads the store's clock).

Inputs are checked before any transaction; each write runs in one transaction with its audit
events (``deployment.record``, ``rollout.start``, ``rollout.update``/``rollout.finish``, one per
rollout event named by its kind, ``rollout.command``, ``rollout.command_consumed``), all with
``object_type`` ``endpoint``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection

from modelport.core.clock import Clock
from modelport.core.deployment import DeploymentSpec
from modelport.core.errors import InvalidInputError
from modelport.core.rollouts import (
    DeploymentRecord,
    NewRolloutEvent,
    RolloutCommandRecord,
    RolloutEventRecord,
    RolloutRecord,
)
from modelport.registry.sql import rollout_queries, rollout_rows, rollout_writes
from modelport.registry.sql.mapping import validate_actor
from modelport.registry.sql.rollout_rows import check_count, check_endpoint, check_phase

__all__ = ["RolloutStoreMethods"]

T = TypeVar("T")


class RolloutStoreMethods:
    """Deployment specs, rollouts, their events and operator commands."""

    _clock: Clock

    def _read(self, action: str, work: Callable[[Connection], T]) -> T:  # pragma: no cover
        raise NotImplementedError

    def _write(self, action: str, work: Callable[[Connection], T]) -> T:  # pragma: no cover
        raise NotImplementedError

    # -- deployment specs ---------------------------------------------------------------------

    def record_deployment(self, spec: DeploymentSpec, actor: str) -> DeploymentRecord:
        """Append ``spec`` as the endpoint's next revision (1, 2, ...); when the latest revision
        has the same digest nothing is written and that revision is returned."""
        values = rollout_rows.spec_values(spec)
        validate_actor(actor)
        return self._write(
            f"recording the spec of endpoint {spec.endpoint!r}",
            lambda conn: rollout_writes.record_deployment(conn, spec, values, actor, self._clock),
        )

    def get_deployment(self, endpoint: str, revision: int | None = None) -> DeploymentRecord:
        """Revision ``revision`` of the endpoint's spec, the latest when None;
        ``DeploymentNotFoundError`` when there is none."""
        check_endpoint(endpoint)
        if revision is not None:
            check_count(revision, "a spec revision")
        return self._read(
            f"reading the spec of endpoint {endpoint!r}",
            lambda conn: rollout_queries.deployment(conn, endpoint, revision),
        )

    def list_deployments(self) -> list[DeploymentRecord]:
        """The latest spec revision of every endpoint, by endpoint name."""
        return self._read("listing deployments", rollout_queries.deployments)

    # -- rollouts -----------------------------------------------------------------------------

    def start_rollout(
        self,
        endpoint: str,
        spec_revision: int,
        state: Mapping[str, Any],
        phase: str,
        actor: str,
    ) -> RolloutRecord:
        """Create the endpoint's rollout (``revision`` 1) under an existing spec revision;
        ``ConflictError`` while another rollout of the endpoint is unfinished."""
        check_endpoint(endpoint)
        check_count(spec_revision, "a spec revision")
        check_phase(phase)
        validate_actor(actor)
        document = rollout_rows.state_document(
            state, phase, f"the rollout of endpoint {endpoint!r}", endpoint
        )
        return self._write(
            f"starting a rollout of endpoint {endpoint!r}",
            lambda conn: rollout_writes.start_rollout(
                conn, endpoint, spec_revision, document, phase, actor, self._clock
            ),
        )

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
    ) -> RolloutRecord:
        """Compare-and-swap: store ``state`` if the rollout is still at ``expected_revision``
        and unfinished (``ConflictError`` otherwise); ``revision`` grows by one and
        ``finished`` stamps ``finished_at``. ``events`` are appended and the ``consumed``
        command ids marked in the same transaction, so they land exactly when the save does."""
        check_count(rollout_id, "a rollout id")
        check_count(expected_revision, "the expected revision")
        check_phase(phase)
        validate_actor(actor)
        if not isinstance(finished, bool):
            raise InvalidInputError("finished must be True or False")
        what = f"rollout #{rollout_id}"
        document = rollout_rows.state_document(state, phase, what)
        rows = rollout_rows.event_values(events, actor, what)
        ids = list(dict.fromkeys(check_count(c, "a command id") for c in consumed))
        return self._write(
            f"saving rollout #{rollout_id}",
            lambda conn: rollout_writes.save_rollout(
                conn,
                rollout_id,
                document,
                phase,
                expected_revision,
                finished,
                rows,
                ids,
                actor,
                self._clock,
            ),
        )

    def current_rollout(self, endpoint: str) -> RolloutRecord | None:
        """The endpoint's unfinished rollout, if any."""
        check_endpoint(endpoint)

        def work(conn: Connection) -> RolloutRecord | None:
            row = rollout_queries.unfinished_row(conn, endpoint)
            return None if row is None else rollout_rows.rollout(row)

        return self._read(f"reading the rollout of endpoint {endpoint!r}", work)

    def latest_rollout(self, endpoint: str) -> RolloutRecord | None:
        """The endpoint's newest rollout, finished or not; None if it never had one."""
        check_endpoint(endpoint)
        return self._read(
            f"reading the latest rollout of endpoint {endpoint!r}",
            lambda conn: rollout_queries.latest_rollout(conn, endpoint),
        )

    def list_rollouts(
        self, endpoint: str | None = None, active_only: bool = False
    ) -> list[RolloutRecord]:
        """Rollouts oldest first, of ``endpoint`` or of every endpoint; unfinished ones only
        with ``active_only``."""
        if endpoint is not None:
            check_endpoint(endpoint)
        return self._read(
            "listing rollouts",
            lambda conn: rollout_queries.list_rollouts(conn, endpoint, bool(active_only)),
        )

    # -- events -------------------------------------------------------------------------------

    def add_rollout_events(
        self, rollout_id: int, events: Sequence[NewRolloutEvent], actor: str
    ) -> None:
        """Append events to the rollout's history in the given order (finished rollouts too);
        an event without an actor gets ``actor``."""
        check_count(rollout_id, "a rollout id")
        validate_actor(actor)
        rows = rollout_rows.event_values(events, actor, f"rollout #{rollout_id}")
        self._write(
            f"recording events of rollout #{rollout_id}",
            lambda conn: rollout_writes.add_events(conn, rollout_id, rows, actor, self._clock),
        )

    def rollout_history(self, endpoint: str) -> list[RolloutEventRecord]:
        """Every event of every rollout of ``endpoint``, oldest first;
        ``DeploymentNotFoundError`` for an endpoint that was never deployed."""
        check_endpoint(endpoint)

        def work(conn: Connection) -> list[RolloutEventRecord]:
            found = rollout_queries.history(conn, endpoint)
            if not found and rollout_queries.latest_deployment(conn, endpoint) is None:
                raise rollout_rows.no_deployment(endpoint)
            return found

        return self._read(f"reading the rollout history of endpoint {endpoint!r}", work)

    # -- operator commands --------------------------------------------------------------------

    def add_rollout_command(
        self, endpoint: str, op: str, actor: str, reason: str = ""
    ) -> RolloutCommandRecord:
        """Queue ``op`` for the endpoint's unfinished rollout; ``RolloutNotFoundError`` when
        none is unfinished (``DeploymentNotFoundError`` when it was never deployed)."""
        check_endpoint(endpoint)
        rollout_rows.check_op(op)
        validate_actor(actor)
        rollout_rows.reason_text(reason)
        return self._write(
            f"queueing {op} for endpoint {endpoint!r}",
            lambda conn: rollout_writes.add_command(conn, endpoint, op, reason, actor, self._clock),
        )

    def pending_commands(self, rollout_id: int) -> list[RolloutCommandRecord]:
        """The rollout's commands not consumed yet, oldest first."""
        check_count(rollout_id, "a rollout id")

        def work(conn: Connection) -> list[RolloutCommandRecord]:
            if rollout_queries.rollout_row(conn, rollout_id) is None:
                raise rollout_rows.no_rollout(rollout_id)
            return rollout_queries.commands(conn, rollout_id=rollout_id, pending_only=True)

        return self._read(f"reading the commands of rollout #{rollout_id}", work)

    def consume_command(self, command_id: int, actor: str) -> None:
        """Mark a command acted on; ``ConflictError`` if it was consumed already."""
        check_count(command_id, "a command id")
        validate_actor(actor)
        self._write(
            f"consuming rollout command #{command_id}",
            lambda conn: rollout_writes.consume_command(conn, command_id, actor, self._clock),
        )
