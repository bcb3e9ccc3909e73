"""A schedule keeps where its tasks run as a job does: ``schedules.placement``,
``device:NAME``, ``pool:NAME`` or ``spread:NAME``, NULL for the server's own runner. It
replaces ``schedules.device``, a bare name that no dispatch read.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 08:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.alter_column("device", new_column_name="placement", type_=sa.String(80),
                           existing_nullable=True)
    # A bare name was always meant as a device's.
    op.execute("UPDATE schedules SET placement = 'device:' || placement "
               "WHERE placement IS NOT NULL AND placement NOT LIKE '%:%'")


def downgrade() -> None:
    conn = op.get_bind()
    placed = conn.execute(sa.text("SELECT id, placement FROM schedules "
                                  "WHERE placement IS NOT NULL")).all()
    for row in placed:
        conn.execute(sa.text("UPDATE schedules SET placement = :name WHERE id = :id"),
                     {"name": row.placement.partition(":")[2][:64], "id": row.id})
    with op.batch_alter_table("schedules") as batch:
        batch.alter_column("placement", new_column_name="device", type_=sa.String(64),
                           existing_nullable=True)
