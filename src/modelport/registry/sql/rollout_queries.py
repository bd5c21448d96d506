"""Read queries of the deployment and rollout tables; each takes an open connection."""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping, Select, func, select

from modelport.core.rollouts import (
    DeploymentRecord,
    RolloutCommandRecord,
    RolloutEventRecord,
    RolloutRecord,
)
from modelport.registry.sql import rollout_rows
from modelport.registry.sql.tables import (
    deployment_specs,
    rollout_commands,
    rollout_events,
    rollouts,
)

__all__ = [
    "commands",
    "deployment",
    "deployments",
    "history",
    "latest_deployment",
    "latest_rollout",
    "list_rollouts",
    "rollout_row",
    "unfinished_row",
]


def latest_deployment(conn: Connection, endpoint: str) -> DeploymentRecord | None:
    ds = deployment_specs.c
    row = (
        conn.execute(
            select(deployment_specs)
            .where(ds.endpoint == endpoint)
            .order_by(ds.revision.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return None if row is None else rollout_rows.deployment(row)


def deployment(conn: Connection, endpoint: str, revision: int | None) -> DeploymentRecord:
    """Revision ``revision`` of ``endpoint``'s spec (the latest when None), or not found."""
    latest = latest_deployment(conn, endpoint)
    if latest is None:
        raise rollout_rows.no_deployment(endpoint)
    if revision is None or revision == latest.revision:
        return latest
    ds = deployment_specs.c
    row = (
        conn.execute(
            select(deployment_specs).where(ds.endpoint == endpoint, ds.revision == revision)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise rollout_rows.no_revision(endpoint, revision, latest.revision)
    return rollout_rows.deployment(row)


def deployments(conn: Connection) -> list[DeploymentRecord]:
    """The latest revision of every endpoint, by endpoint name."""
    ds = deployment_specs.c
    newest = (
        select(ds.endpoint, func.max(ds.revision).label("revision"))
        .group_by(ds.endpoint)
        .subquery()
    )
    query = (
        select(deployment_specs)
        .join(newest, (newest.c.endpoint == ds.endpoint) & (newest.c.revision == ds.revision))
        .order_by(ds.endpoint)
    )
    return [rollout_rows.deployment(row) for row in conn.execute(query).mappings()]


def rollout_row(conn: Connection, rollout_id: int, lock: bool = False) -> RowMapping | None:
    query = select(rollouts).where(rollouts.c.id == rollout_id)
    return conn.execute(query.with_for_update() if lock else query).mappings().first()


def unfinished_row(conn: Connection, endpoint: str, lock: bool = False) -> RowMapping | None:
    r = rollouts.c
    query = select(rollouts).where(r.endpoint == endpoint, r.finished_at.is_(None))
    return conn.execute(query.with_for_update() if lock else query).mappings().first()


def latest_rollout(conn: Connection, endpoint: str) -> RolloutRecord | None:
    r = rollouts.c
    query = select(rollouts).where(r.endpoint == endpoint).order_by(r.id.desc()).limit(1)
    row = conn.execute(query).mappings().first()
    return None if row is None else rollout_rows.rollout(row)


def list_rollouts(conn: Connection, endpoint: str | None, active_only: bool) -> list[RolloutRecord]:
    """Rollouts, oldest first, of one endpoint or all; only unfinished ones with ``active_only``."""
    r = rollouts.c
    query = select(rollouts).order_by(r.id)
    if endpoint is not None:
        query = query.where(r.endpoint == endpoint)
    if active_only:
        query = query.where(r.finished_at.is_(None))
    return [rollout_rows.rollout(row) for row in conn.execute(query).mappings()]


def history(conn: Connection, endpoint: str) -> list[RolloutEventRecord]:
    """Every event of every rollout of ``endpoint``, in the order they were recorded."""
    e = rollout_events.c
    query = select(rollout_events).where(e.endpoint == endpoint).order_by(e.id)
    return [rollout_rows.event(row) for row in conn.execute(query).mappings()]


def _commands() -> Select[tuple[object, ...]]:
    return select(rollout_commands, rollouts.c.endpoint).join(
        rollouts, rollouts.c.id == rollout_commands.c.rollout_id
    )


def commands(
    conn: Connection,
    rollout_id: int | None = None,
    command_id: int | None = None,
    pending_only: bool = False,
    lock: bool = False,
) -> list[RolloutCommandRecord]:
    """Commands (with their rollout's endpoint), oldest first."""
    c = rollout_commands.c
    query = _commands().order_by(c.id)
    if rollout_id is not None:
        query = query.where(c.rollout_id == rollout_id)
    if command_id is not None:
        query = query.where(c.id == command_id)
    if pending_only:
        query = query.where(c.consumed_at.is_(None))
    if lock:
        query = query.with_for_update(of=rollout_commands)
    return [rollout_rows.command(row) for row in conn.execute(query).mappings()]
