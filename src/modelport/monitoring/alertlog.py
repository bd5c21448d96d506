"""The alert log: every firing / resolved event in one SQL table, ``mp_alert_events``.

SQLAlchemy 2 Core on its own ``MetaData`` (the registry's migrations do not own this table);
SQLite or PostgreSQL, from an engine the caller built (shared with the registry) or a URL (the
log then owns its engine and ``close`` disposes of it). ``create`` is idempotent and safe when
several processes run it at once: on PostgreSQL it holds a transaction-scoped advisory lock.
Times are stored in UTC; ``recorded_at`` (the clock's time at ``record``) orders the history.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.pool import StaticPool

from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import (
    InvalidInputError,
    MissingExtraError,
    StoreError,
    StoreUnavailableError,
)
from modelport.monitoring.alert_events import AlertEvent

__all__ = ["ALERT_EVENTS_TABLE", "AlertLog", "AlertRecord"]

ALERT_EVENTS_TABLE = "mp_alert_events"
MAX_LIMIT = 10_000
# pg_advisory_xact_lock key: b"mpalerts" as a signed 64-bit integer.
_PG_LOCK_KEY = int.from_bytes(b"mpalerts", "big", signed=True)

metadata = MetaData()
alert_events = Table(
    ALERT_EVENTS_TABLE,
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("rule", String(63), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("model", String(100), nullable=False),
    Column("version", String(64), nullable=False),
    Column("feature", String(200)),
    Column("statistic", String(8)),
    Column("value", Float),
    Column("threshold", Float, nullable=False),
    Column("window_s", Integer, nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True)),
    Column("summary", Text, nullable=False),
    Index("ix_mp_alert_events_fingerprint", "fingerprint", "id"),
    Index("ix_mp_alert_events_model", "model", "recorded_at"),
    Index("ix_mp_alert_events_recorded_at", "recorded_at"),
)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One logged event: its row id, when it was recorded, and the event."""

    id: int
    recorded_at: datetime
    event: AlertEvent


