"""reruns

A re-run (RerunExecution) is a new execution linked to the one it re-runs: `rerun_of` names the
original; `rerun_from`, for a workflow re-run from some of its tasks, holds those tasks and their
new input as JSON (`{"tasks": [...], "inputs": {task: {key: value}}}`), read when the workflow is
handed to the coordinator.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 18:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rerun_of", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("rerun_from", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("rerun_from")
        batch_op.drop_column("rerun_of")
