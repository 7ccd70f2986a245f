"""concurrency policies

An action may declare `concurrency: {limit, key, on_limit}`; the scheduler stores it on the action
(`actions.concurrency`, JSON) and each execution of such an action carries its rendered key
(`executions.concurrency_key`). The slots of a key are its executions in a dispatched state, so
they are released when those end and survive any scheduler's death: the partial index counts
them without touching the rows of actions with no policy.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 18:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("concurrency", sa.Text, nullable=True))
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("concurrency_key", sa.String(255), nullable=True))
    op.create_index(
        "ix_executions_concurrency",
        "executions",
        ["action_ref", "concurrency_key", "state"],
        unique=False,
        postgresql_where=sa.text("concurrency_key IS NOT NULL"),
        sqlite_where=sa.text("concurrency_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_executions_concurrency", table_name="executions")
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("concurrency_key")
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("concurrency")