class AlertLog:
    """Append-only log of alert events; ``firing()`` is the latest state of every alert."""

    def __init__(self, engine_or_url: Engine | str, *, clock: Clock | None = None) -> None:
        self._owned = isinstance(engine_or_url, str)
        self._engine = _engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
        self._clock = clock or SystemClock()

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        """Dispose of the engine if this log created it (from a URL)."""
        if self._owned:
            self._engine.dispose()

    def __enter__(self) -> AlertLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create(self) -> None:
        """Create the table and its indexes if missing. Idempotent, safe concurrently."""
        try:
            with self._engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                metadata.create_all(conn, checkfirst=True)
        except DBAPIError as exc:
            # SQLite: another process created it between our check and our CREATE
            if not isinstance(exc, OperationalError) or not self._exists():
                raise self._error(exc, "creating the alert log table") from exc

    def _exists(self) -> bool:
        try:
            with self._engine.connect() as conn:
                return bool(inspect(conn).has_table(ALERT_EVENTS_TABLE))
        except DBAPIError:
            return False

    def record(self, events: Iterable[AlertEvent]) -> int:
        """Append ``events`` (one transaction); how many were written."""
        now = _utc(self._clock.now())
        rows = [_row(event, now) for event in events]
        if not rows:
            return 0
        with self._transaction("recording alert events") as conn:
            conn.execute(alert_events.insert(), rows)
        return len(rows)

    def firing(self) -> list[AlertEvent]:
        """Alerts whose latest logged event is ``firing``, oldest first."""
        latest = (
            select(func.max(alert_events.c.id).label("id"))
            .group_by(alert_events.c.fingerprint)
            .subquery()
        )
        query = (
            select(alert_events)
            .join(latest, alert_events.c.id == latest.c.id)
            .where(alert_events.c.status == "firing")
            .order_by(alert_events.c.starts_at, alert_events.c.id)
        )
        with self._transaction("reading firing alerts") as conn:
            return [_event(row._mapping) for row in conn.execute(query)]

    def history(
        self, model: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[AlertRecord]:
        """Logged events, newest first: of ``model`` only, recorded at or after ``since``."""
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInputError(f"alert history limit must be 1 to {MAX_LIMIT}")
        if since is not None and since.tzinfo is None:
            raise InvalidInputError("alert history 'since' needs a time zone (e.g. UTC)")
        query = select(alert_events).order_by(alert_events.c.id.desc()).limit(limit)
        if model is not None:
            query = query.where(alert_events.c.model == model)
        if since is not None:
            query = query.where(alert_events.c.recorded_at >= _utc(since))
        with self._transaction("reading the alert history") as conn:
            return [
                AlertRecord(
                    id=int(row.id), recorded_at=_aware(row.recorded_at), event=_event(row._mapping)
                )
                for row in conn.execute(query)
            ]

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[Connection]:
        """One transaction; database errors become ``StoreError``s."""
        try:
            with self._engine.begin() as conn:
                yield conn
        except DBAPIError as exc:
            raise self._error(exc, doing) from exc

    def _error(self, exc: DBAPIError, doing: str) -> StoreError:
        shown = self._engine.url.render_as_string(hide_password=True)
        missing_table = "no such table" in str(exc.orig)  # SQLite's word for it
        if isinstance(exc, OperationalError) and not missing_table:
            return StoreUnavailableError(
                f"alert log at {shown}: {doing} failed ({type(exc.orig).__name__}); check that "
                "the database is reachable, then retry"
            )
        return StoreError(
            f"alert log at {shown}: {doing} failed ({type(exc.orig).__name__}); run create() "
            "first, or check the table's schema"
        )


def _engine(url: str) -> Engine:
    try:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        if url.startswith("postgresql") and importlib.util.find_spec("psycopg") is None:
            raise MissingExtraError("psycopg", "postgres")
        if url.startswith("sqlite"):
            memory = url in ("sqlite://", "sqlite:///:memory:")
            kwargs: dict[str, Any] = {"connect_args": {"timeout": 30.0}}
            if memory:
                kwargs.update(poolclass=StaticPool)
                kwargs["connect_args"]["check_same_thread"] = False
            return create_engine(url, **kwargs)
        if url.startswith("postgresql+psycopg://"):
            return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    except (ArgumentError, NoSuchModuleError) as exc:
        raise InvalidInputError(
            "the alert log URL is not a database URL; use sqlite:///path/alerts.db or "
            "postgresql+psycopg://user@host/db"
        ) from exc
    raise InvalidInputError(
        "the alert log URL names an unsupported database; use sqlite:///path or "
        "postgresql+psycopg://user@host/db"
    )


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


def _aware(at: datetime) -> datetime:
    """SQLite gives back naive datetimes; they were stored in UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _row(event: AlertEvent, now: datetime) -> dict[str, Any]:
    return {
        "recorded_at": now,
        "fingerprint": event.fingerprint,
        "rule": event.rule,
        "kind": event.kind,
        "severity": event.severity,
        "status": event.status,
        "model": event.model,
        "version": event.version,
        "feature": event.feature,
        "statistic": event.statistic,
        "value": event.value,
        "threshold": event.threshold,
        "window_s": event.window_s,
        "starts_at": _utc(event.starts_at),
        "ends_at": None if event.ends_at is None else _utc(event.ends_at),
        "summary": event.summary,
    }


def _event(row: RowMapping) -> AlertEvent:
    ends_at = row["ends_at"]
    return AlertEvent(
        rule=row["rule"],
        kind=cast(Any, row["kind"]),
        severity=cast(Any, row["severity"]),
        status=cast(Any, row["status"]),
        model=row["model"],
        version=row["version"],
        feature=row["feature"],
        statistic=row["statistic"],
        value=row["value"],
        threshold=float(row["threshold"]),
        window_s=int(row["window_s"]),
        starts_at=_aware(row["starts_at"]),
        ends_at=None if ends_at is None else _aware(ends_at),
        fingerprint=row["fingerprint"],
        summary=row["summary"],
    )
