"""executions: drop the index on worker_id, which no query uses

Lost workers are found by state (the sweep reads scheduled, running and canceling rows through
ix_executions_state_created) and workers by their session, never rows by worker_id; yet every
insert and every state change of an execution wrote an entry into this index (~0.03 ms each
measured here, on every execution's two writes).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 02:40:00.000000
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_worker_id")


def downgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.create_index("ix_executions_worker_id", ["worker_id"], unique=False)
