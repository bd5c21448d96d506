"""S3 naming rules, checked before any client exists: bucket names, key prefixes, endpoints."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from modelport.core.errors import InvalidInputError, UnsafePathError
from modelport.core.paths import safe_relpath

__all__ = ["check_endpoint", "clean_prefix", "validate_bucket"]

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_BAD_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BAD_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def validate_bucket(name: object) -> str:
    """``name`` if it follows the S3 bucket naming rules, else ``InvalidInputError``."""
    if not isinstance(name, str) or not _BUCKET.fullmatch(name):
        shown = repr(name)[:70].encode("ascii", "backslashreplace").decode("ascii")
        raise InvalidInputError(
            f"S3 bucket name {shown} is not valid; use 3-63 lowercase letters, digits, '.' and "
            "'-', starting and ending with a letter or digit"
        )
    bad = (
        ".." in name
        or ".-" in name
        or "-." in name
        or name.startswith(_BAD_PREFIXES)
        or name.endswith(_BAD_SUFFIXES)
        or _is_ip(name)
    )
    if bad:
        raise InvalidInputError(
            f"S3 bucket name {name!r} is not valid: no '..', '.-' or '-.', not an IP address, "
            f"no prefix {', '.join(_BAD_PREFIXES)} and no reserved suffix"
        )
    return name


def _is_ip(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def clean_prefix(prefix: str) -> str:
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    try:
        return safe_relpath(stripped)
    except UnsafePathError as exc:
        raise UnsafePathError(f"S3 key prefix is not allowed: {exc}") from exc


def check_endpoint(endpoint_url: str | None) -> str | None:
    if endpoint_url is None:
        return None
    try:
        parts = urlsplit(endpoint_url)
        hostname = parts.hostname
    except ValueError as exc:
        raise InvalidInputError(f"S3 endpoint URL does not parse: {exc}") from exc
    if parts.scheme not in ("http", "https") or not hostname:
        raise InvalidInputError(
            "S3 endpoint URL must look like http://host:port or https://host "
            f"(got scheme {parts.scheme!r})"
        )
    if parts.username or parts.password:
        raise InvalidInputError(
            "S3 endpoint URL must not contain credentials; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or a profile) instead"
        )
    return endpoint_url
