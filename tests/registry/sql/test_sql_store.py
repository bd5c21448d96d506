"""SqlMetadataStore against real SQLite files and the real PostgreSQL server."""

from __future__ import annotations

import inspect
import math
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text

from modelport.core.clock import FakeClock
from modelport.core.digest import Manifest, ManifestEntry, sha256_bytes
from modelport.core.envlock import EnvironmentLock, PackagePin
from modelport.core.errors import (
    AliasNotFoundError,
    DatasetNotFoundError,
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    ModelNotFoundError,
    StoreUnavailableError,
    VersionNotFoundError,
)
from modelport.core.examples import encode
from modelport.core.model import DatasetRef, Lineage, NewDatasetVersion, NewModelVersion
from modelport.core.profile import profile_frame
from modelport.core.signature import Signature
from modelport.registry.protocols import MetadataStore
from modelport.registry.sql import SqlMetadataStore, make_engine

FRAME = pd.DataFrame({"age": [31, 45, 27], "city": ["paris", "lyon", "paris"]})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


def manifest(seed: str) -> Manifest:
    return Manifest.of(
        [
            ManifestEntry("model.skops", sha256_bytes(seed.encode()), 1234),
            ManifestEntry("conf/params.json", sha256_bytes(b"params-" + seed.encode()), 56),
        ]
    )


def new_version(name: str = "fraud", seed: str = "a", **changes: Any) -> NewModelVersion:
    base = NewModelVersion(name=name, format="sklearn", manifest=manifest(seed), created_by="ann")
    return replace(base, **changes)


def new_dataset(name: str = "transactions", seed: str = "d", rows: int = 3) -> NewDatasetVersion:
    return NewDatasetVersion(
        name=name,
        format="csv",
        manifest=Manifest.of([ManifestEntry("data.csv", sha256_bytes(seed.encode()), 99)]),
        schema={"age": "int64", "city": "string"},
        profile=profile_frame(FRAME),
        rows=rows,
        description="card transactions",
        created_by="dora",
    )


def test_store_satisfies_the_protocol_and_has_no_update_path(store: SqlMetadataStore) -> None:
    as_protocol: MetadataStore = store
    assert as_protocol.uri == store.uri
    public = {n for n, _ in inspect.getmembers(SqlMetadataStore) if not n.startswith("_")}
    expected = {n for n in vars(MetadataStore) if not n.startswith("_")} | {"open"}
    assert public == expected  # versions are immutable: nothing edits or deletes one


def test_register_round_trips_every_field(store: SqlMetadataStore, clock: FakeClock) -> None:
    new = new_version(
        signature=Signature.infer(FRAME),
        input_example=encode(FRAME),
        metrics={"auc": 0.91, "rows": 3},
        params={"max_depth": "4"},
        tags={"team": "risk"},
        description="gradient boosting",
        lineage=Lineage(code_revision="abc123", source="train.py", parent_run="run-7"),
        environment=EnvironmentLock(
            python="3.11.7", packages=(PackagePin("scikit-learn", "1.4.2", framework=True),)
        ),
        profile=profile_frame(FRAME),
        trusted_types=("sklearn.tree.DecisionTreeClassifier",),
        runtime_config={"batch": {"max_size": 32}, "threads": 2},
    )
    version = store.add_version(new)

    assert (version.name, version.number, version.ref) == ("fraud", 1, "fraud:1")
    assert version.digest == new.manifest.digest
    assert version.manifest == new.manifest
    assert version.signature == new.signature
    assert version.input_example == new.input_example
    assert version.metrics == {"auc": 0.91, "rows": 3.0}
    assert version.params == new.params
    assert version.tags == new.tags
    assert version.lineage == new.lineage
    assert version.environment == new.environment
    assert version.profile == new.profile
    assert version.trusted_types == new.trusted_types
    assert version.runtime_config == new.runtime_config
    assert (version.status, version.created_by, version.aliases) == ("ready", "ann", ())
    assert version.created_at == clock.now()
    assert version.created_at.tzinfo is UTC
    assert store.get_version("fraud", 1) == version


def test_numbers_are_consecutive_per_model(store: SqlMetadataStore) -> None:
    numbers = [store.add_version(new_version(seed=str(i))).number for i in range(3)]
    other = store.add_version(new_version(name="churn")).number
    assert (numbers, other) == ([1, 2, 3], 1)
    assert [v.number for v in store.list_versions("fraud")] == [1, 2, 3]
    assert store.latest_version("fraud").number == 3


