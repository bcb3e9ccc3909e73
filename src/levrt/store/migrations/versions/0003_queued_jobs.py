"""Jobs can wait: a ``queued`` job has no start time until a runner starts it; a job
started from the hub records the published ``package==version`` it runs; a job records the
process that drives it (``host:pid``), so that one left running by a killed driver is found.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("package", sa.String(), nullable=True))
        batch.add_column(sa.Column("driver", sa.String(), nullable=True))
    # Every job recorded so far started the moment it was created.
    op.execute("UPDATE jobs SET started_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("driver")
        batch.drop_column("package")
        batch.drop_column("started_at")
