"""worker leases

Worker liveness shared by every scheduler replica (a lease each worker renews).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 14:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_leases",
        sa.Column("worker_id", sa.String(length=255), nullable=False),
        sa.Column("scheduler_id", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("runtimes", sa.Text(), nullable=False),
        sa.Column("connected_at", sa.Float(), nullable=False),
        sa.Column("renewed_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("worker_id"),
        comment="owner: scheduler; a lease per worker, renewed through the replica holding its stream",
    )


def downgrade() -> None:
    op.drop_table("worker_leases")
