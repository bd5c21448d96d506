"""Variants in the SQL store: recorded with their version, replaced only through add_variant and
audited; the 0001 → 0002 migration keeps existing versions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Engine, insert, text

from modelport.core.clock import FakeClock
from modelport.core.digest import Manifest, ManifestEntry, sha256_bytes
from modelport.core.errors import IntegrityError, InvalidInputError, VersionNotFoundError
from modelport.core.model import NewModelVersion, Variant
from modelport.registry.sql import SqlMetadataStore, upgrade
from modelport.registry.sql.mapping import model_version_values
from modelport.registry.sql.migrate import alembic_config, current_revision, head_revision
from modelport.registry.sql.tables import model_versions, models

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(AT)


def files(seed: str) -> Manifest:
    return Manifest.of([ManifestEntry("model.onnx", sha256_bytes(seed.encode()), 10)])


def new_version(seed: str = "a") -> NewModelVersion:
    entry = ManifestEntry("model.skops", sha256_bytes(seed.encode()), 1)
    return NewModelVersion(
        name="fraud", format="sklearn", manifest=Manifest.of([entry]), created_by="ann"
    )


def verified(seed: str = "v", diff: float = 3e-7) -> Variant:
    manifest = files(seed)
    return Variant(
        kind="onnx",
        status="verified",
        manifest=manifest,
        digest=manifest.digest,
        reason="outputs equal on 25 rows",
        tolerance=1e-5,
        max_abs_diff=diff,
        checked_rows=25,
        created_at=datetime(2000, 1, 1, tzinfo=UTC),
        runtime_config={"outputs": {"label": "predictions"}, "classes": [0, 1]},
    )


def failed(reason: str = "skl2onnx cannot convert the NearestCentroid") -> Variant:
    return Variant("onnx", "failed", None, None, reason, None, None, 0, AT)


def test_variant_is_recorded_with_its_version_and_read_back(
    store: SqlMetadataStore, clock: FakeClock
) -> None:
    version = store.add_version(new_version())
    assert version.variants == ()
    clock.advance(5)
    updated = store.add_variant("fraud", 1, verified(), "bob")

    (variant,) = updated.variants
    assert variant.status == "verified"
    assert variant.verified
    assert variant.manifest == files("v")
    assert variant.digest == files("v").digest
    assert (variant.tolerance, variant.max_abs_diff, variant.checked_rows) == (1e-5, 3e-7, 25)
    assert variant.runtime_config == {"outputs": {"label": "predictions"}, "classes": [0, 1]}
    assert variant.created_at == clock.now()  # the store's clock, not the caller's
    assert updated.digest == version.digest  # the version's own artifact is untouched
    assert updated.manifest == version.manifest
    for read in (store.get_version("fraud", 1), store.latest_version("fraud")):
        assert read.variants == updated.variants
    assert store.list_versions("fraud")[0].variant("onnx") == variant
    assert updated.to_dict()["variants"][0]["status"] == "verified"

    (event,) = store.query_audit(action="version.variant")
    assert (event.actor, event.object_name, event.version) == ("bob", "fraud", 1)
    assert event.details["digest"] == files("v").digest
    assert event.details["replaced"] is False


def test_replacing_a_variant_is_audited_and_only_one_per_kind(store: SqlMetadataStore) -> None:
    store.add_version(new_version("a"))
    store.add_version(new_version("b"))
    store.add_variant("fraud", 1, verified("first"), "bob")
    store.add_variant("fraud", 2, failed(), "bob")
    again = store.add_variant("fraud", 1, failed("outputs differ"), "carol")

    assert [(v.status, v.reason) for v in again.variants] == [("failed", "outputs differ")]
    assert again.variants[0].manifest is None
    assert [v.variants[0].status for v in store.list_versions("fraud")] == ["failed", "failed"]
    events = store.query_audit(action="version.variant")
    assert [(e.actor, e.version, e.details["replaced"]) for e in events] == [
        ("bob", 1, False),
        ("bob", 2, False),
        ("carol", 1, True),
    ]
    assert events[-1].details["previous"] == {"status": "verified", "digest": files("first").digest}


def test_bad_variants_are_refused(store: SqlMetadataStore) -> None:
    store.add_version(new_version())
    good = verified()
    with pytest.raises(VersionNotFoundError):
        store.add_variant("fraud", 2, good, "bob")
    with pytest.raises(InvalidInputError, match="status"):
        store.add_variant(
            "fraud", 1, Variant("onnx", "maybe", None, None, "", None, None, 0, AT), "bob"
        )  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="needs its files"):
        store.add_variant(
            "fraud", 1, Variant("onnx", "verified", None, None, "", None, None, 0, AT), "bob"
        )
    bad = Variant("onnx", "verified", files("x"), files("y").digest, "", None, None, 0, AT)
    with pytest.raises(IntegrityError, match="digest"):
        store.add_variant("fraud", 1, bad, "bob")
    with pytest.raises(InvalidInputError, match="finite"):
        store.add_variant(
            "fraud", 1, Variant("onnx", "failed", None, None, "", None, float("nan"), 0, AT), "bob"
        )
    with pytest.raises(InvalidInputError, match="actor"):
        store.add_variant("fraud", 1, good, "")
    assert store.get_version("fraud", 1).variants == ()
    assert store.query_audit(action="version.variant") == []


def test_a_tampered_variant_row_is_detected(store: SqlMetadataStore, engine: Engine) -> None:
    store.add_version(new_version())
    store.add_variant("fraud", 1, verified(), "bob")
    with engine.begin() as conn:  # an edit outside modelport
        conn.execute(
            text("UPDATE version_variants SET digest = 'sha256:' || :hex"), {"hex": "0" * 64}
        )
    with pytest.raises(IntegrityError, match="onnx variant of fraud:1"):
        store.get_version("fraud", 1)


def test_upgrade_from_0001_keeps_existing_versions(db_url: str, engine: Engine) -> None:
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
    with engine.begin() as conn:  # a version written by a modelport that knew only 0001
        assert current_revision(conn) == "0001"
        mid = conn.execute(
            insert(models).values(
                name="fraud", description="", tags={}, created_at=AT, created_by="ann"
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        values = model_version_values(new_version())
        conn.execute(insert(model_versions).values(model_id=mid, number=1, created_at=AT, **values))

    upgrade(engine)
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    with SqlMetadataStore.open(db_url) as store:
        old = store.get_version("fraud", 1)
        assert old.variants == ()
        assert old.digest == new_version().manifest.digest
        assert store.add_variant("fraud", 1, verified(), "bob").variants[0].verified
        assert store.add_version(new_version("b")).number == 2
