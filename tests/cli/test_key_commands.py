"""``modelport keys``: the key is printed once, listings never show a secret, revocation."""

from __future__ import annotations

import re

import pytest
from tests.cli.conftest import Cli

from modelport.api.keys import check_key
from modelport.api.registry import Registry
from modelport.core.settings import Settings

TOKEN = re.compile(r"^mpk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$", re.M)


def test_create_prints_the_key_once_and_list_never_shows_it(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELPORT_ACTOR", "ann")
    out = cli("keys", "create", "--scope", "predict:fraud", "--scope", "read", "--name", "ci")
    (token,) = TOKEN.findall(out)
    lines = out.splitlines()
    assert re.fullmatch(r"ci: created key [0-9a-f]{12} with predict:fraud, read", lines[0])
    assert lines[-1].startswith("this is the only time the key is shown")
    made = cli.json("keys", "create", "--scope", "deploy")
    assert TOKEN.fullmatch(made["key"])
    assert made["scopes"] == ["deploy"]

    listed = cli("keys", "list")
    header, first, second = listed.splitlines()
    assert header.split() == ["ID", "NAME", "SCOPES", "CREATED", "BY", "REVOKED"]
    assert first.split()[1:4] == ["ci", "predict:fraud", "read"]
    assert second.split()[1] == made["name"]
    assert token not in listed
    assert made["key"] not in listed
    as_json = cli.json("keys", "list")
    assert [k["name"] for k in as_json] == ["ci", made["name"]]
    assert all("key" not in k and "digest" not in k for k in as_json)
    with Registry.open(settings=Settings(home=cli.home)) as registry:
        checked = check_key(registry, token)
        assert checked is not None
        assert (checked.name, checked.created_by) == ("ci", "ann")


def test_revoke_by_name_or_id_and_the_errors_say_what_to_do(cli: Cli) -> None:
    made = cli.json("keys", "create", "--scope", "read", "--name", "ci")
    assert cli("keys", "revoke", made["id"]) == f"ci: key {made['id']} revoked\n"
    assert cli("keys", "list") == (
        "no API keys; make one with `modelport keys create --scope read`\n"
    )
    (revoked,) = cli.json("keys", "list", "--all")
    assert revoked["revoked_at"] is not None
    err = cli("keys", "revoke", "ci", code=1)
    assert err == ""  # the message goes to stderr
    assert "no API key has the id or name 'nobody'" in cli("keys", "revoke", "nobody", code=3)
    refused = cli("keys", "create", "--scope", "predict:../x", code=2)
    assert "use predict:<endpoint>" in refused
    missing = cli("keys", "create", code=2)
    assert "--scope" in missing
    with Registry.open(settings=Settings(home=cli.home)) as registry:
        assert check_key(registry, made["key"]) is None
