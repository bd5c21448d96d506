"""Bodies of the deployment and rollout write transactions, each with its audit events.

Writers of one endpoint queue on a per-endpoint lock taken first: a transaction-scoped advisory
lock on PostgreSQL, and on SQLite the write lock that ``BEGIN IMMEDIATE`` already holds. So
revision numbers are allocated without gaps or collisions and the "one unfinished rollout per
endpoint" check cannot race (the partial unique index backs it up). Saving a rollout is a
compare-and-swap on its ``revision``: the row is locked, compared and updated in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, text, update

from modelport.core.clock import Clock
from modelport.core.deployment import DeploymentSpec
from modelport.core.errors import ConflictError, InvalidInputError, RolloutNotFoundError
from modelport.core.rollouts import DeploymentRecord, RolloutCommandRecord, RolloutRecord
from modelport.registry.sql import rollout_queries, rollout_rows
from modelport.registry.sql.tables import (
    deployment_specs,
    rollout_commands,
    rollout_events,
    rollouts,
)
from modelport.registry.sql.writes import add_audit, inserted_id

__all__ = [
    "add_command",
    "add_events",
    "consume_command",
    "record_deployment",
    "save_rollout",
    "start_rollout",
]

# pg_advisory_xact_lock(space, hashtext(endpoint)): the two-key space, apart from the
# migration's single 64-bit key.
_ENDPOINT_LOCK_SPACE = int.from_bytes(b"mpep", "big", signed=True)


def lock_endpoint(conn: Connection, endpoint: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:endpoint))"),
            {"space": _ENDPOINT_LOCK_SPACE, "endpoint": endpoint},
        )


def _audit(
    conn: Connection, at: datetime, actor: str, action: str, endpoint: str, details: Any
) -> None:
    add_audit(conn, at, actor, action, "endpoint", endpoint, None, details)


def record_deployment(
    conn: Connection, spec: DeploymentSpec, values: Mapping[str, Any], actor: str, clock: Clock
) -> DeploymentRecord:
    """Append the next revision of the endpoint's spec, or return the latest if it is equal."""
    endpoint = values["endpoint"]
    lock_endpoint(conn, endpoint)
    now = clock.now()
    latest = rollout_queries.latest_deployment(conn, endpoint)
    if latest is not None and latest.digest == values["digest"]:
        return latest
    revision = 1 if latest is None else latest.revision + 1
    row = {**values, "revision": revision, "created_by": actor, "created_at": now}
    record_id = inserted_id(conn.execute(insert(deployment_specs).values(**row)))
    details = {
        "revision": revision,
        "digest": values["digest"],
        "previous_revision": None if latest is None else latest.revision,
        "strategy": spec.strategy.kind,
        "baseline": str(spec.baseline),
        "candidate": None if spec.candidate is None else str(spec.candidate),
    }
    _audit(conn, now, actor, "deployment.record", endpoint, details)
    return DeploymentRecord(
        record_id, endpoint, revision, spec, values["digest"], actor, now.astimezone(UTC)
    )


def start_rollout(
    conn: Connection,
    endpoint: str,
    spec_revision: int,
    state: Mapping[str, Any],
    phase: str,
    actor: str,
    clock: Clock,
) -> RolloutRecord:
    lock_endpoint(conn, endpoint)
    now = clock.now()
    rollout_queries.deployment(conn, endpoint, spec_revision)  # it must exist
    running = rollout_queries.unfinished_row(conn, endpoint)
    if running is not None:
        raise ConflictError(
            f"endpoint {endpoint!r} has rollout #{running['id']} in progress (phase "
            f"{running['phase']}, spec revision {running['spec_revision']}); wait for it to "
            f"finish, or stop it with `modelport rollout abort {endpoint}`"
        )
    values = {
        "endpoint": endpoint,
        "spec_revision": spec_revision,
        "phase": phase,
        "state": dict(state),
        "revision": 1,
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
    }
    rollout_id = inserted_id(conn.execute(insert(rollouts).values(**values)))
    details = {"rollout_id": rollout_id, "spec_revision": spec_revision, "phase": phase}
    _audit(conn, now, actor, "rollout.start", endpoint, details)
    created = now.astimezone(UTC)
    return RolloutRecord(
        rollout_id, endpoint, spec_revision, phase, dict(state), 1, created, created, None
    )


def save_rollout(
    conn: Connection,
    rollout_id: int,
    state: Mapping[str, Any],
    phase: str,
    expected_revision: int,
    finished: bool,
    events: Sequence[Mapping[str, Any]],
    consumed: Sequence[int],
    actor: str,
    clock: Clock,
) -> RolloutRecord:
    """Replace the state if the row is still at ``expected_revision``; then append ``events``
    and mark ``consumed`` commands, all or nothing."""
    row = _current(conn, rollout_id, expected_revision)
    endpoint = row["endpoint"]
    if state.get("endpoint", endpoint) != endpoint:
        raise InvalidInputError(
            f"the state given for rollout #{rollout_id} of endpoint {endpoint!r} belongs to "
            f"endpoint {str(state['endpoint'])[:100]!r}"
        )
    now = clock.now()
    r = rollouts.c
    done = now if finished else None
    result = conn.execute(
        update(rollouts)
        .where(r.id == rollout_id, r.revision == expected_revision, r.finished_at.is_(None))
        .values(
            state=dict(state),
            phase=phase,
            revision=r.revision + 1,
            updated_at=now,
            finished_at=done,
        )
    )
    if result.rowcount != 1:  # pragma: no cover - the row lock above makes this unreachable
        raise _changed(row, expected_revision)
    details = {
        "rollout_id": rollout_id,
        "revision": expected_revision + 1,
        "phase_from": row["phase"],
        "phase_to": phase,
        "finished": finished,
    }
    _audit(conn, now, actor, "rollout.finish" if finished else "rollout.update", endpoint, details)
    _insert_events(conn, rollout_id, endpoint, events, now, actor)
    for command_id in consumed:
        consume_command(conn, command_id, actor, clock, rollout_id=rollout_id)
    return RolloutRecord(
        rollout_id,
        endpoint,
        row["spec_revision"],
        phase,
        dict(state),
        expected_revision + 1,
        row["created_at"],
        now.astimezone(UTC),
        None if done is None else done.astimezone(UTC),
    )


