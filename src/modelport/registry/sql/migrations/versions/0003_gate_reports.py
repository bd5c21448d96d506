"""Gate reports: the smoke, regression and schema reports of a version, append-only.

Revision ID: 0003
Revises: 0002
Create Date: 2026-03-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration never imports the live table definitions.
UTC_TS = sa.DateTime(timezone=True)
JSON = sa.JSON()
ACTOR = sa.String(length=200)


def upgrade() -> None:
    op.create_table(
        "gate_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("gate", sa.String(length=32), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("report", JSON, nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_gate_reports_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_reports")),
    )
    op.create_index(op.f("ix_gate_reports_version_id"), "gate_reports", ["version_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_gate_reports_version_id"), table_name="gate_reports")
    op.drop_table("gate_reports")
