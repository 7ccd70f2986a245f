"""Alembic environment: runs migrations through the async engine on either database."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from attune.storage.schema import metadata

target_metadata = metadata
# The PostgreSQL advisory lock key that serializes concurrent upgrades (any constant of our own).
MIGRATION_LOCK_ID = 0x617474756E65  # "attune"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several processes may upgrade at once (every pod of a release migrates first, see
            # deploy/k8s/scheduler.yaml): the first holds this lock until its migrations commit;
            # the others then read the version it wrote and find nothing left to do.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
        context.run_migrations()


async def _main() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None  # always set by attune.storage.migrate.alembic_config
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


asyncio.run(_main())
