"""Table definitions of the metadata database (SQLAlchemy Core).

The schema itself is created by the Alembic migrations in ``migrations/versions``; a test checks
that the migrated database and these definitions agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

__all__ = [
    "VERSION_TABLE",
    "UtcDateTime",
    "alias_history",
    "aliases",
    "api_keys",
    "audit_events",
    "dataset_versions",
    "datasets",
    "deployment_specs",
    "endpoint_routes",
    "gate_reports",
    "metadata",
    "model_versions",
    "models",
    "rollout_commands",
    "rollout_events",
    "rollouts",
    "version_datasets",
    "version_variants",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# Alembic's bookkeeping table; prefixed so a shared PostgreSQL database can host other projects.
VERSION_TABLE = "modelport_alembic_version"


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL stores ``timestamptz``; SQLite stores naive UTC text, made aware again on read.
    Naive values are refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to the metadata store; pass an aware one")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> JSON:
    return JSON(none_as_null=True)


models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("description", Text, nullable=False),
    Column("tags", _json(), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", ForeignKey("models.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("digest", String(80), nullable=False, index=True),
    Column("format", String(100), nullable=False),
    Column("manifest", _json(), nullable=False),
    Column("signature", _json(), nullable=True),
    Column("input_example", _json(), nullable=True),
    Column("metrics", _json(), nullable=False),
    Column("params", _json(), nullable=False),
    Column("tags", _json(), nullable=False),
    Column("description", Text, nullable=False),
    Column("lineage", _json(), nullable=False),
    Column("environment", _json(), nullable=True),
    Column("profile", _json(), nullable=True),
    Column("trusted_types", _json(), nullable=False),
    Column("runtime_config", _json(), nullable=False),
    Column("status", String(32), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("model_id", "number"),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("dataset_id", ForeignKey("datasets.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("digest", String(80), nullable=False, index=True),
    Column("format", String(100), nullable=False),
    Column("manifest", _json(), nullable=False),
    Column("schema", _json(), nullable=False),
    Column("profile", _json(), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("description", Text, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("dataset_id", "number"),
)

version_datasets = Table(
    "version_datasets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version_id", ForeignKey("model_versions.id"), nullable=False, index=True),
    Column("dataset_version_id", ForeignKey("dataset_versions.id"), nullable=False, index=True),
    Column("role", String(32), nullable=False),
    UniqueConstraint("version_id", "dataset_version_id", "role"),
)

version_variants = Table(
    "version_variants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version_id", ForeignKey("model_versions.id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("manifest", _json(), nullable=True),
    Column("digest", String(80), nullable=True),
    Column("reason", Text, nullable=False),
    Column("tolerance", Float, nullable=True),
    Column("max_abs_diff", Float, nullable=True),
    Column("checked_rows", Integer, nullable=False),
    Column("runtime_config", _json(), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("version_id", "kind"),
)

gate_reports = Table(
    "gate_reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version_id", ForeignKey("model_versions.id"), nullable=False, index=True),
    Column("gate", String(32), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("report", _json(), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

aliases = Table(
    "aliases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", ForeignKey("models.id"), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("version_number", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("model_id", "alias"),
    ForeignKeyConstraint(
        ["model_id", "version_number"],
        ["model_versions.model_id", "model_versions.number"],
        name="fk_aliases_version_model_versions",
    ),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", ForeignKey("models.id"), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    UniqueConstraint("model_id", "alias", "seq"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", UtcDateTime, nullable=False, index=True),
    Column("actor", String(200), nullable=False, index=True),
    Column("action", String(100), nullable=False),
    Column("object_type", String(50), nullable=False),
    Column("object_name", String(200), nullable=False, index=True),
    Column("version", Integer, nullable=True),
    Column("details", _json(), nullable=False),
)

Index(None, audit_events.c.action)

deployment_specs = Table(
    "deployment_specs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("endpoint", String(100), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("spec", _json(), nullable=False),
    Column("digest", String(80), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("endpoint", "revision"),
)

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("endpoint", String(100), nullable=False, index=True),
    Column("spec_revision", Integer, nullable=False),
    Column("phase", String(32), nullable=False),
    Column("state", _json(), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    ForeignKeyConstraint(
        ["endpoint", "spec_revision"],
        ["deployment_specs.endpoint", "deployment_specs.revision"],
        name="fk_rollouts_spec_deployment_specs",
    ),
)

# At most one unfinished rollout per endpoint; the write transaction checks it first, this
# partial index (SQLite and PostgreSQL both have them) guarantees it.
Index(
    "uq_rollouts_endpoint_unfinished",
    rollouts.c.endpoint,
    unique=True,
    sqlite_where=rollouts.c.finished_at.is_(None),
    postgresql_where=rollouts.c.finished_at.is_(None),
)

rollout_events = Table(
    "rollout_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("rollout_id", ForeignKey("rollouts.id"), nullable=False, index=True),
    Column("endpoint", String(100), nullable=False, index=True),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(100), nullable=False),
    Column("phase_from", String(32), nullable=True),
    Column("phase_to", String(32), nullable=True),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("figures", _json(), nullable=False),
)

rollout_commands = Table(
    "rollout_commands",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("rollout_id", ForeignKey("rollouts.id"), nullable=False, index=True),
    Column("op", String(16), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("consumed_at", UtcDateTime, nullable=True),
)

# The route table each endpoint's serving replicas route by (``RouteTable.to_dict()``, stored
# as given); ``generation`` is its compare-and-swap counter, 1 at the first publish.
endpoint_routes = Table(
    "endpoint_routes",
    metadata,
    Column("endpoint", String(100), primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("table", _json(), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("updated_by", String(200), nullable=False),
)


# API keys: the SHA-256 digest of each token (never the token), its scopes, who made it and
# who revoked it (a revoked key keeps its row for the audit trail).
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(12), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("digest", String(64), nullable=False),
    Column("scopes", _json(), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("revoked_by", String(200), nullable=True),
)
