"""Tables, engines and schema creation of the prediction log database (SQLAlchemy 2 Core).

The monitoring tables have their own ``MetaData`` and an ``mp_`` prefix, so they can share a
PostgreSQL database with the registry; in embedded mode they live in their own SQLite file
(``monitoring.db``) so that logging never contends for the registry's write lock.

Engines made here never put statement parameters (payload values) into errors or logs. SQLite
runs in WAL mode with a busy timeout; pysqlite's transaction guessing is off and write
transactions start with ``BEGIN IMMEDIATE`` (readers with a plain ``BEGIN``), so concurrent writers
queue on the lock instead of failing to upgrade. On PostgreSQL ``create_schema`` holds a
transaction-scoped advisory lock, so processes starting together create the tables once.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from modelport.core.errors import (
    InvalidInputError,
    MissingExtraError,
    ModelportError,
    StoreError,
    StoreUnavailableError,
)

__all__ = [
    "BUSY_TIMEOUT_S",
    "PREDICTION_KEY",
    "SCHEMA_VERSION",
    "UtcDateTime",
    "create_schema",
    "feedback",
    "make_log_engine",
    "mask_url",
    "metadata",
    "predictions",
    "read_only",
    "schema_info",
    "translate",
]

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10
_READ_ONLY = "modelport_read_only"
# pg_advisory_xact_lock key: the first 8 bytes of sha256(b"modelport.monitoring.schema").
_SCHEMA_LOCK = 0x2B7E_1516_28AE_D2A6


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes: ``timestamptz`` on PostgreSQL, naive UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("naive datetime given to the prediction log; pass an aware one")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

schema_info = Table(
    "mp_monitoring_schema",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# A prediction is logged once per (model, request id, version): a repeat replaces the row.
PREDICTION_KEY = ("model", "request_id", "version")

predictions = Table(
    "mp_predictions",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("model", String(256), nullable=False),
    Column("request_id", String(256), nullable=False),
    Column("version", String(256), nullable=False),
    Column("endpoint", String(256), nullable=False),
    Column("predicted_at", UtcDateTime, nullable=False),
    Column("latency_s", Float, nullable=False),
    Column("n_rows", Integer, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("truncated", Boolean, nullable=False),
    Column("inputs", Text, nullable=True),  # JSON columns {name: [value per row]}
    Column("outputs", Text, nullable=True),
    # unique on (model, request_id, version): also the lookup index for (model, request_id)
    Index(None, *PREDICTION_KEY, unique=True),
    Index(None, "model", "version", "predicted_at"),
    Index(None, "predicted_at"),
)

feedback = Table(
    "mp_feedback",
    metadata,
    Column("model", String(256), primary_key=True),
    Column("request_id", String(256), primary_key=True),
    Column("label", Text, nullable=False),  # JSON: a label, or a list with one per row
    Column("received_at", UtcDateTime, nullable=False),
)


# -- engines ------------------------------------------------------------------------------------
def mask_url(url: str | URL) -> str:
    """``url`` with its password hidden, safe for messages and logs."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)


def read_only(engine: Engine) -> Engine:
    """A view of ``engine`` whose transactions only read (a deferred ``BEGIN`` on SQLite)."""
    return engine.execution_options(**{_READ_ONLY: True})


def make_log_engine(url: str) -> Engine:
    """An engine for ``sqlite:///path`` or ``postgresql+psycopg://...``; connects lazily."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInputError(
            "the prediction log URL is not a database URL; use sqlite:///path/to/monitoring.db "
            "or postgresql+psycopg://user:password@host:5432/db"
        ) from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite" and driver == "pysqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql" and (driver == "psycopg" or "+" not in parsed.drivername):
        if importlib.util.find_spec("psycopg") is None:
            raise MissingExtraError("psycopg", "postgres")
        return create_engine(
            parsed.set(drivername="postgresql+psycopg"),
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "modelport"},
        )
    raise InvalidInputError(
        f"prediction log URL {mask_url(parsed)} uses an unsupported database driver "
        f"{parsed.drivername!r}; use sqlite:///path or postgresql+psycopg://host/db"
    )


def _sqlite_engine(url: URL) -> Engine:
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S}, "hide_parameters": True}
    if url.database in (None, "", ":memory:"):
        # One shared connection (the writer thread uses it too): memory is per connection.
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"]["check_same_thread"] = False
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (_sqlite_on_begin)
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL (persistent, so once). SQLite answers a mode change that meets
    another connection's lock with SQLITE_BUSY at once, without its busy handler: processes
    opening a new file together retry here, within the busy timeout."""
    deadline, pause = time.monotonic() + BUSY_TIMEOUT_S, 0.005
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] not in ("wal", "memory"):
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _sqlite_on_begin(conn: Connection) -> None:
    mode = "DEFERRED" if conn.get_execution_options().get(_READ_ONLY) else "IMMEDIATE"
    conn.exec_driver_sql(f"BEGIN {mode}")


# -- schema -------------------------------------------------------------------------------------
def create_schema(engine: Engine, now: datetime) -> None:
    """Create the tables if missing and record the schema version; safe to run concurrently."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        metadata.create_all(conn, checkfirst=True)
        found = conn.execute(select(schema_info.c.version).where(schema_info.c.id == 1)).first()
        if found is None:
            conn.execute(schema_info.insert().values(id=1, version=SCHEMA_VERSION, created_at=now))
        elif found.version > SCHEMA_VERSION:
            raise StoreError(
                f"the prediction log at {mask_url(engine.url)} has schema version "
                f"{found.version}, newer than this modelport understands ({SCHEMA_VERSION}); "
                "upgrade modelport"
            )


# -- failures -----------------------------------------------------------------------------------
def translate(exc: DBAPIError, url: URL, action: str) -> ModelportError:
    """The modelport error for a database failure; no SQL text or parameter values in it."""
    shown = mask_url(url)
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        lines = str(exc.orig).strip().splitlines()
        reason = lines[0][:300] if lines else type(exc.orig).__name__
        return StoreUnavailableError(
            f"cannot use the prediction log database at {shown} while {action}: {reason}; "
            "check that the database is reachable and writable (and created with "
            "`create()`)"
        )
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "sqlite_errorname", None)
    detail = f"{type(exc.orig).__name__}" + (f" {state}" if state else "")
    return StoreError(
        f"the prediction log database at {shown} failed while {action} ({detail}); check that "
        "it was created by this modelport version"
    )
