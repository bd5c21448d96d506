"""Database failures translated into modelport errors.

Driver exceptions never reach callers: connection problems become ``StoreUnavailableError`` with
the URL (password masked) and what to check; other database errors become ``StoreError``. Only
the driver's first message line is kept, so no SQL text leaks into messages.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from modelport.core.errors import ConflictError, ModelportError, StoreError, StoreUnavailableError
from modelport.registry.sql.engine import BUSY_TIMEOUT_S

__all__ = ["check_hint", "driver_reason", "is_transient", "is_unique_violation", "translate"]

# PostgreSQL SQLSTATEs worth retrying: serialization_failure, deadlock_detected.
_PG_RETRYABLE = {"40001", "40P01"}
_PG_UNIQUE = "23505"
_SQLITE_UNIQUE = {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}


def is_unique_violation(exc: DBAPIError) -> bool:
    if not isinstance(exc, IntegrityError):
        return False
    orig = exc.orig
    return (
        getattr(orig, "sqlstate", None) == _PG_UNIQUE
        or getattr(orig, "sqlite_errorname", None) in _SQLITE_UNIQUE
    )


def is_transient(exc: DBAPIError) -> bool:
    """A failure that a fresh attempt of the same transaction may not meet again."""
    return is_unique_violation(exc) or getattr(exc.orig, "sqlstate", None) in _PG_RETRYABLE


def driver_reason(exc: BaseException) -> str:
    """The first line of the driver's message: names the failure without echoing SQL."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(orig).strip().splitlines()
    return text[0][:300] if text else type(orig).__name__


def check_hint(url: URL) -> str:
    """What to check when the database at ``url`` cannot be used."""
    if url.get_backend_name() == "sqlite":
        where = url.database or ":memory:"
        return (
            f"check that the directory of {where!r} exists and is writable and that the file "
            "is a modelport SQLite database"
        )
    host = f"{url.host or 'localhost'}:{url.port or 5432}"
    return (
        f"check that the PostgreSQL server at {host} is running and reachable, that database "
        f"{url.database!r} exists and that the user name and password are right"
    )


def translate(exc: DBAPIError, url: str | URL, action: str) -> ModelportError:
    """The modelport error for a database failure while doing ``action``."""
    parsed = make_url(url) if isinstance(url, str) else url
    shown = parsed.render_as_string(hide_password=True)
    reason = driver_reason(exc)
    if is_transient(exc):
        return ConflictError(
            f"{action} collided with concurrent writers to {shown} several times ({reason}); "
            "try again"
        )
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        hint = check_hint(parsed)
        if getattr(exc.orig, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            hint = (
                f"another process held the database's write lock for over {BUSY_TIMEOUT_S:.0f} s; "
                "retry, and look for a stuck modelport process using the same file"
            )
        return StoreUnavailableError(
            f"cannot use the metadata database at {shown} while {action}: {reason}; {hint}"
        )
    return StoreError(
        f"the metadata database at {shown} failed while {action}: {reason}; check that it "
        "was created by modelport and migrated by this version"
    )