def test_get_model_and_list_models(store: SqlMetadataStore, clock: FakeClock) -> None:
    store.add_version(new_version(name="fraud"))
    clock.advance(60)
    store.add_version(new_version(name="fraud", seed="b", created_by="bob"))
    store.add_version(new_version(name="churn"))
    store.set_alias("fraud", "champion", 1, actor="ann")

    model = store.get_model("fraud")
    assert (model.name, model.latest_version, dict(model.aliases)) == ("fraud", 2, {"champion": 1})
    assert (model.created_by, model.created_at) == ("ann", datetime(2026, 3, 1, 12, tzinfo=UTC))
    listed = store.list_models()
    assert [(m.name, m.latest_version, dict(m.aliases)) for m in listed] == [
        ("churn", 1, {}),
        ("fraud", 2, {"champion": 1}),
    ]


def test_versions_are_immutable_and_digests_exact(store: SqlMetadataStore, db_url: str) -> None:
    first = store.add_version(new_version(seed="same"))
    second = store.add_version(new_version(seed="same", metrics={"auc": 0.5}))
    assert first.digest == second.digest == manifest("same").digest
    assert second.number == 2
    assert store.get_version("fraud", 1) == first  # the second registration changed nothing

    engine = make_engine(db_url)  # edit the row behind the store's back
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE model_versions SET digest = 'sha256:' || :d"), {"d": "0" * 64}
            )
    finally:
        engine.dispose()
    with pytest.raises(IntegrityError, match="fraud:1 does not match its digest"):
        store.get_version("fraud", 1)


def test_aliases_move_with_history(store: SqlMetadataStore, clock: FakeClock) -> None:
    for seed in "abc":
        store.add_version(new_version(seed=seed))
    first = store.set_alias("fraud", "champion", 1, actor="ann", reason="first release")
    clock.advance(10)
    second = store.set_alias("fraud", "champion", 3, actor="bob", reason="better auc")
    again = store.set_alias("fraud", "champion", 3, actor="carl", reason="no-op")

    assert again == second  # not a move: nothing recorded
    assert store.resolve_alias("fraud", "champion") == 3
    assert store.get_version("fraud", 3).aliases == ("champion",)
    assert store.get_version("fraud", 1).aliases == ()
    history = store.alias_history("fraud", "champion")
    assert history == [first, second]
    assert [(m.seq, m.from_version, m.to_version, m.actor, m.reason) for m in history] == [
        (1, None, 1, "ann", "first release"),
        (2, 1, 3, "bob", "better auc"),
    ]
    assert history[1].at == history[0].at + timedelta(seconds=10)
    events = store.query_audit(model="fraud", action="alias.set")
    assert [(e.actor, e.version, e.details["from_version"]) for e in events] == [
        ("ann", 1, None),
        ("bob", 3, 1),
    ]


def test_delete_alias(store: SqlMetadataStore) -> None:
    store.add_version(new_version())
    store.set_alias("fraud", "staging", 1, actor="ann")
    move = store.delete_alias("fraud", "staging", actor="bob", reason="retired")

    assert (move.seq, move.from_version, move.to_version, move.actor) == (2, 1, None, "bob")
    with pytest.raises(AliasNotFoundError, match="model 'fraud' has no alias 'staging'"):
        store.resolve_alias("fraud", "staging")
    assert store.get_model("fraud").aliases == {}
    with pytest.raises(AliasNotFoundError):
        store.delete_alias("fraud", "staging", actor="bob")
    back = store.set_alias("fraud", "staging", 1, actor="ann")
    assert (back.seq, back.from_version, back.to_version) == (3, None, 1)
    events = store.query_audit(model="fraud")[-2:]
    assert [(e.action, e.version) for e in events] == [("alias.delete", 1), ("alias.set", 1)]


