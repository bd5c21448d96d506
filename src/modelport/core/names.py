"""Validation of every user-given name: models, aliases, datasets, tags, metric keys.

Names are checked once, here, against strict ASCII patterns, so nothing downstream ever sees a
``..``, a separator, a NUL byte, an encoded variant or a unicode look-alike.
"""

from __future__ import annotations

import re

from modelport.core.errors import InvalidNameError

__all__ = ["validate_alias", "validate_key", "validate_name"]

MAX_NAME = 100
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]*")


def _check(kind: str, value: object, pattern: re.Pattern[str], hint: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidNameError(f"{kind} must be a non-empty string; {hint}")
    if len(value) > limit:
        raise InvalidNameError(f"{kind} is longer than {limit} characters; use a shorter one")
    if not pattern.fullmatch(value) or ".." in value:
        raise InvalidNameError(f"{kind} {_show(value)} is not allowed; {hint}")
    return value


def _show(value: str) -> str:
    """A safe, short rendering of a rejected value (ASCII only, truncated)."""
    shown = value[:40].encode("ascii", "backslashreplace").decode("ascii")
    return repr(shown + ("..." if len(value) > 40 else ""))


def validate_name(value: object, kind: str = "model name") -> str:
    """Model and dataset names: letters, digits, ``_ . -``; starts with a letter or digit."""
    return _check(
        kind,
        value,
        _NAME,
        "use letters, digits, '_', '.' and '-', starting with a letter or digit (no '..')",
        MAX_NAME,
    )


def validate_alias(value: object) -> str:
    """Alias names (``champion``, ``prod-eu``): letters, digits, ``_ -``; starts with a letter."""
    return _check(
        "alias",
        value,
        _ALIAS,
        "use letters, digits, '_' and '-', starting with a letter",
        64,
    )


def validate_key(value: object, kind: str = "key") -> str:
    """Tag, metric and param keys."""
    return _check(
        kind,
        value,
        _KEY,
        "use letters, digits and '_ . : / -'",
        250,
    )
