"""coordinator leases

Coordinator and completion replica leases: outbox commands owned by a live replica are not
taken over (issue #14).

- service_leases: one row per running replica of a kind ("coordinator", "completion"), renewed
  every third of ATTUNE_LEASE_TIME and deleted at a clean stop.
- task_runs.owner, workflow_executions.result_owner, outcome_outbox.owner: the replica that
  committed the pending command and carries it out. The recovery sweep of another replica takes
  a row over only when that replica's lease has expired (or is gone); NULL marks rows written
  before this revision, taken over as before (after a grace period).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 14:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_leases",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("replica_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "replica_id"),
        comment="owners: coordinator and completion, each its own kind's rows",
    )
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=64), nullable=True))
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("result_owner", sa.String(length=64), nullable=True))
    with op.batch_alter_table("outcome_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outcome_outbox", schema=None) as batch_op:
        batch_op.drop_column("owner")
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.drop_column("result_owner")
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_column("owner")
    op.drop_table("service_leases")
