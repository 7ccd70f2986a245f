"""coordinator outbox: partial indexes holding only commands still to carry out

Every coordinator replica now re-reads its outbox periodically (the recovery sweep of
services/coordinator/carrier.py) to take over commands a dead replica committed but never
carried out. Task runs and workflow rows are kept forever, so those reads must not scan them:

- ix_task_runs_outbox: task runs with a child still to request or a cancel still to deliver,
  keyed by started_at (the sweep's age bound). It replaces ix_task_runs_pending, a full index on
  the boolean `dispatched` whose only reader was the start-up recovery; nothing indexed the
  pending cancels at all.
- ix_workflow_executions_unreported: finished workflows whose result is not acknowledged yet,
  keyed by finished_at.

The predicates are the expressions of attune.storage.schema (TASK_RUN_COMMAND_PENDING,
WORKFLOW_RESULT_UNREPORTED), rendered the same way as the queries that use them: SQLite uses a
partial index only when the query repeats its predicate.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_task_runs = sa.table(
    "task_runs",
    sa.column("dispatched", sa.Boolean),
    sa.column("cancel_requested", sa.Boolean),
    sa.column("finished_at", sa.Float),
)
_workflows = sa.table(
    "workflow_executions", sa.column("finish_reported", sa.Boolean), sa.column("finished_at", sa.Float)
)
_COMMAND_PENDING = sa.or_(
    _task_runs.c.dispatched.is_(False),
    sa.and_(_task_runs.c.cancel_requested.is_(True), _task_runs.c.finished_at.is_(None)),
)
_RESULT_UNREPORTED = sa.and_(_workflows.c.finish_reported.is_(False), _workflows.c.finished_at.is_not(None))


def upgrade() -> None:
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_task_runs_pending")
        batch_op.create_index(
            "ix_task_runs_outbox",
            ["started_at"],
            unique=False,
            postgresql_where=_COMMAND_PENDING,
            sqlite_where=_COMMAND_PENDING,
        )
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_workflow_executions_unreported",
            ["finished_at"],
            unique=False,
            postgresql_where=_RESULT_UNREPORTED,
            sqlite_where=_RESULT_UNREPORTED,
        )


def downgrade() -> None:
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.drop_index("ix_workflow_executions_unreported")
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_task_runs_outbox")
        batch_op.create_index("ix_task_runs_pending", ["dispatched"], unique=False)
