"""execution logs

What running actions write to stdout and stderr, stored in chunks keyed by (execution_id, seq).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 17:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "execution_logs",
        sa.Column("execution_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("stream", sa.String(length=8), nullable=False),
        sa.Column("written_at", sa.Float(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "seq"),
        comment="owner: scheduler; each execution's output, by (execution_id, seq)",
    )


def downgrade() -> None:
    op.drop_table("execution_logs")
