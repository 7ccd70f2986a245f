"""coordinator leases

Coordinator replica leases: outbox commands owned by a live replica are not taken over.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 14:20:00.000000
"""

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
