"""Schedules (task templates fired by cron or interval), the slots they fired, and
notifications (hooks) with their deliveries.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("package", sa.String(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=True),
        sa.Column("cron", sa.String(length=200), nullable=True),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("next_fire", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_schedules_owner_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
        sa.UniqueConstraint("owner_id", "name", name="uq_schedules_owner_id_name"),
    )
    op.create_index("ix_schedules_owner_id", "schedules", ["owner_id"])
    op.create_index("ix_schedules_next_fire", "schedules", ["next_fire"])
    op.create_table(
        "schedule_fires",
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=12), nullable=True),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["schedule_id"], ["schedules.id"],
                                name="fk_schedule_fires_schedule_id_schedules"),
        sa.PrimaryKeyConstraint("schedule_id", "slot", name="pk_schedule_fires"),
    )
    op.create_index("ix_schedule_fires_job_id", "schedule_fires", ["job_id"])
    op.create_table(
        "hooks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.String(length=12), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=True),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_hooks_owner_id_users"),
        sa.ForeignKeyConstraint(["schedule_id"], ["schedules.id"],
                                name="fk_hooks_schedule_id_schedules"),
        sa.PrimaryKeyConstraint("id", name="pk_hooks"),
    )
    op.create_index("ix_hooks_owner_id", "hooks", ["owner_id"])
    op.create_index("ix_hooks_schedule_id", "hooks", ["schedule_id"])
    op.create_index("ix_hooks_job_id", "hooks", ["job_id"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("hook_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=12), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.JSON(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["hook_id"], ["hooks.id"], name="fk_deliveries_hook_id_hooks"),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("hook_id", "job_id", name="uq_deliveries_hook_id_job_id"),
    )
    op.create_index("ix_deliveries_hook_id", "deliveries", ["hook_id"])
    op.create_index("ix_deliveries_next_at", "deliveries", ["next_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_next_at", table_name="deliveries")
    op.drop_index("ix_deliveries_hook_id", table_name="deliveries")
    op.drop_table("deliveries")
    for index in ("ix_hooks_job_id", "ix_hooks_schedule_id", "ix_hooks_owner_id"):
        op.drop_index(index, table_name="hooks")
    op.drop_table("hooks")
    op.drop_index("ix_schedule_fires_job_id", table_name="schedule_fires")
    op.drop_table("schedule_fires")
    op.drop_index("ix_schedules_next_fire", table_name="schedules")
    op.drop_index("ix_schedules_owner_id", table_name="schedules")
    op.drop_table("schedules")
