"""API keys: one row per key, holding the SHA-256 digest of the token (never the token), its
scopes and who made or revoked it. A revoked key keeps its row, so the audit trail can name it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration never imports the live table definitions.
UTC_TS = sa.DateTime(timezone=True)
JSON = sa.JSON()
NAME = sa.String(length=100)
ACTOR = sa.String(length=200)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(length=12), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.Column("revoked_at", UTC_TS, nullable=True),
        sa.Column("revoked_by", ACTOR, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys_name")),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
