"""Initial schema: models, versions, aliases with history, datasets, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration never imports the live table definitions.
UTC_TS = sa.DateTime(timezone=True)
JSON = sa.JSON()
NAME = sa.String(length=100)
ACTOR = sa.String(length=200)


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", name=op.f("uq_models_name")),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("format", sa.String(length=100), nullable=False),
        sa.Column("manifest", JSON, nullable=False),
        sa.Column("signature", JSON, nullable=True),
        sa.Column("input_example", JSON, nullable=True),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("lineage", JSON, nullable=False),
        sa.Column("environment", JSON, nullable=True),
        sa.Column("profile", JSON, nullable=True),
        sa.Column("trusted_types", JSON, nullable=False),
        sa.Column("runtime_config", JSON, nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_model_versions_model_id_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("model_id", "number", name=op.f("uq_model_versions_model_id_number")),
    )
    op.create_index(op.f("ix_model_versions_digest"), "model_versions", ["digest"])
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("name", name=op.f("uq_datasets_name")),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("format", sa.String(length=100), nullable=False),
        sa.Column("manifest", JSON, nullable=False),
        sa.Column("schema", JSON, nullable=False),
        sa.Column("profile", JSON, nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_dataset_versions_dataset_id_datasets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_versions")),
        sa.UniqueConstraint(
            "dataset_id", "number", name=op.f("uq_dataset_versions_dataset_id_number")
        ),
    )
    op.create_index(op.f("ix_dataset_versions_digest"), "dataset_versions", ["digest"])
    op.create_table(
        "version_datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("dataset_version_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_version_datasets_dataset_version_id_dataset_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_version_datasets_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_version_datasets")),
        sa.UniqueConstraint(
            "version_id",
            "dataset_version_id",
            "role",
            name=op.f("uq_version_datasets_version_id_dataset_version_id_role"),
        ),
    )
    op.create_index(
        op.f("ix_version_datasets_dataset_version_id"), "version_datasets", ["dataset_version_id"]
    )
    op.create_index(op.f("ix_version_datasets_version_id"), "version_datasets", ["version_id"])
    op.create_table(
        "aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id", "version_number"],
            ["model_versions.model_id", "model_versions.number"],
            name="fk_aliases_version_model_versions",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_aliases_model_id_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aliases")),
        sa.UniqueConstraint("model_id", "alias", name=op.f("uq_aliases_model_id_alias")),
    )
    op.create_table(
        "alias_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("actor", ACTOR, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", UTC_TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_alias_history_model_id_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alias_history")),
        sa.UniqueConstraint(
            "model_id", "alias", "seq", name=op.f("uq_alias_history_model_id_alias_seq")
        ),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", UTC_TS, nullable=False),
        sa.Column("actor", ACTOR, nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("object_type", sa.String(length=50), nullable=False),
        sa.Column("object_name", ACTOR, nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_action"), "audit_events", ["action"])
    op.create_index(op.f("ix_audit_events_actor"), "audit_events", ["actor"])
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"])
    op.create_index(op.f("ix_audit_events_object_name"), "audit_events", ["object_name"])


def downgrade() -> None:
    for table in (
        "audit_events",
        "alias_history",
        "aliases",
        "version_datasets",
        "dataset_versions",
        "datasets",
        "model_versions",
        "models",
    ):
        op.drop_table(table)
