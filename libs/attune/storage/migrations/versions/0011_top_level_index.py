"""top-level executions index

ListExecutions lists top-level executions (parent_id IS NULL) by default, newest first. Neither
PostgreSQL nor the primary key can give those rows in id order without reading past children: a
btree on (parent_id, id) does not deliver `IS NULL` rows in id order to PostgreSQL's planner, and
the primary key read backwards skips every child of the recent fan-outs (100,000 for one wide
with_items). A partial index on id over top-level rows alone makes the default first page a
range scan of top-level rows. Children, the bulk of the inserts, write no entry in it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 17:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_executions_top_level_id",
        "executions",
        ["id"],
        unique=False,
        postgresql_where=sa.text("parent_id IS NULL"),
        sqlite_where=sa.text("parent_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_executions_top_level_id", table_name="executions")
