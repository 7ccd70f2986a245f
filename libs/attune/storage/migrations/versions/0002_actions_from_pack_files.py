"""actions.from_pack_files: which actions a pack registration stored

Re-registering a pack deletes the actions its files no longer declare, but only those a pack
registration stored: an action created through CreateAction in the pack's namespace carries a
pack_digest too, so the digest alone cannot tell the two apart.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("from_pack_files", sa.Boolean(), nullable=False, server_default=sa.false()))
    _mark_rows_of_the_latest_registrations()


def downgrade() -> None:
    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.drop_column("from_pack_files")


def _mark_rows_of_the_latest_registrations() -> None:
    """Existing rows: a registration writes its pack's registered_at and each of its actions'
    updated_at from one clock reading, and nothing else writes that pair, so a row matching its
    pack's latest registration is the pack's. Anything in doubt (an action a registration stored
    and UpdateAction later changed, one an older registration left behind) stays unmarked: it is
    kept, as before this revision, rather than deleted by the next registration."""
    actions = sa.table(
        "actions",
        sa.column("pack", sa.String),
        sa.column("pack_digest", sa.String),
        sa.column("updated_at", sa.Float),
        sa.column("from_pack_files", sa.Boolean),
    )
    packs = sa.table(
        "packs", sa.column("ref", sa.String), sa.column("digest", sa.String), sa.column("registered_at", sa.Float)
    )
    latest_registration = (
        sa.select(packs.c.ref)
        .where(
            packs.c.ref == actions.c.pack,
            packs.c.digest == actions.c.pack_digest,
            packs.c.registered_at == actions.c.updated_at,
        )
        .exists()
    )
    op.execute(actions.update().where(latest_registration).values(from_pack_files=sa.true()))
