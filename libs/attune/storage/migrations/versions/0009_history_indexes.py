"""history indexes

Indexes for browsing a long history, and for purging it in batches.

ListExecutions pages newest first by id (ids are time-ordered, attune.ids), filtered by state,
action or parent, and by a creation-time range that the query turns into an id range. With
1,000,000 rows each filtered first page must be an index range scan read backwards, not a sort
of every matching row, so each filter's index ends with id:

- ix_executions_state_id replaces ix_executions_state_created (the sweep reads active rows by
  state; it sorts those few itself);
- ix_executions_action_ref_id replaces ix_executions_action_ref;
- ix_executions_parent_id_id replaces ix_executions_parent_id (a parent's children, and the
  purge's walk down a workflow).

Replacing rather than adding keeps the number of index entries written per insert and per state
change as it was: the hot path pays nothing for the history. Purging reads old rows by the
primary key (an id range) and descendants by parent.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 14:20:00.000000
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_state_created")
        batch_op.drop_index("ix_executions_action_ref")
        batch_op.drop_index("ix_executions_parent_id")
        batch_op.create_index("ix_executions_state_id", ["state", "id"], unique=False)
        batch_op.create_index("ix_executions_action_ref_id", ["action_ref", "id"], unique=False)
        batch_op.create_index("ix_executions_parent_id_id", ["parent_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_parent_id_id")
        batch_op.drop_index("ix_executions_action_ref_id")
        batch_op.drop_index("ix_executions_state_id")
        batch_op.create_index("ix_executions_parent_id", ["parent_id"], unique=False)
        batch_op.create_index("ix_executions_action_ref", ["action_ref"], unique=False)
        batch_op.create_index("ix_executions_state_created", ["state", "created_at"], unique=False)
