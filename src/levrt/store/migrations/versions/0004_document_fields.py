"""A document's top-level keys become rows of ``document_fields``: a ``ctx.set`` writes its
own keys instead of rewriting the whole document, so its cost is its own size.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = ("job_id", "run_id", "coll")


def upgrade() -> None:
    fields = op.create_table(
        "document_fields",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=12), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("coll", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_document_fields"),
        sa.UniqueConstraint(*_KEY, "key", name="uq_document_fields_job_id_run_id_coll_key"),
    )
    documents = sa.table("documents", *(sa.column(name) for name in _KEY),
                         sa.column("data", sa.JSON()))
    conn = op.get_bind()
    for row in conn.execute(sa.select(documents)):
        rows = [{"job_id": row.job_id, "run_id": row.run_id, "coll": row.coll, "key": key,
                 "value": value} for key, value in (row.data or {}).items()]
        if rows:
            conn.execute(sa.insert(fields), rows)
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("data")


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("data", sa.JSON(), nullable=True))
    fields = sa.table("document_fields", sa.column("id"), *(sa.column(name) for name in _KEY),
                      sa.column("key"), sa.column("value", sa.JSON()))
    documents = sa.table("documents", *(sa.column(name) for name in _KEY),
                         sa.column("data", sa.JSON()))
    conn = op.get_bind()
    folded: dict[tuple, dict] = {}
    for row in conn.execute(sa.select(fields).order_by(fields.c.id)):
        folded.setdefault((row.job_id, row.run_id, row.coll), {})[row.key] = row.value
    for (job_id, run_id, coll), data in folded.items():
        conn.execute(sa.update(documents).where(
            documents.c.job_id == job_id, documents.c.run_id == run_id,
            documents.c.coll == coll).values(data=data))
    op.execute("UPDATE documents SET data = '{}' WHERE data IS NULL")
    with op.batch_alter_table("documents") as batch:
        batch.alter_column("data", existing_type=sa.JSON(), nullable=False)
    op.drop_table("document_fields")
