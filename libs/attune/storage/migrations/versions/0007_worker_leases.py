"""worker leases

Worker liveness shared by every scheduler replica (a lease each worker renews).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 14:20:00.000000
"""

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
