"""API keys in the SQL store, on SQLite and on the real PostgreSQL: digests only, unique names,
revocation once, audit events that never hold a digest, racing creators."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from tests.registry.sql import together

from modelport.core.auth import new_key
from modelport.core.clock import FakeClock
from modelport.core.errors import (
    ApiKeyNotFoundError,
    ConflictError,
    InvalidInputError,
    InvalidNameError,
)
from modelport.registry.sql.store import SqlMetadataStore
from modelport.registry.sql.tables import api_keys


def test_a_key_is_stored_by_digest_listed_and_revoked_once(
    store: SqlMetadataStore, engine: Engine, clock: FakeClock
) -> None:
    made = new_key()
    record = store.add_api_key(made.id, "ci", made.digest, ["read", "predict:fraud"], "ann")
    assert (record.id, record.name, record.scopes) == (made.id, "ci", ("predict:fraud", "read"))
    assert (record.created_by, record.active) == ("ann", True)
    with engine.connect() as conn:
        (row,) = conn.execute(select(api_keys)).mappings().all()
    assert row["digest"] == made.digest
    assert made.token not in {str(v) for v in row.values()}  # the token is nowhere in the row
    found = store.api_key_digest(made.id)
    assert found == (record, made.digest)
    assert store.api_key_digest("0123456789ab") is None

    clock.advance(60)
    other = new_key()
    store.add_api_key(other.id, "deployer", other.digest, ["deploy"], "ann")
    assert [k.name for k in store.list_api_keys()] == ["ci", "deployer"]

    clock.advance(60)
    revoked = store.revoke_api_key("ci", "bob")
    assert (revoked.revoked_by, revoked.revoked_at) == ("bob", clock.now())
    assert [k.name for k in store.list_api_keys()] == ["deployer"]
    assert [k.name for k in store.list_api_keys(include_revoked=True)] == ["ci", "deployer"]
    with pytest.raises(ConflictError, match="revoked already"):
        store.revoke_api_key(made.id, "bob")  # by id this time
    with pytest.raises(ApiKeyNotFoundError, match="keys list"):
        store.revoke_api_key("nobody", "bob")
    still = store.api_key_digest(made.id)
    assert still is not None
    assert not still[0].active

    events = store.query_audit()
    assert [(e.action, e.object_name, e.actor) for e in events] == [
        ("keys.create", "ci", "ann"),
        ("keys.create", "deployer", "ann"),
        ("keys.revoke", "ci", "bob"),
    ]
    assert events[0].details == {"id": made.id, "scopes": ["predict:fraud", "read"]}
    for event in events:
        assert made.digest not in str(event.details)
        assert other.digest not in str(event.details)


def test_names_and_ids_are_unique_and_bad_values_are_refused(store: SqlMetadataStore) -> None:
    made = new_key()
    store.add_api_key(made.id, "ci", made.digest, ["read"], "ann")
    again = new_key()
    with pytest.raises(ConflictError, match="'ci'"):
        store.add_api_key(again.id, "ci", again.digest, ["read"], "ann")
    with pytest.raises(ConflictError):
        store.add_api_key(made.id, "other", again.digest, ["read"], "ann")
    store.revoke_api_key("ci", "ann")
    with pytest.raises(ConflictError):  # a revoked key's name stays its own
        store.add_api_key(again.id, "ci", again.digest, ["read"], "ann")
    with pytest.raises(InvalidNameError):
        store.add_api_key(again.id, "../ci", again.digest, ["read"], "ann")
    with pytest.raises(InvalidInputError, match="digest"):
        store.add_api_key(again.id, "x", made.token, ["read"], "ann")
    with pytest.raises(InvalidInputError, match="12 lower-case hex"):
        store.add_api_key("ABC", "x", again.digest, ["read"], "ann")
    with pytest.raises(InvalidInputError, match="scope"):
        store.add_api_key(again.id, "x", again.digest, ["root"], "ann")
    with pytest.raises(InvalidNameError):
        store.revoke_api_key("ci/../x", "ann")
    assert [k.name for k in store.list_api_keys(include_revoked=True)] == ["ci"]


def test_of_creators_racing_for_one_name_exactly_one_wins(store: SqlMetadataStore) -> None:
    keys = [new_key() for _ in range(4)]
    results = together.at_once(
        lambda i: store.add_api_key(keys[i].id, "shared", keys[i].digest, ["read"], "ann"), 4
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    assert len(won) == 1, results
    assert all(isinstance(r, ConflictError) for r in results if r not in won)
    (stored,) = store.list_api_keys()
    assert stored == won[0]
    assert len(store.query_audit(action="keys.create")) == 1


@pytest.fixture
def clock() -> FakeClock:
    clock = FakeClock()
    clock.advance(timedelta(days=1).total_seconds())
    return clock
