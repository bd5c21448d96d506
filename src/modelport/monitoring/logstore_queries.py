"""SQL statements of the prediction log (built here, executed by ``SqlPredictionStore``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    Delete,
    Select,
    Table,
    and_,
    delete,
    exists,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from modelport.monitoring.logstore_rows import check_time
from modelport.monitoring.logstore_schema import feedback, predictions

__all__ = [
    "counts_query",
    "ids_query",
    "labeled_query",
    "prune_statements",
    "recent_query",
    "upsert",
    "upsert_feedback",
]

_p, _f = predictions.c, feedback.c
_joined = and_(_f.model == _p.model, _f.request_id == _p.request_id)


def upsert(dialect: str, table: Table, keys: Sequence[str], update: Sequence[str]) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` (SQLite and PostgreSQL spell it alike)."""
    stmt = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}
    )


def upsert_feedback(dialect: str) -> Any:
    return upsert(dialect, feedback, ("model", "request_id"), ("label", "received_at"))


def ids_query(model: str, ids: Sequence[str]) -> Select[Any]:
    """Logged ids of ``model`` among ``ids``, with their row counts."""
    return select(_p.request_id, _p.n_rows).where(_p.model == model, _p.request_id.in_(ids))


def _window(
    query: Select[Any], version: str | None, since: datetime | None, until: datetime | None
) -> Select[Any]:
    if version is not None:
        query = query.where(_p.version == version)
    if check_time(since, "since") is not None:
        query = query.where(_p.predicted_at >= since)
    if check_time(until, "until") is not None:
        query = query.where(_p.predicted_at < until)
    return query


def labeled_query(
    model: str, version: str | None, since: datetime | None, until: datetime | None
) -> Select[Any]:
    """``(version, predicted_at, outputs, label)`` of answered, labeled requests, oldest first."""
    query = (
        select(_p.version, _p.predicted_at, _p.outputs, _f.label)
        .join_from(predictions, feedback, _joined)
        .where(_p.model == model, _p.ok.is_(True), _p.outputs.is_not(None))
        .order_by(_p.predicted_at, _p.id)
    )
    return _window(query, version, since, until)


def recent_query(
    which: Literal["inputs", "outputs"],
    model: str,
    version: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> Select[Any]:
    """The logged ``which`` columns of the newest ``limit`` requests, newest first."""
    column = _p.inputs if which == "inputs" else _p.outputs
    query = (
        select(column)
        .where(_p.model == model, column.is_not(None))
        .order_by(_p.predicted_at.desc(), _p.id.desc())
        .limit(limit)
    )
    return _window(query, version, since, until)


def prune_statements(older_than: datetime) -> tuple[Delete, Delete]:
    """Delete predictions before ``older_than``; then feedback that labels none left."""
    orphan = ~exists().where(_p.model == _f.model, _p.request_id == _f.request_id)
    return (
        delete(predictions).where(_p.predicted_at < older_than),
        delete(feedback).where(orphan),
    )


def counts_query(model: str | None) -> Select[Any]:
    """Per model and version: requests, labeled requests, first and last time."""
    query = (
        select(
            _p.model,
            _p.version,
            func.count(),
            func.count(_f.request_id),
            func.min(_p.predicted_at),
            func.max(_p.predicted_at),
        )
        .join_from(predictions, feedback, _joined, isouter=True)
        .group_by(_p.model, _p.version)
        .order_by(_p.model, _p.version)
    )
    return query if model is None else query.where(_p.model == model)
