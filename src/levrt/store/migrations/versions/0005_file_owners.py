"""Uploaded files belong to their uploaders: ``file_owners`` holds (digest, user) for each
upload of a task's file, so a digest only works for those who uploaded its bytes. Files
uploaded before have no owner: nobody's task can use them any more.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-30 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "file_owners",
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["digest"], ["files.digest"], name="fk_file_owners_digest_files"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_file_owners_user_id_users"),
        sa.PrimaryKeyConstraint("digest", "user_id", name="pk_file_owners"),
    )


def downgrade() -> None:
    op.drop_table("file_owners")
