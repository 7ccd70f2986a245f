"""registry generation

One row counting registry writes: every write to packs or actions (RegisterPack, CreateAction,
UpdateAction, DeleteAction, DeletePack) adds one in the same transaction. Each scheduler replica
reads it about once a second and forgets its cached actions when it has moved, so a change made
through another replica is seen without entries expiring on a clock
(services/scheduler/actions.py, ActionCache).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 20:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "registry_generation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        comment="owner: scheduler; counts registry writes, read by every replica's action cache",
    )
    op.bulk_insert(table, [{"id": 1, "generation": 0}])


def downgrade() -> None:
    op.drop_table("registry_generation")
