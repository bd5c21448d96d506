"""Route-table records in the SQL store, on SQLite and PostgreSQL: what a publish returns and
stores, compare-and-swap that leaves no trace when it loses, one audit event per publish,
racing first publishers, refused names and tables, the service's pass-throughs and the 0005
migration over a database that already holds 0004 data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine
from tests.registry.sql import together

from modelport.core.clock import FakeClock
from modelport.core.deployment import parse_spec
from modelport.core.digest import Manifest, ManifestEntry, sha256_bytes
from modelport.core.errors import ConflictError, InvalidInputError, InvalidNameError
from modelport.core.model import NewModelVersion
from modelport.core.rollouts import RouteRecord
from modelport.registry.artifacts.local import LocalArtifactStore
from modelport.registry.service import RegistryService
from modelport.registry.sql import SqlMetadataStore, upgrade
from modelport.registry.sql.migrate import alembic_config, current_revision, head_revision
from modelport.registry.sql.tables import VERSION_TABLE, metadata

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
TABLE: dict[str, Any] = {
    "routes": [["3", 66.6], ["4", 33.4]],
    "shadow": ["5", 0.25],
    "shadow_timeout_ms": 250.0,
    "sticky": "header:X-User-ID",
    "salt": "s1",
}
SPEC = (
    "endpoint: fraud\nbaseline: fraud@champion\ncandidate: fraud:2\n"
    "strategy: {kind: canary, steps: [10, 100], step_interval: 60s}\n"
)
THREADS = 6


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(AT)


def at_once(work: Callable[[int], Any], n: int = THREADS) -> list[Any]:
    return together.at_once(work, n)


def test_a_publish_returns_what_is_stored(store: SqlMetadataStore, clock: FakeClock) -> None:
    published = store.publish_routes("fraud", TABLE, 0, "ann")
    assert published == RouteRecord("fraud", 1, TABLE, AT, "ann")
    assert store.get_routes("fraud") == published
    assert store.list_routes() == [published]
    assert published.to_dict() == {
        "endpoint": "fraud",
        "generation": 1,
        "table": TABLE,
        "updated_at": AT.isoformat(),
        "updated_by": "ann",
    }

    clock.advance(60)
    second = store.publish_routes("fraud", {**TABLE, "shadow": None}, 1, "bob")
    assert second == store.get_routes("fraud")
    assert (second.generation, second.updated_at, second.updated_by) == (2, clock.now(), "bob")
    assert second.table["shadow"] is None


def test_json_is_normalised_on_the_way_in(store: SqlMetadataStore) -> None:
    published = store.publish_routes(
        "fraud", {"routes": (("3", 100),), "shadow": None, "weight": float("nan")}, 0, "ann"
    )
    expected = {"routes": [["3", 100]], "shadow": None, "weight": None}
    assert published.table == expected
    stored = store.get_routes("fraud")
    assert stored is not None
    assert stored.table == expected


def test_a_lost_compare_and_swap_names_both_generations_and_leaves_no_trace(
    store: SqlMetadataStore,
) -> None:
    with pytest.raises(ConflictError, match=r"endpoint 'fraud' are at generation 0, not 1"):
        store.publish_routes("fraud", TABLE, 1, "ann")
    assert store.get_routes("fraud") is None
    first = store.publish_routes("fraud", TABLE, 0, "ann")
    store.publish_routes("fraud", TABLE, 1, "ann")
    with pytest.raises(ConflictError, match=r"at generation 2, not 1") as caught:
        store.publish_routes("fraud", {"routes": [["9", 100]]}, first.generation, "eve")
    assert "read them again" in caught.value.message
    assert "'9'" not in caught.value.message  # the refused table is not echoed
    stored = store.get_routes("fraud")
    assert stored is not None
    assert (stored.generation, stored.table, stored.updated_by) == (2, TABLE, "ann")
    assert len(store.query_audit(action="routes.publish")) == 2


def test_every_publish_is_one_audit_event_in_its_transaction(store: SqlMetadataStore) -> None:
    store.publish_routes("fraud", TABLE, 0, "ann")
    store.publish_routes("fraud", {**TABLE, "shadow": None}, 1, "controller")
    with pytest.raises(ConflictError):
        store.publish_routes("fraud", TABLE, 1, "eve")
    with pytest.raises(InvalidInputError):
        store.publish_routes("fraud", {"routes": object()}, 2, "eve")

    events = store.query_audit(action="routes.publish")
    assert [(e.actor, e.object_type, e.object_name, e.version) for e in events] == [
        ("ann", "endpoint", "fraud", None),
        ("controller", "endpoint", "fraud", None),
    ]
    assert events[0].at == AT
    assert events[0].details == {"generation": 1, "previous_generation": 0, "table": TABLE}
    assert events[1].details["generation"] == 2
    assert events[1].details["table"]["shadow"] is None
    assert store.query_audit(actor="eve") == []


def test_racing_first_publishers_have_exactly_one_winner(store: SqlMetadataStore) -> None:
    def publish(i: int) -> RouteRecord:
        return store.publish_routes("fraud", {**TABLE, "salt": f"s{i}"}, 0, f"c{i}")

    results = at_once(publish)
    won = [r for r in results if isinstance(r, RouteRecord)]
    lost = [r for r in results if not isinstance(r, RouteRecord)]
    assert len(won) == 1, results
    assert all(isinstance(r, ConflictError) for r in lost), lost
    assert store.get_routes("fraud") == won[0]
    assert len(store.query_audit(action="routes.publish")) == 1


def test_routes_are_listed_by_endpoint_name(store: SqlMetadataStore) -> None:
    assert store.list_routes() == []
    store.publish_routes("b-endpoint", TABLE, 0, "controller")
    store.publish_routes("a-endpoint", TABLE, 0, "controller")
    store.publish_routes("a-endpoint", TABLE, 1, "controller")
    listed = [(r.endpoint, r.generation) for r in store.list_routes()]
    assert listed == [("a-endpoint", 2), ("b-endpoint", 1)]


def test_publishers_of_different_endpoints_do_not_conflict(store: SqlMetadataStore) -> None:
    results = at_once(lambda i: store.publish_routes(f"ep-{i}", TABLE, 0, "controller"))
    assert all(isinstance(r, RouteRecord) for r in results), results
    assert [r.endpoint for r in store.list_routes()] == [f"ep-{i}" for i in range(THREADS)]


@pytest.mark.parametrize("endpoint", ["../etc", "a/b", "", "x" * 300, "bad\x00name", "é"])
def test_bad_endpoint_names_are_refused(store: SqlMetadataStore, endpoint: str) -> None:
    with pytest.raises(InvalidNameError, match="endpoint name"):
        store.publish_routes(endpoint, TABLE, 0, "controller")
    with pytest.raises(InvalidNameError, match="endpoint name"):
        store.get_routes(endpoint)
    assert store.list_routes() == []
    assert store.query_audit() == []


def test_oversized_tables_are_refused_without_echoing_them(store: SqlMetadataStore) -> None:
    with pytest.raises(InvalidInputError, match="at most 65536") as caught:
        store.publish_routes("fraud", {"routes": [["x" * 70_000, 100]]}, 0, "controller")
    assert "xxx" not in caught.value.message
    assert store.list_routes() == []


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda s: s.publish_routes("fraud", TABLE, True, "ann"), InvalidInputError, ">= 0"),
        (lambda s: s.publish_routes("fraud", TABLE, "0", "ann"), InvalidInputError, ">= 0"),
        (lambda s: s.publish_routes("fraud", TABLE, -1, "ann"), InvalidInputError, ">= 0"),
        (lambda s: s.publish_routes("fraud", TABLE, 0, ""), InvalidInputError, "actor"),
        (lambda s: s.publish_routes("fraud", TABLE, 0, "x" * 201), InvalidInputError, "actor"),
        (lambda s: s.publish_routes("fraud", {1: 2}, 0, "ann"), InvalidInputError, "not JSON"),
        (lambda s: s.publish_routes("fraud", None, 0, "ann"), InvalidInputError, "mapping"),
    ],
)
def test_bad_arguments_are_refused_before_any_write(
    store: SqlMetadataStore,
    call: Callable[[SqlMetadataStore], object],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        call(store)
    assert store.list_routes() == []
    assert store.query_audit(action="routes.publish") == []


def test_the_service_publishes_as_its_actor(store: SqlMetadataStore, tmp_path: Path) -> None:
    service = RegistryService(store, LocalArtifactStore(tmp_path / "blobs"), tmp_path, "dora")
    assert service.get_routes("fraud") is None
    published = service.publish_routes("fraud", TABLE, 0)
    assert published.updated_by == "dora"
    assert service.get_routes("fraud") == published
    assert service.list_routes() == [published]
    with pytest.raises(ConflictError):
        service.publish_routes("fraud", TABLE, 0)
    assert [e.actor for e in service.audit(action="routes.publish")] == ["dora"]


# -- migration ----------------------------------------------------------------------------------


def test_upgrade_from_0004_keeps_existing_data_and_builds_the_declared_schema(
    db_url: str, engine: Engine, clock: FakeClock
) -> None:
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0004")
    old = SqlMetadataStore(engine, clock)  # a store on the 0004 schema, as a 0004 modelport had
    entry = ManifestEntry("model.onnx", sha256_bytes(b"m"), 1)
    old.add_version(NewModelVersion(name="fraud", format="onnx", manifest=Manifest.of([entry])))
    deployment = old.record_deployment(parse_spec(SPEC, "deploy.yaml"), "ann")
    rollout = old.start_rollout("fraud", deployment.revision, {"phase": "pending"}, "pending", "c")

    upgrade(engine)
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _parent: name != VERSION_TABLE,
            },
        )
        assert compare_metadata(ctx, metadata) == []
    with SqlMetadataStore.open(db_url, clock=clock) as store:
        assert store.list_routes() == []
        assert store.get_deployment("fraud") == deployment
        assert store.current_rollout("fraud") == rollout
        assert [v.number for v in store.list_versions("fraud")] == [1]
        store.publish_routes("fraud", TABLE, 0, "controller")
        assert len(store.query_audit()) == 4  # version, deployment, rollout, routes

    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0004")
    with engine.connect() as conn:
        names = set(engine.dialect.get_table_names(conn))
    assert "endpoint_routes" not in names
    assert {"deployment_specs", "rollouts", "audit_events"} <= names
    with SqlMetadataStore.open(db_url, clock=clock) as store:
        assert store.list_routes() == []  # the table came back empty
        assert store.get_deployment("fraud") == deployment
