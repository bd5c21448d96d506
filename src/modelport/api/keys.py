"""API keys over the registry: made (the token is returned once), listed, revoked, checked.

``check_key`` is what a server asks for every authenticated request: the key's record when the
token is a well-formed, known, unrevoked key whose digest matches, else ``None``. It never says
which of those failed, so a caller can only learn "valid" or "not valid".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from modelport.api.registry import Registry
from modelport.core.auth import ApiKeyRecord, key_id_of, matches, new_key, parse_scopes
from modelport.core.names import validate_name

__all__ = ["check_key", "create_key", "list_keys", "revoke_key"]


def create_key(
    registry: Registry,
    scopes: Iterable[str],
    name: str | None = None,
    *,
    random_bytes: Callable[[int], bytes] | None = None,
) -> tuple[ApiKeyRecord, str]:
    """A new key with ``scopes``; returns its record and its token, which is not stored and
    cannot be shown again. ``name`` defaults to ``key-<id>``."""
    checked = parse_scopes(scopes)
    made = new_key() if random_bytes is None else new_key(random_bytes)
    label = validate_name(name, "key name") if name is not None else f"key-{made.id}"
    record = registry.service.add_api_key(made.id, label, made.digest, checked)
    return record, made.token


def list_keys(registry: Registry, *, include_revoked: bool = False) -> list[ApiKeyRecord]:
    return registry.service.list_api_keys(include_revoked=include_revoked)


def revoke_key(registry: Registry, id_or_name: str) -> ApiKeyRecord:
    return registry.service.revoke_api_key(id_or_name)


def check_key(registry: Registry, token: str) -> ApiKeyRecord | None:
    """The active key ``token`` is, else None (malformed, unknown, revoked or wrong secret)."""
    key_id = key_id_of(token)
    if key_id is None:
        return None
    found = registry.service.api_key_digest(key_id)
    if found is None:
        return None
    record, stored = found
    if not record.active or not matches(token, stored):
        return None
    return record
