"""api tokens

Client bearer tokens for authorization (stored hashed), and who requested or changed each
execution, action and pack (the token's name; existing rows get an empty name).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 09:45:27.889308
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("token_sha256"),
        comment="owner: scheduler; client bearer tokens, hashed",
    )
    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("updated_by", sa.String(length=255), server_default="", nullable=False))

    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_by", sa.String(length=255), server_default="", nullable=False))

    with op.batch_alter_table("packs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("registered_by", sa.String(length=255), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("packs", schema=None) as batch_op:
        batch_op.drop_column("registered_by")

    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("requested_by")

    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.drop_column("updated_by")

    op.drop_table("api_tokens")
