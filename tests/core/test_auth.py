"""API keys and scopes: parsing (hostile values included), what a scope allows, key tokens."""

from __future__ import annotations

import itertools

import pytest

from modelport.core.auth import (
    FIXED_SCOPES,
    allows,
    digest,
    key_id_of,
    matches,
    new_key,
    parse_scopes,
    validate_key_id,
)
from modelport.core.errors import InvalidInputError


def test_scopes_are_checked_deduplicated_and_sorted() -> None:
    assert parse_scopes(["read", "predict:fraud", "read", "predict:*"]) == (
        "predict:*",
        "predict:fraud",
        "read",
    )
    assert parse_scopes(FIXED_SCOPES) == ("admin", "approve", "deploy", "read")


@pytest.mark.parametrize(
    "scope",
    [
        "",
        "write",
        "READ",
        "predict:",
        "predict:../fraud",
        "predict:a/b",
        "predict:%2e%2e%2f",
        "predict:fr\x00aud",
        "predict:fr\u0430ud",  # a Cyrillic a (U+0430)
        "predict:" + "x" * 101,
        "predict:fraud;admin",
        " read",
    ],
)
def test_a_scope_that_is_not_known_or_safe_is_refused_with_what_to_write(scope: str) -> None:
    with pytest.raises(InvalidInputError, match="use predict:<endpoint>") as info:
        parse_scopes([scope])
    assert "\x00" not in str(info.value)


def test_a_key_needs_a_scope_and_not_too_many() -> None:
    with pytest.raises(InvalidInputError, match="at least one scope"):
        parse_scopes([])
    with pytest.raises(InvalidInputError, match="at most 64"):
        parse_scopes([f"predict:ep-{i}" for i in range(65)])
    with pytest.raises(InvalidInputError, match="non-empty string"):
        parse_scopes([3])


@pytest.mark.parametrize(
    ("scopes", "needed", "allowed"),
    [
        (("read",), "read", True),
        (("read",), "deploy", False),
        (("predict:fraud",), "predict:fraud", True),
        (("predict:fraud",), "predict:churn", False),  # a key for endpoint A calling B
        (("predict:*",), "predict:churn", True),
        (("predict:*",), "read", False),
        (("admin",), "approve", True),
        (("admin",), "predict:fraud", True),
        ((), "read", False),
    ],
)
def test_what_a_scope_allows(scopes: tuple[str, ...], needed: str, allowed: bool) -> None:
    assert allows(scopes, needed) is allowed


def test_a_token_names_its_key_and_only_its_digest_checks_it() -> None:
    counter = itertools.count()

    def random_bytes(n: int) -> bytes:
        return bytes((next(counter) % 256) for _ in range(n))

    made = new_key(random_bytes)
    assert made.id == "000102030405"
    assert made.token.startswith(f"mpk_{made.id}_")
    assert len(made.token) == 4 + 12 + 1 + 43
    assert made.digest == digest(made.token)
    assert made.token not in made.digest
    assert key_id_of(made.token) == made.id
    assert matches(made.token, made.digest)
    assert not matches(made.token[:-1] + ("A" if made.token[-1] != "A" else "B"), made.digest)
    assert new_key().id != new_key().id  # the OS's randomness by default


@pytest.mark.parametrize(
    "token",
    [
        "",
        "mpk_",
        "mpk_000102030405",
        "mpk_000102030405_short",
        "mpk_00010203040G_" + "a" * 43,
        "mpk_000102030405_" + "a" * 44,
        "MPK_000102030405_" + "a" * 43,
        "Bearer mpk_000102030405_" + "a" * 43,
        "mpk_000102030405_" + "a" * 42 + "\n",
    ],
)
def test_a_malformed_token_has_no_key_id(token: str) -> None:
    assert key_id_of(token) is None


def test_key_ids_are_twelve_hex_characters() -> None:
    assert validate_key_id("0123456789ab") == "0123456789ab"
    for bad in ("0123456789AB", "0123456789a", "../../etc", None):
        with pytest.raises(InvalidInputError, match="12 lower-case hex"):
            validate_key_id(bad)
