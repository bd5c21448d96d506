"""Bodies of the store's write transactions; each takes a connection inside its transaction.

Number allocation and alias moves first lock the model (or dataset) row: ``SELECT ... FOR
UPDATE`` on PostgreSQL, and on SQLite the write lock that ``BEGIN IMMEDIATE`` already holds. The
clock is read only once the lock is held, so timestamps follow the order in which changes land.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, CursorResult, Table, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from modelport.core.clock import Clock
from modelport.core.errors import InvalidInputError, StoreError
from modelport.core.model import (
    AliasMove,
    AuditEvent,
    DatasetRef,
    DatasetVersion,
    GateReportRecord,
    ModelVersion,
)
from modelport.registry.sql import mapping, queries
from modelport.registry.sql.tables import (
    alias_history,
    aliases,
    audit_events,
    dataset_versions,
    datasets,
    gate_reports,
    model_versions,
    models,
    version_datasets,
    version_variants,
)

__all__ = [
    "add_audit",
    "add_dataset_version",
    "add_gate_report",
    "add_variant",
    "add_version",
    "inserted_id",
    "move_alias",
]


def add_version(
    conn: Connection,
    name: str,
    values: Mapping[str, Any],
    refs: Sequence[DatasetRef],
    clock: Clock,
) -> ModelVersion:
    """Create the model if needed and insert version max+1 with its dataset links and audit."""
    actor = values["created_by"]
    model = {"description": "", "tags": {}, "created_at": clock.now(), "created_by": actor}
    mid = _lock_or_create(conn, models, name, model)
    now = clock.now()
    number = _next_number(conn, model_versions, model_versions.c.model_id, mid)
    links = [(_dataset_version_id(conn, ref), ref.role) for ref in refs]
    result = conn.execute(
        insert(model_versions).values(model_id=mid, number=number, created_at=now, **values)
    )
    version_id = inserted_id(result)
    if links:
        conn.execute(
            insert(version_datasets),
            [{"version_id": version_id, "dataset_version_id": d, "role": r} for d, r in links],
        )
    details = {"digest": values["digest"], "format": values["format"]}
    add_audit(conn, now, actor, "version.register", "model", name, number, details)
    return queries.load_versions(conn, mid, name, number)[0]


def add_dataset_version(
    conn: Connection, name: str, values: Mapping[str, Any], clock: Clock
) -> DatasetVersion:
    did = _lock_or_create(conn, datasets, name, {"created_at": clock.now()})
    now = clock.now()
    number = _next_number(conn, dataset_versions, dataset_versions.c.dataset_id, did)
    conn.execute(
        insert(dataset_versions).values(dataset_id=did, number=number, created_at=now, **values)
    )
    details = {"digest": values["digest"], "rows": values["rows"], "format": values["format"]}
    add_audit(conn, now, values["created_by"], "dataset.register", "dataset", name, number, details)
    return queries.load_dataset_versions(conn, name, number)[0]


def add_variant(
    conn: Connection,
    name: str,
    number: int,
    values: Mapping[str, Any],
    actor: str,
    clock: Clock,
) -> ModelVersion:
    """Record the variant of ``values["kind"]`` of version ``number``, replacing an existing one.

    The model row is locked first, so concurrent writers of the same variant queue; the audit
    event says whether a variant was replaced and which digest it had.
    """
    mid = queries.model_id(conn, name, lock=True)
    now = clock.now()
    mv = model_versions.c
    version_id = conn.execute(
        select(mv.id).where(mv.model_id == mid, mv.number == number)
    ).scalar_one_or_none()
    if version_id is None:
        raise queries.no_version(name, number)
    vv = version_variants.c
    where = (vv.version_id == version_id, vv.kind == values["kind"])
    previous = conn.execute(select(vv.status, vv.digest).where(*where)).first()
    if previous is None:
        conn.execute(
            insert(version_variants).values(version_id=version_id, created_at=now, **values)
        )
    else:
        conn.execute(update(version_variants).where(*where).values(created_at=now, **values))
    details: dict[str, Any] = {
        key: values[key]
        for key in ("kind", "status", "digest", "reason", "tolerance", "max_abs_diff")
    }
    details["checked_rows"] = values["checked_rows"]
    details["replaced"] = previous is not None
    if previous is not None:
        details["previous"] = {"status": previous.status, "digest": previous.digest}
    add_audit(conn, now, actor, "version.variant", "model", name, number, details)
    return queries.load_versions(conn, mid, name, number)[0]


def add_gate_report(
    conn: Connection,
    name: str,
    number: int,
    values: Mapping[str, Any],
    actor: str,
    clock: Clock,
) -> GateReportRecord:
    """Append a gate report to version ``number``, audited as ``version.gate``."""
    mid = queries.model_id(conn, name)
    now = clock.now()
    mv = model_versions.c
    version_id = conn.execute(
        select(mv.id).where(mv.model_id == mid, mv.number == number)
    ).scalar_one_or_none()
    if version_id is None:
        raise queries.no_version(name, number)
    result = conn.execute(
        insert(gate_reports).values(
            version_id=version_id, created_by=actor, created_at=now, **values
        )
    )
    report_id = inserted_id(result)
    details = {"gate": values["gate"], "passed": values["passed"], "report_id": report_id}
    add_audit(conn, now, actor, "version.gate", "model", name, number, details)
    return GateReportRecord(
        id=report_id,
        name=name,
        version=number,
        gate=values["gate"],
        passed=values["passed"],
        report=values["report"],
        created_by=actor,
        created_at=now.astimezone(UTC),
    )


def move_alias(
    conn: Connection,
    name: str,
    alias: str,
    number: int | None,
    actor: str,
    reason: str,
    clock: Clock,
) -> AliasMove:
    """Point ``alias`` at ``number`` (None deletes it) and append the move to its history.

    A move to the version the alias already points at records nothing and returns the last move.
    """
    mid = queries.model_id(conn, name, lock=True)
    now = clock.now()
    if number is not None and not queries.version_exists(conn, mid, number):
        raise queries.no_version(name, number)
    current = queries.alias_target(conn, mid, alias)
    where = (aliases.c.model_id == mid, aliases.c.alias == alias)
    if number is None:
        if current is None:
            raise queries.no_alias(name, alias)
        conn.execute(delete(aliases).where(*where))
    elif current == number:
        last = queries.last_move(conn, mid, name, alias)
        if last is not None:
            return last
    elif current is None:
        conn.execute(
            insert(aliases).values(model_id=mid, alias=alias, version_number=number, updated_at=now)
        )
    else:
        conn.execute(update(aliases).where(*where).values(version_number=number, updated_at=now))
    seq = 1 + int(
        conn.execute(
            select(func.coalesce(func.max(alias_history.c.seq), 0)).where(
                alias_history.c.model_id == mid, alias_history.c.alias == alias
            )
        ).scalar_one()
    )
    move = AliasMove(name, alias, seq, current, number, actor, reason, now.astimezone(UTC))
    conn.execute(
        insert(alias_history).values(
            model_id=mid,
            alias=alias,
            seq=seq,
            from_version=current,
            to_version=number,
            actor=actor,
            reason=reason,
            at=now,
        )
    )
    action = "alias.delete" if number is None else "alias.set"
    details = {"alias": alias, "from_version": current, "to_version": number, "reason": reason}
    affected = current if number is None else number
    add_audit(conn, now, actor, action, "model", name, affected, details)
    return move


def add_audit(
    conn: Connection,
    at: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_name: str,
    version: int | None,
    details: Mapping[str, Any],
) -> AuditEvent:
    stored = mapping.json_document(dict(details), "audit details")
    result = conn.execute(
        insert(audit_events).values(
            at=at,
            actor=actor,
            action=action,
            object_type=object_type,
            object_name=object_name,
            version=version,
            details=stored,
        )
    )
    return AuditEvent(
        id=inserted_id(result),
        at=at.astimezone(UTC),
        actor=actor,
        action=action,
        object_type=object_type,
        object_name=object_name,
        version=version,
        details=stored,
    )


def _lock_or_create(conn: Connection, table: Table, name: str, values: Mapping[str, Any]) -> int:
    """Lock the row of ``name`` in ``table`` (models or datasets), creating it first if needed."""
    locked = select(table.c.id).where(table.c.name == name).with_for_update()
    found = conn.execute(locked).scalar_one_or_none()
    if found is None:
        make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(
            make(table).values(name=name, **values).on_conflict_do_nothing(index_elements=["name"])
        )
        found = conn.execute(locked).scalar_one()
    return int(found)


def _next_number(conn: Connection, table: Table, parent: Any, parent_id: int) -> int:
    return (queries.latest_number(conn, table, parent, parent_id) or 0) + 1


def inserted_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    if key is None:  # pragma: no cover - every table has an integer primary key
        raise StoreError("the metadata database returned no id for a new row")
    return int(key[0])


def _dataset_version_id(conn: Connection, ref: DatasetRef) -> int:
    row = conn.execute(
        select(dataset_versions.c.id, dataset_versions.c.digest)
        .join(datasets, datasets.c.id == dataset_versions.c.dataset_id)
        .where(datasets.c.name == ref.name, dataset_versions.c.number == ref.version)
    ).first()
    if row is None:
        queries.dataset_id(conn, ref.name)
        raise queries.no_dataset_version(ref.name, ref.version)
    if ref.digest and ref.digest != row.digest:
        raise InvalidInputError(
            f"dataset {ref.name}:{ref.version} was registered with digest {row.digest}, not "
            f"{ref.digest}; link the registered version or register the new data first"
        )
    return int(row.id)
