"""request_log: the stored response of each mutating request that carried a request_id

A retried request returns the original result (docs/architecture.md, Interfaces). RequestExecution and CreateAction keep
a unique request_id on the row they create; RegisterPack, UpdateAction and CancelExecution create
no row of their own, so the scheduler stores their responses here (services/scheduler/
request_log.py), keyed by request_id, with the RPC's full name and a digest of the request so a
reused request_id is refused. The index on created_at serves the sweeper's prune of old rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 02:35:24.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_log",
        sa.Column("request_id", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=255), nullable=False),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
        comment="owner: scheduler; the stored response of each mutating request with a request_id",
    )
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_request_log_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_log_created_at"))
    op.drop_table("request_log")
