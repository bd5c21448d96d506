"""API keys and scopes: what a key may do, how it is written, and how it is checked.

A key is shown once, as ``mpk_<id>_<secret>``: ``id`` (12 hex characters) is public and finds
the key's record; ``secret`` (43 URL-safe characters, 256 random bits) is never stored. The
registry keeps only ``digest(token)`` (SHA-256, hex), which suffices for a secret of that
entropy: nobody can search 2^256 secrets, so no slow hash is needed, and checking a key costs
one hash and one constant-time compare.

Scopes name what a key may do: ``predict:<endpoint>`` (or ``predict:*``), ``read``, ``deploy``,
``approve`` and ``admin`` (which allows everything). ``allows`` is the one place that decides.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from modelport.core.errors import InvalidInputError, InvalidNameError
from modelport.core.names import validate_name

__all__ = [
    "FIXED_SCOPES",
    "KEY_PREFIX",
    "ApiKeyRecord",
    "NewApiKey",
    "allows",
    "digest",
    "key_id_of",
    "matches",
    "new_key",
    "parse_scopes",
    "validate_key_id",
]

KEY_PREFIX = "mpk_"
FIXED_SCOPES = ("admin", "approve", "deploy", "read")
PREDICT = "predict:"
MAX_SCOPES = 64
_ID = re.compile(r"[0-9a-f]{12}")
_TOKEN = re.compile(r"mpk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_HINT = "use predict:<endpoint>, predict:*, read, deploy, approve or admin"


def parse_scopes(values: Iterable[object]) -> tuple[str, ...]:
    """The scopes of a key, checked, without repeats, sorted; at least one."""
    found: set[str] = set()
    for value in values:
        if not isinstance(value, str) or not value:
            raise InvalidInputError(f"a scope must be a non-empty string; {_HINT}")
        if value in FIXED_SCOPES or value == f"{PREDICT}*":
            found.add(value)
            continue
        if not value.startswith(PREDICT):
            shown = value[:40].encode("ascii", "backslashreplace").decode("ascii")
            raise InvalidInputError(f"scope {shown!r} is not known; {_HINT}")
        try:
            validate_name(value[len(PREDICT) :], "the endpoint of a predict scope")
        except InvalidNameError as exc:
            raise InvalidInputError(f"{exc}; {_HINT}") from exc
        found.add(value)
    if not found:
        raise InvalidInputError(f"a key needs at least one scope; {_HINT}")
    if len(found) > MAX_SCOPES:
        raise InvalidInputError(
            f"a key may hold at most {MAX_SCOPES} scopes (got {len(found)}); use predict:* "
            "for every endpoint"
        )
    return tuple(sorted(found))


def allows(scopes: Iterable[str], needed: str) -> bool:
    """Whether ``scopes`` grant ``needed`` (``read``, ``predict:fraud``...): exactly, by
    ``predict:*`` for any predict scope, or by ``admin`` for everything."""
    held = set(scopes)
    if "admin" in held or needed in held:
        return True
    return needed.startswith(PREDICT) and f"{PREDICT}*" in held


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A stored key, without its digest: what ``keys list`` shows and a request runs as."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
            "revoked_by": self.revoked_by,
        }


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just made: ``token`` is shown once and then forgotten; ``digest`` is stored."""

    id: str
    token: str
    digest: str


def new_key(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> NewApiKey:
    """A fresh key from ``random_bytes`` (the OS's CSPRNG unless a test injects one)."""
    key_id = random_bytes(6).hex()
    secret = base64.urlsafe_b64encode(random_bytes(32)).decode("ascii").rstrip("=")
    token = f"{KEY_PREFIX}{key_id}_{secret}"
    return NewApiKey(key_id, token, digest(token))


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def key_id_of(token: str) -> str | None:
    """The id of a well-formed token, else None (nothing about a malformed one is kept)."""
    found = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    return None if found is None else found.group(1)


def matches(token: str, stored_digest: str) -> bool:
    """Whether ``token`` is the key whose digest was stored (constant time)."""
    return hmac.compare_digest(digest(token), stored_digest)


def validate_key_id(value: object) -> str:
    """A key's public id: 12 lower-case hex characters."""
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise InvalidInputError(
            "a key id is 12 lower-case hex characters (the part after mpk_ in the key, "
            "as `modelport keys list` shows it)"
        )
    return value
