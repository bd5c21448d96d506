"""Canonical relative paths for files inside an artifact or a bundle.

A ``SafePath`` is validated once: POSIX separators only, no empty / ``.`` / ``..`` components, no
absolute or drive paths, no backslashes, no NUL or control bytes, no percent-encoding, ASCII only,
bounded length and depth. Code that joins a ``SafePath`` onto a root can therefore never leave it;
symlinks are handled by the adapters that touch the filesystem (they refuse to follow them).
"""

from __future__ import annotations

import re

from modelport.core.errors import UnsafePathError

__all__ = ["MAX_DEPTH", "MAX_PATH", "safe_relpath"]

MAX_PATH = 1024
MAX_DEPTH = 32
_COMPONENT = re.compile(r"[A-Za-z0-9_.,+=@ -]+")


def safe_relpath(value: object) -> str:
    """Return ``value`` as a canonical relative POSIX path, or raise ``UnsafePathError``."""
    if not isinstance(value, str) or not value:
        raise UnsafePathError("artifact path must be a non-empty relative path")
    if len(value) > MAX_PATH:
        raise UnsafePathError(f"artifact path is longer than {MAX_PATH} characters")
    shown = value[:60].encode("ascii", "backslashreplace").decode("ascii")
    if "\\" in value or "%" in value or "\x00" in value or not value.isascii():
        raise UnsafePathError(
            f"artifact path {shown!r} contains a backslash, '%', NUL or non-ASCII character"
        )
    if value.startswith("/") or re.match(r"[A-Za-z]:", value):
        raise UnsafePathError(f"artifact path {shown!r} is absolute; use a relative path")
    parts = value.split("/")
    if len(parts) > MAX_DEPTH:
        raise UnsafePathError(f"artifact path {shown!r} is deeper than {MAX_DEPTH} levels")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePathError(f"artifact path {shown!r} has an empty, '.' or '..' component")
        if len(part) > 255 or not _COMPONENT.fullmatch(part) or part != part.strip():
            raise UnsafePathError(
                f"artifact path {shown!r} has a component with characters outside "
                "letters, digits and '_ . , + = @ -'"
            )
    return value
