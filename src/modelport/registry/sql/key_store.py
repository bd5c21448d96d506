"""The API-key part of ``SqlMetadataStore`` (a mixin: it runs its work through the store's
``_read``/``_write`` and reads the store's clock).

A key's row holds the SHA-256 digest of its token, never the token (``core.auth``). Creating
and revoking a key are each one transaction with their ``keys.create`` / ``keys.revoke`` audit
event, whose details name the key and its scopes and never its digest. Names are unique among
all keys, revoked ones included, so the audit trail names one key by one name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC
from typing import TypeVar

from sqlalchemy import Connection, RowMapping, insert, or_, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from modelport.core.auth import ApiKeyRecord, parse_scopes, validate_key_id
from modelport.core.clock import Clock
from modelport.core.errors import ApiKeyNotFoundError, ConflictError, InvalidInputError
from modelport.core.names import validate_name
from modelport.registry.sql.mapping import validate_actor
from modelport.registry.sql.tables import api_keys
from modelport.registry.sql.writes import add_audit

__all__ = ["KeyStoreMethods"]

T = TypeVar("T")
_DIGEST_CHARS = frozenset("0123456789abcdef")


def _record(row: RowMapping) -> ApiKeyRecord:
    revoked = row["revoked_at"]
    return ApiKeyRecord(
        id=row["key_id"],
        name=row["name"],
        scopes=tuple(row["scopes"]),
        created_at=row["created_at"].astimezone(UTC),
        created_by=row["created_by"],
        revoked_at=None if revoked is None else revoked.astimezone(UTC),
        revoked_by=row["revoked_by"],
    )


def _check_digest(value: object) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _DIGEST_CHARS:
        raise InvalidInputError("a key digest is 64 lower-case hex characters (SHA-256)")
    return value


class KeyStoreMethods:
    """API keys: digests, scopes and who made or revoked them."""

    _clock: Clock

    def _read(self, action: str, work: Callable[[Connection], T]) -> T:  # pragma: no cover
        raise NotImplementedError

    def _write(self, action: str, work: Callable[[Connection], T]) -> T:  # pragma: no cover
        raise NotImplementedError

    def add_api_key(
        self, key_id: str, name: str, key_digest: str, scopes: Sequence[str], actor: str
    ) -> ApiKeyRecord:
        """Record a key by its digest; ``ConflictError`` if its id or name is taken."""
        validate_key_id(key_id)
        validate_name(name, "key name")
        _check_digest(key_digest)
        checked = parse_scopes(scopes)
        validate_actor(actor)
        clock = self._clock

        def work(conn: Connection) -> ApiKeyRecord:
            c = api_keys.c
            taken = conn.execute(
                select(c.key_id).where(or_(c.key_id == key_id, c.name == name))
            ).first()
            if taken is not None:
                raise ConflictError(f"an API key named {name!r} (or with its id) exists already")
            now = clock.now()
            values = {
                "key_id": key_id,
                "name": name,
                "digest": key_digest,
                "scopes": list(checked),
                "created_at": now,
                "created_by": actor,
            }
            try:
                conn.execute(insert(api_keys).values(**values))
            except SqlIntegrityError as exc:  # a concurrent create took the name meanwhile
                raise ConflictError(f"an API key named {name!r} exists already") from exc
            details = {"id": key_id, "scopes": list(checked)}
            add_audit(conn, now, actor, "keys.create", "api_key", name, None, details)
            return ApiKeyRecord(key_id, name, checked, now.astimezone(UTC), actor)

        return self._write(f"recording API key {name!r}", work)

    def list_api_keys(self, *, include_revoked: bool = False) -> list[ApiKeyRecord]:
        """Keys by creation time (revoked ones only with ``include_revoked``)."""

        def work(conn: Connection) -> list[ApiKeyRecord]:
            query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.name)
            if not include_revoked:
                query = query.where(api_keys.c.revoked_at.is_(None))
            return [_record(row) for row in conn.execute(query).mappings()]

        return self._read("listing API keys", work)

    def api_key_digest(self, key_id: str) -> tuple[ApiKeyRecord, str] | None:
        """The key with this id and its stored digest (to check a token), else None."""
        validate_key_id(key_id)

        def work(conn: Connection) -> tuple[ApiKeyRecord, str] | None:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings()
            found = row.first()
            return None if found is None else (_record(found), str(found["digest"]))

        return self._read("reading an API key", work)

    def revoke_api_key(self, id_or_name: str, actor: str) -> ApiKeyRecord:
        """Revoke the key with this id or name, once: revoking a revoked key is a
        ``ConflictError``, an unknown one ``ApiKeyNotFoundError``."""
        validate_name(id_or_name, "key id or name")
        validate_actor(actor)
        clock = self._clock

        def work(conn: Connection) -> ApiKeyRecord:
            c = api_keys.c
            query = (
                select(api_keys)
                .where(or_(c.key_id == id_or_name, c.name == id_or_name))
                .with_for_update()
            )
            row = conn.execute(query).mappings().first()
            if row is None:
                raise ApiKeyNotFoundError(
                    f"no API key has the id or name {id_or_name!r}; `modelport keys list` "
                    "shows them"
                )
            key = _record(row)
            if not key.active:
                raise ConflictError(f"API key {key.name!r} ({key.id}) is revoked already")
            now = clock.now()
            conn.execute(
                update(api_keys)
                .where(c.key_id == key.id, c.revoked_at.is_(None))
                .values(revoked_at=now, revoked_by=actor)
            )
            add_audit(conn, now, actor, "keys.revoke", "api_key", key.name, None, {"id": key.id})
            return ApiKeyRecord(
                key.id,
                key.name,
                key.scopes,
                key.created_at,
                key.created_by,
                now.astimezone(UTC),
                actor,
            )

        return self._write(f"revoking API key {id_or_name!r}", work)
