"""Deployments and rollouts: spec revisions per endpoint, rollouts with their state, the
append-only event timeline and operator commands for the controller.

Revision ID: 0004
Revises: 0003
Create Date: 2026-03-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration never imports the live table definitions.
UTC_TS = sa.DateTime(timezone=True)
JSON = sa.JSON()
NAME = sa.String(length=100)
ACTOR = sa.String(length=200)
PHASE = sa.String(length=32)
UNFINISHED = "finished_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "deployment_specs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint", NAME, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_specs")),
        sa.UniqueConstraint(
            "endpoint", "revision", name=op.f("uq_deployment_specs_endpoint_revision")
        ),
    )
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint", NAME, nullable=False),
        sa.Column("spec_revision", sa.Integer(), nullable=False),
        sa.Column("phase", PHASE, nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.Column("finished_at", UTC_TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint", "spec_revision"],
            ["deployment_specs.endpoint", "deployment_specs.revision"],
            name="fk_rollouts_spec_deployment_specs",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
    )
    op.create_index(op.f("ix_rollouts_endpoint"), "rollouts", ["endpoint"])
    op.create_index(
        "uq_rollouts_endpoint_unfinished",
        "rollouts",
        ["endpoint"],
        unique=True,
        sqlite_where=sa.text(UNFINISHED),
        postgresql_where=sa.text(UNFINISHED),
    )
    op.create_table(
        "rollout_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("endpoint", NAME, nullable=False),
        sa.Column("at", UTC_TS, nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("phase_from", PHASE, nullable=True),
        sa.Column("phase_to", PHASE, nullable=True),
        sa.Column("actor", ACTOR, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("figures", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["rollout_id"], ["rollouts.id"], name=op.f("fk_rollout_events_rollout_id_rollouts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_events")),
    )
    op.create_index(op.f("ix_rollout_events_rollout_id"), "rollout_events", ["rollout_id"])
    op.create_index(op.f("ix_rollout_events_endpoint"), "rollout_events", ["endpoint"])
    op.create_table(
        "rollout_commands",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("actor", ACTOR, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("consumed_at", UTC_TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["rollout_id"], ["rollouts.id"], name=op.f("fk_rollout_commands_rollout_id_rollouts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_commands")),
    )
    op.create_index(op.f("ix_rollout_commands_rollout_id"), "rollout_commands", ["rollout_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rollout_commands_rollout_id"), table_name="rollout_commands")
    op.drop_table("rollout_commands")
    op.drop_index(op.f("ix_rollout_events_endpoint"), table_name="rollout_events")
    op.drop_index(op.f("ix_rollout_events_rollout_id"), table_name="rollout_events")
    op.drop_table("rollout_events")
    op.drop_index("uq_rollouts_endpoint_unfinished", table_name="rollouts")
    op.drop_index(op.f("ix_rollouts_endpoint"), table_name="rollouts")
    op.drop_table("rollouts")
    op.drop_table("deployment_specs")
