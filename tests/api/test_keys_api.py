"""API keys through the registry, embedded and in team mode: a token is shown once, checks
as valid only while its key is active and its secret exact, and is written nowhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.api.keys import check_key, create_key, list_keys, revoke_key
from modelport.api.registry import Registry
from modelport.core.errors import InvalidInputError, InvalidNameError


def test_a_token_checks_while_its_key_is_active_and_never_after(registry: Registry) -> None:
    record, token = create_key(registry, ["predict:fraud"], "scorer")
    assert check_key(registry, token) == record
    assert record.name == "scorer"
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert check_key(registry, forged) is None  # right id, wrong secret
    other_record, other = create_key(registry, ["read"])
    assert other_record.name == f"key-{other_record.id}"
    spliced = token[: len("mpk_") + 12] + other[len("mpk_") + 12 :]
    assert check_key(registry, spliced) is None  # one key's id, another's secret
    for junk in ("", "mpk_", "Bearer " + token, token + " ", "mpk_zzzzzzzzzzzz_" + "a" * 43):
        assert check_key(registry, junk) is None
    revoke_key(registry, "scorer")
    assert check_key(registry, token) is None
    assert check_key(registry, other) == other_record
    assert [k.name for k in list_keys(registry)] == [other_record.name]
    actions = [e.action for e in registry.audit()]
    assert actions.count("keys.create") == 2
    assert actions.count("keys.revoke") == 1


def test_bad_scopes_or_names_create_nothing(registry: Registry) -> None:
    with pytest.raises(InvalidInputError, match="use predict:<endpoint>"):
        create_key(registry, ["predict:*", "superuser"])
    with pytest.raises(InvalidNameError):
        create_key(registry, ["read"], "../../etc/passwd")
    assert list_keys(registry, include_revoked=True) == []
    assert [e for e in registry.audit() if e.action.startswith("keys.")] == []


def test_the_token_is_written_nowhere_on_disk(tmp_path: Path) -> None:
    from modelport.core.settings import Settings

    home = tmp_path / "home"
    with Registry.open(settings=Settings(home=home)) as registry:
        record, token = create_key(registry, ["admin"], "root-key")
        assert check_key(registry, token) == record
    secret = token.split("_", 2)[2]
    files = [p for p in home.rglob("*") if p.is_file()]
    assert files  # the registry database (and its journal) are there
    for path in files:
        data = path.read_bytes()
        assert token.encode() not in data, path
        assert secret.encode() not in data, path
