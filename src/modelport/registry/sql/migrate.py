"""Schema migrations, run programmatically: no ``alembic.ini`` on disk.

``upgrade(engine)`` is safe when several processes open a fresh database at once: on PostgreSQL the
migration transaction holds an advisory lock; on SQLite an exclusive ``fcntl`` lock on a file next
to the database covers the first connection (which switches the file to WAL) and the migration.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from modelport.core.errors import StoreError, StoreUnavailableError
from modelport.registry.sql.engine import mask_url, read_only, sqlite_path
from modelport.registry.sql.failures import check_hint, translate
from modelport.registry.sql.tables import VERSION_TABLE

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current_revision", "head_revision", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key: b"modelpmg" as a signed 64-bit integer.
_PG_LOCK_KEY = int.from_bytes(b"modelpmg", "big", signed=True)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the migrations shipped in this package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest schema revision this modelport knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise StoreError("modelport ships no schema migrations; reinstall modelport")
    return str(head)


def current_revision(connection: Connection) -> str | None:
    """The schema revision of the database; None when it has never been migrated."""
    ctx = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    revision = ctx.get_current_revision()
    return None if revision is None else str(revision)


def upgrade(engine: Engine) -> None:
    """Bring the database behind ``engine`` to the newest schema. Idempotent."""
    head = head_revision()
    shown = mask_url(engine.url)
    try:
        with _sqlite_file_lock(engine):
            with read_only(engine).connect() as conn:
                if current_revision(conn) == head:
                    return
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                if current_revision(conn) != head:
                    command.upgrade(alembic_config(conn), "head")
    except DBAPIError as exc:
        raise translate(exc, engine.url, "migrating the schema") from exc
    except CommandError as exc:
        raise StoreError(
            f"cannot migrate the metadata database at {shown}: {exc}; if a newer modelport "
            "created it, upgrade modelport"
        ) from exc


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    path = sqlite_path(engine.url)
    if path is None:
        yield
        return
    lock_path = f"{path}.migrate-lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreUnavailableError(
            f"cannot use the metadata database at {mask_url(engine.url)}: cannot create "
            f"{lock_path!r} ({exc.strerror}); {check_hint(engine.url)}"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
