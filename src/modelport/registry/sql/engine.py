"""Engines for the metadata database: SQLite (embedded default) and PostgreSQL (team mode).

SQLite runs in WAL mode with a busy timeout and foreign keys on. pysqlite's own transaction
handling is switched off and every write transaction starts with ``BEGIN IMMEDIATE``, so it takes
the database write lock up front: concurrent processes queue on the lock instead of deadlocking
when two readers try to upgrade to writers. Read-only work (``read_only(engine)``) starts with a
plain ``BEGIN`` and never waits for writers.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from modelport.core.errors import InvalidInputError, MissingExtraError

__all__ = ["BUSY_TIMEOUT_S", "make_engine", "mask_url", "read_only", "sqlite_path"]

BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10
_READ_ONLY = "modelport_read_only"


def mask_url(url: str | URL) -> str:
    """``url`` with its password replaced by ``***``, safe for messages and logs."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)


def sqlite_path(url: str | URL) -> str | None:
    """The database file of a SQLite URL; None for other backends and in-memory databases."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return database


def read_only(engine: Engine) -> Engine:
    """A view of ``engine`` for read-only transactions (a deferred ``BEGIN`` on SQLite)."""
    return engine.execution_options(**{_READ_ONLY: True})


def make_engine(url: str) -> Engine:
    """An engine for ``sqlite:///path`` or ``postgresql+psycopg://...``; no connection is made.

    Raises ``InvalidInputError`` for a URL that does not parse or names another backend, and
    ``MissingExtraError`` when the PostgreSQL driver is not installed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInputError(
            "the registry URI is not a database URL; use sqlite:///path/to/registry.db or "
            "postgresql+psycopg://user:password@host:5432/db"
        ) from exc
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite" and driver == "pysqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql" and (driver == "psycopg" or "+" not in parsed.drivername):
        return _postgres_engine(parsed.set(drivername="postgresql+psycopg"))
    raise InvalidInputError(
        f"registry URI {mask_url(parsed)} uses an unsupported database driver "
        f"{parsed.drivername!r}; use sqlite:///path or postgresql+psycopg://host/db"
    )


def _sqlite_engine(url: URL) -> Engine:
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
    if sqlite_path(url) is None:
        # One shared connection: an in-memory database is private to its connection.
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"]["check_same_thread"] = False
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_on_begin) instead of pysqlite's guesses.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL (persistent, so once). SQLite answers a journal-mode change that
    meets another connection's lock with SQLITE_BUSY at once, without its busy handler, so
    processes opening a new registry together retry here within the busy timeout. (The
    monitoring store has the same guard for its own file.)"""
    deadline, pause = time.monotonic() + BUSY_TIMEOUT_S, 0.005
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] not in ("wal", "memory"):
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            name = getattr(exc, "sqlite_errorname", "")
            if not name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _sqlite_on_begin(conn: Connection) -> None:
    mode = "DEFERRED" if conn.get_execution_options().get(_READ_ONLY) else "IMMEDIATE"
    conn.exec_driver_sql(f"BEGIN {mode}")


def _postgres_engine(url: URL) -> Engine:
    if importlib.util.find_spec("psycopg") is None:
        raise MissingExtraError("psycopg", "postgres")
    try:
        return create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "modelport"},
        )
    except NoSuchModuleError as exc:  # pragma: no cover - guarded by find_spec above
        raise MissingExtraError("psycopg", "postgres") from exc
