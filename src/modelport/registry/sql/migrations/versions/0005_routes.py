"""Published route tables: one row per endpoint, the table its serving replicas route by,
replaced as a whole with compare-and-swap on ``generation`` (1 at the first publish).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration never imports the live table definitions.
UTC_TS = sa.DateTime(timezone=True)
JSON = sa.JSON()
NAME = sa.String(length=100)
ACTOR = sa.String(length=200)


def upgrade() -> None:
    op.create_table(
        "endpoint_routes",
        sa.Column("endpoint", NAME, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("table", JSON, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.Column("updated_by", ACTOR, nullable=False),
        sa.PrimaryKeyConstraint("endpoint", name=op.f("pk_endpoint_routes")),
    )


def downgrade() -> None:
    op.drop_table("endpoint_routes")