def test_not_found_errors_name_the_object_and_next_step(store: SqlMetadataStore) -> None:
    with pytest.raises(ModelNotFoundError, match=r"model 'nope' is not registered; run `modelport"):
        store.get_model("nope")
    for call in (store.list_versions, store.latest_version):
        with pytest.raises(ModelNotFoundError):
            call("nope")
    store.add_version(new_version())
    with pytest.raises(
        VersionNotFoundError,
        match=r"model 'fraud' has no version 7; run `modelport models show fraud`",
    ):
        store.get_version("fraud", 7)
    with pytest.raises(AliasNotFoundError, match="'fraud' has no alias 'prod'"):
        store.resolve_alias("fraud", "prod")
    with pytest.raises(AliasNotFoundError):
        store.alias_history("fraud", "prod")
    with pytest.raises(InvalidNameError):
        store.get_model("../etc")
    with pytest.raises(InvalidNameError):
        store.set_alias("fraud", "1bad", 1, actor="ann")


def test_alias_to_missing_version_writes_nothing(store: SqlMetadataStore) -> None:
    store.add_version(new_version())
    with pytest.raises(VersionNotFoundError, match="'fraud' has no version 9"):
        store.set_alias("fraud", "champion", 9, actor="ann")
    with pytest.raises(ModelNotFoundError):
        store.set_alias("ghost", "champion", 1, actor="ann")
    with pytest.raises(AliasNotFoundError):
        store.alias_history("fraud", "champion")
    assert [e.action for e in store.query_audit()] == ["version.register"]


def test_datasets(store: SqlMetadataStore) -> None:
    first = store.add_dataset_version(new_dataset(seed="v1"))
    second = store.add_dataset_version(new_dataset(seed="v2", rows=5))
    other = store.add_dataset_version(new_dataset(name="labels", seed="l1"))

    assert (first.ref, second.ref, other.ref) == ("transactions:1", "transactions:2", "labels:1")
    assert first.schema == {"age": "int64", "city": "string"}
    assert list(first.schema) == ["age", "city"]  # column order survives
    assert first.profile == profile_frame(FRAME)
    assert store.get_dataset_version("transactions") == second
    assert store.get_dataset_version("transactions", 1) == first
    assert store.find_dataset_version(first.digest) == first
    assert store.find_dataset_version("sha256:" + "0" * 64) is None
    assert [d.ref for d in store.list_dataset_versions()] == [
        "labels:1",
        "transactions:1",
        "transactions:2",
    ]
    assert store.list_dataset_versions("labels") == [other]
    assert store.list_dataset_versions("unknown") == []  # a filter, not a lookup
    with pytest.raises(DatasetNotFoundError, match="dataset 'nope' is not registered"):
        store.get_dataset_version("nope")
    with pytest.raises(DatasetNotFoundError, match="'transactions' has no version 3"):
        store.get_dataset_version("transactions", 3)
    assert [e.action for e in store.query_audit(model="transactions")] == ["dataset.register"] * 2


def test_versions_link_dataset_versions(store: SqlMetadataStore) -> None:
    train = store.add_dataset_version(new_dataset(seed="t"))
    golden = store.add_dataset_version(new_dataset(name="golden", seed="g"))
    refs = (
        DatasetRef("transactions", 1, "training", ""),
        DatasetRef("golden", 1, "golden", golden.digest),
        DatasetRef("transactions", 1, "training", ""),  # duplicate: linked once
    )
    version = store.add_version(new_version(datasets=refs))

    expected = (
        DatasetRef("transactions", 1, "training", train.digest),
        DatasetRef("golden", 1, "golden", golden.digest),
    )
    assert version.datasets == expected
    assert store.list_versions("fraud")[0].datasets == expected


def test_failed_registration_leaves_no_trace(store: SqlMetadataStore) -> None:
    missing = (DatasetRef("transactions", 4, "training", ""),)
    with pytest.raises(DatasetNotFoundError, match="dataset 'transactions' is not registered"):
        store.add_version(new_version(datasets=missing))
    with pytest.raises(ModelNotFoundError):
        store.get_model("fraud")  # the model row rolled back with the version
    store.add_dataset_version(new_dataset())
    with pytest.raises(DatasetNotFoundError, match="'transactions' has no version 4"):
        store.add_version(new_version(datasets=missing))
    wrong = (DatasetRef("transactions", 1, "training", "sha256:" + "f" * 64),)
    with pytest.raises(InvalidInputError, match="was registered with digest"):
        store.add_version(new_version(datasets=wrong))
    assert [e.action for e in store.query_audit()] == ["dataset.register"]


