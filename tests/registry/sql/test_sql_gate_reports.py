"""Gate reports in the SQL store: appended to their version, audited in the same transaction,
listed by model, version and gate; the 0002 → 0003 migration keeps existing versions."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Engine, insert, text

from modelport.core.clock import FakeClock
from modelport.core.digest import Manifest, ManifestEntry, sha256_bytes
from modelport.core.errors import (
    InvalidInputError,
    InvalidNameError,
    ModelNotFoundError,
    VersionNotFoundError,
)
from modelport.core.model import NewModelVersion
from modelport.registry.sql import SqlMetadataStore, upgrade
from modelport.registry.sql.mapping import model_version_values
from modelport.registry.sql.migrate import alembic_config, current_revision, head_revision
from modelport.registry.sql.tables import model_versions, models

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REPORT = {
    "gate": "regression",
    "candidate": "fraud:2",
    "baseline": "fraud:1",
    "passed": False,
    "checks": [{"name": "accuracy_delta", "figure": -0.4, "threshold": -0.01, "passed": False}],
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(AT)


def new_version(seed: str = "a", name: str = "fraud") -> NewModelVersion:
    entry = ManifestEntry("model.skops", sha256_bytes(seed.encode()), 1)
    return NewModelVersion(
        name=name, format="sklearn", manifest=Manifest.of([entry]), created_by="ann"
    )


def test_report_is_appended_to_its_version_and_audited(
    store: SqlMetadataStore, clock: FakeClock
) -> None:
    store.add_version(new_version("a"))
    store.add_version(new_version("b"))
    clock.advance(5)
    stored = store.add_gate_report("fraud", 2, "regression", False, REPORT, "ci-bot")

    assert (stored.ref, stored.gate, stored.passed, stored.created_by) == (
        "fraud:2",
        "regression",
        False,
        "ci-bot",
    )
    assert stored.report == REPORT
    assert stored.created_at == clock.now()
    assert store.list_gate_reports("fraud", 2) == [stored]
    assert store.list_gate_reports("fraud", 1) == []
    assert stored.to_dict()["report"]["checks"][0]["name"] == "accuracy_delta"

    (event,) = store.query_audit(action="version.gate")
    assert (event.actor, event.object_name, event.version, event.at) == (
        "ci-bot",
        "fraud",
        2,
        clock.now(),
    )
    assert event.details == {"gate": "regression", "passed": False, "report_id": stored.id}


def test_reports_are_append_only_and_filtered(store: SqlMetadataStore, clock: FakeClock) -> None:
    store.add_version(new_version("a"))
    store.add_version(new_version("b"))
    store.add_version(new_version("c", name="churn"))
    first = store.add_gate_report("fraud", 2, "smoke", True, {"n": 1}, "ann")
    clock.advance(1)
    second = store.add_gate_report("fraud", 2, "smoke", False, {"n": 2}, "bob")
    third = store.add_gate_report("fraud", 1, "regression", True, {"n": 3}, "ann")
    store.add_gate_report("churn", 1, "smoke", True, {"n": 4}, "ann")

    assert store.list_gate_reports("fraud") == [first, second, third]  # oldest first
    assert store.list_gate_reports("fraud", 2) == [first, second]  # a rerun adds a report
    assert store.list_gate_reports("fraud", 2, gate="smoke") == [first, second]
    assert store.list_gate_reports("fraud", gate="regression") == [third]
    assert store.list_gate_reports("fraud", 2, gate="schema") == []
    assert [e.details["report_id"] for e in store.query_audit(action="version.gate")] == [
        first.id,
        second.id,
        third.id,
        third.id + 1,
    ]


def test_bad_reports_are_refused_and_leave_no_trace(store: SqlMetadataStore) -> None:
    store.add_version(new_version())
    with pytest.raises(VersionNotFoundError, match="'fraud' has no version 7"):
        store.add_gate_report("fraud", 7, "smoke", True, {}, "ann")
    with pytest.raises(ModelNotFoundError):
        store.add_gate_report("nope", 1, "smoke", True, {}, "ann")
    with pytest.raises(InvalidNameError):
        store.add_gate_report("fraud", 1, "smoke gate!", True, {}, "ann")
    with pytest.raises(InvalidInputError, match="longer than 32"):
        store.add_gate_report("fraud", 1, "g" * 33, True, {}, "ann")
    with pytest.raises(InvalidInputError, match="True or False"):
        store.add_gate_report("fraud", 1, "smoke", 1, {}, "ann")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="JSON object"):
        store.add_gate_report("fraud", 1, "smoke", True, [1, 2], "ann")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="cannot be stored as JSON"):
        store.add_gate_report("fraud", 1, "smoke", True, {"at": AT}, "ann")
    with pytest.raises(InvalidInputError, match="larger than"):
        store.add_gate_report("fraud", 1, "smoke", True, {"rows": "x" * 1_000_001}, "ann")
    with pytest.raises(InvalidInputError, match="actor"):
        store.add_gate_report("fraud", 1, "smoke", True, {}, "")
    assert store.list_gate_reports("fraud") == []
    assert store.query_audit(action="version.gate") == []


def test_non_finite_figures_become_null_on_every_backend(store: SqlMetadataStore) -> None:
    store.add_version(new_version())
    stored = store.add_gate_report(
        "fraud", 1, "smoke", False, {"figure": math.nan, "max": math.inf}, "ann"
    )
    assert stored.report == {"figure": None, "max": None}
    assert store.list_gate_reports("fraud", 1)[0].report == {"figure": None, "max": None}


def test_listing_names_what_is_missing(store: SqlMetadataStore) -> None:
    with pytest.raises(ModelNotFoundError, match="'fraud' is not registered"):
        store.list_gate_reports("fraud")
    store.add_version(new_version())
    with pytest.raises(VersionNotFoundError, match="no version 3"):
        store.list_gate_reports("fraud", 3)
    with pytest.raises(InvalidNameError):
        store.list_gate_reports("../etc")


def test_upgrade_from_0002_keeps_existing_versions(db_url: str, engine: Engine) -> None:
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0002")
    with engine.begin() as conn:  # a version written by a modelport that knew only 0002
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
        assert conn.execute(text("SELECT count(*) FROM gate_reports")).scalar() == 0
    with SqlMetadataStore.open(db_url) as store:
        assert store.list_gate_reports("fraud", 1) == []
        stored = store.add_gate_report("fraud", 1, "smoke", True, {"ok": True}, "bob")
        assert store.list_gate_reports("fraud") == [stored]

    with engine.begin() as conn:  # and back: 0003's downgrade drops only its table
        command.downgrade(alembic_config(conn), "0003")
        assert "gate_reports" in set(engine.dialect.get_table_names(conn))
        command.downgrade(alembic_config(conn), "0002")
    with engine.connect() as conn:
        names = set(engine.dialect.get_table_names(conn))
    assert "gate_reports" not in names
    assert {"models", "model_versions", "version_variants"} <= names