def _current(conn: Connection, rollout_id: int, expected_revision: int) -> RowMapping:
    row = rollout_queries.rollout_row(conn, rollout_id, lock=True)
    if row is None:
        raise rollout_rows.no_rollout(rollout_id)
    if row["finished_at"] is not None or row["revision"] != expected_revision:
        raise _changed(row, expected_revision)
    return row


def _changed(row: RowMapping, expected_revision: int) -> ConflictError:
    what = f"rollout #{row['id']} of endpoint {row['endpoint']!r}"
    if row["finished_at"] is not None:
        return ConflictError(
            f"{what} finished already ({row['phase']}); start a new rollout with "
            "`modelport deploy SPEC.yaml`"
        )
    return ConflictError(
        f"{what} changed since revision {expected_revision} (it is at revision "
        f"{row['revision']}, phase {row['phase']}); reload it and decide again"
    )


def add_events(
    conn: Connection,
    rollout_id: int,
    events: Sequence[Mapping[str, Any]],
    actor: str,
    clock: Clock,
) -> None:
    row = rollout_queries.rollout_row(conn, rollout_id)
    if row is None:
        raise rollout_rows.no_rollout(rollout_id)
    _insert_events(conn, rollout_id, row["endpoint"], events, clock.now(), actor)


def _insert_events(
    conn: Connection,
    rollout_id: int,
    endpoint: str,
    events: Sequence[Mapping[str, Any]],
    now: datetime,
    actor: str,
) -> None:
    """Append the events (each also an audit event named by its kind), in the given order."""
    for values in events:
        at = values["at"] or now
        row = {**values, "at": at, "rollout_id": rollout_id, "endpoint": endpoint}
        event_id = inserted_id(conn.execute(insert(rollout_events).values(**row)))
        details = {
            "rollout_id": rollout_id,
            "event_id": event_id,
            "phase_from": values["phase_from"],
            "phase_to": values["phase_to"],
            "reason": values["reason"],
            "figures": values["figures"],
        }
        if values["actor"] != actor:
            details["recorded_by"] = actor
        _audit(conn, at, values["actor"], values["kind"], endpoint, details)


def add_command(
    conn: Connection, endpoint: str, op: str, reason: str, actor: str, clock: Clock
) -> RolloutCommandRecord:
    """Queue ``op`` for the endpoint's unfinished rollout (the row is locked, so a rollout that
    finishes meanwhile takes no command)."""
    running = rollout_queries.unfinished_row(conn, endpoint, lock=True)
    if running is None:
        latest = rollout_queries.list_rollouts(conn, endpoint, active_only=False)
        if not latest and rollout_queries.latest_deployment(conn, endpoint) is None:
            raise rollout_rows.no_deployment(endpoint)
        last = ""
        if latest:
            last = f"; the last one, #{latest[-1].id}, is {latest[-1].phase.replace('_', ' ')}"
        raise RolloutNotFoundError(
            f"endpoint {endpoint!r} has no rollout in progress{last}, so there is nothing to "
            f"{op}; run `modelport rollout status {endpoint}`"
        )
    now = clock.now()
    rollout_id = running["id"]
    values = {
        "rollout_id": rollout_id,
        "op": op,
        "actor": actor,
        "reason": reason,
        "created_at": now,
        "consumed_at": None,
    }
    command_id = inserted_id(conn.execute(insert(rollout_commands).values(**values)))
    details = {"rollout_id": rollout_id, "command_id": command_id, "op": op, "reason": reason}
    _audit(conn, now, actor, "rollout.command", endpoint, details)
    return RolloutCommandRecord(
        command_id, rollout_id, endpoint, op, actor, reason, now.astimezone(UTC), None
    )


def consume_command(
    conn: Connection,
    command_id: int,
    actor: str,
    clock: Clock,
    rollout_id: int | None = None,
) -> None:
    """Mark a pending command consumed; a consumed one (or one of another rollout) conflicts."""
    found = rollout_queries.commands(conn, command_id=command_id, lock=True)
    if not found:
        raise rollout_rows.no_command(command_id)
    cmd = found[0]
    what = f"command #{command_id} ({cmd.op} of rollout #{cmd.rollout_id})"
    if rollout_id is not None and cmd.rollout_id != rollout_id:
        raise ConflictError(f"{what} is not a command of rollout #{rollout_id}")
    if cmd.consumed_at is not None:
        raise ConflictError(
            f"{what} was consumed already at {cmd.consumed_at.isoformat()}; it is acted on once"
        )
    now = clock.now()
    c = rollout_commands.c
    conn.execute(
        update(rollout_commands)
        .where(c.id == command_id, c.consumed_at.is_(None))
        .values(consumed_at=now)
    )
    details = {"rollout_id": cmd.rollout_id, "command_id": command_id, "op": cmd.op}
    _audit(conn, now, actor, "rollout.command_consumed", cmd.endpoint, details)