def test_json_limits_are_the_same_on_every_backend(store: SqlMetadataStore) -> None:
    example = {"type": "ndarray", "dtype": "float64", "data": [[1.0, math.nan]]}
    version = store.add_version(new_version(input_example=example))
    assert version.input_example == {"type": "ndarray", "dtype": "float64", "data": [[1.0, None]]}
    with pytest.raises(InvalidInputError, match="metric 'auc' is nan"):
        store.add_version(new_version(metrics={"auc": math.nan}))
    with pytest.raises(InvalidInputError, match="cannot be stored as JSON"):
        store.add_version(new_version(runtime_config={"when": datetime.now(UTC)}))


def test_audit_queries(store: SqlMetadataStore, clock: FakeClock) -> None:
    start = clock.now()
    store.add_version(new_version(created_by="ann"))
    clock.advance(3600)
    store.add_version(new_version(name="churn", created_by="bob"))
    clock.advance(3600)
    store.set_alias("fraud", "champion", 1, actor="bob", reason="go")
    clock.advance(3600)
    custom = store.record_audit(
        "deployer", "deploy.start", "endpoint", "fraud-api", details={"weights": {"fraud:1": 100}}
    )

    events = store.query_audit()
    assert [e.action for e in events] == [
        "version.register",
        "version.register",
        "alias.set",
        "deploy.start",
    ]
    assert events[-1] == custom
    assert custom.details == {"weights": {"fraud:1": 100}}
    assert all(e.at.tzinfo is UTC for e in events)
    assert [e.action for e in store.query_audit(model="fraud")] == ["version.register", "alias.set"]
    assert [e.object_name for e in store.query_audit(actor="bob")] == ["churn", "fraud"]
    window = store.query_audit(since=start + timedelta(hours=1), until=start + timedelta(hours=2))
    assert [e.object_name for e in window] == ["churn", "fraud"]  # both bounds inclusive
    paris = timezone(timedelta(hours=2))
    later = store.query_audit(since=(start + timedelta(hours=2)).astimezone(paris))
    assert [e.action for e in later] == ["alias.set", "deploy.start"]
    assert [e.object_name for e in store.query_audit(limit=2)] == ["fraud", "churn"]
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        store.query_audit(since=datetime(2026, 1, 1))
    with pytest.raises(InvalidInputError):
        store.query_audit(limit=0)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_postgres_is_store_unavailable() -> None:
    url = f"postgresql+psycopg://modelport:s3cret@127.0.0.1:{_closed_port()}/registry"
    with pytest.raises(StoreUnavailableError) as info:
        SqlMetadataStore.open(url)
    message = str(info.value)
    assert "s3cret" not in message
    assert "***" in message
    assert "check that the PostgreSQL server at 127.0.0.1" in message
    assert "SELECT" not in message


def test_sqlite_in_missing_directory_is_store_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="check that the directory"):
        SqlMetadataStore.open(f"sqlite:///{tmp_path / 'missing' / 'registry.db'}")
    with pytest.raises(StoreUnavailableError, match="unable to open database file"):
        SqlMetadataStore.open(f"sqlite:///{tmp_path}")  # a directory, not a database file


@pytest.mark.postgres
def test_database_lost_while_open_is_store_unavailable(pg_url: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    base, name = pg_url.replace("+psycopg", "", 1).rsplit("/", 1)
    with SqlMetadataStore.open(pg_url) as store:
        store.add_version(new_version())
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        with pytest.raises(StoreUnavailableError, match=f"database '{name}' exists"):
            store.get_model("fraud")
        with pytest.raises(StoreUnavailableError):
            store.add_version(new_version(seed="b"))


def test_in_memory_sqlite_works_for_single_threaded_use() -> None:
    with SqlMetadataStore.open("sqlite://") as store:
        assert store.add_version(new_version()).ref == "fraud:1"
        assert store.latest_version("fraud").number == 1


def test_unsupported_urls_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="unsupported database driver"):
        make_engine("mysql://user:pw@localhost/db")
    with pytest.raises(InvalidInputError, match="not a database URL"):
        make_engine("not a url")


def test_uri_masks_the_password(pg_url: str) -> None:
    with_password = pg_url.replace("postgres@", "postgres:hunter2@", 1)
    with SqlMetadataStore.open(with_password) as store:
        assert "hunter2" not in store.uri
        assert "***" in store.uri
