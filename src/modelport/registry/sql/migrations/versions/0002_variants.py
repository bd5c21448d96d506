"""Variants: derived artifacts of a version (the verified ONNX fast path), one row per kind.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration never imports the live table definitions.
UTC_TS = sa.DateTime(timezone=True)
JSON = sa.JSON()


def upgrade() -> None:
    op.create_table(
        "version_variants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("manifest", JSON, nullable=True),
        sa.Column("digest", sa.String(length=80), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("tolerance", sa.Float(), nullable=True),
        sa.Column("max_abs_diff", sa.Float(), nullable=True),
        sa.Column("checked_rows", sa.Integer(), nullable=False),
        sa.Column("runtime_config", JSON, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_version_variants_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_version_variants")),
        sa.UniqueConstraint("version_id", "kind", name=op.f("uq_version_variants_version_id_kind")),
    )
    op.create_index(op.f("ix_version_variants_version_id"), "version_variants", ["version_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_version_variants_version_id"), table_name="version_variants")
    op.drop_table("version_variants")
