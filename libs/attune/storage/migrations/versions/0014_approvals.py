"""approvals: no schema change

Approvals (`core.ask`, services/scheduler/asks.py) need none: the new state `pending` is one more
value of `executions.state` (a string column), an ask's deadline is read from its `timeout`
column and parameters, and its answer is stored as its result by the completion service. The
revision stays so that the chain of revisions is the same in every build.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 18:30:00.000000
"""

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
