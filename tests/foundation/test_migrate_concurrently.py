"""Concurrent upgrades of one PostgreSQL database all succeed and migrate it once.

Every scheduler, coordinator and completion pod of a release runs the migrations before it starts
(deploy/k8s/scheduler.yaml), so several upgrades of one database run at the same time: an advisory
lock in the migrations' env.py lets one migrate while the others wait and then find the schema at
head. Without it, the losers fail on a table or version row the winner created.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from attune.storage.migrate import alembic_config
from tests.support.databases import create_postgres_database, drop_postgres_database

pytestmark = pytest.mark.postgres

UPGRADES = 4
# Enough for every process to import attune.storage.migrate on a loaded 2-core machine.
STARTUP_SECONDS = 6.0


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database with no schema (migrated, then downgraded to base)."""
    url = create_postgres_database("attune_concurrent")
    command.downgrade(alembic_config(url), "base")
    yield url
    drop_postgres_database(url)


# Each process imports first, then waits for a common start time: started one after another,
# interpreter start-up alone would space them out enough to hide the race (seen: without the lock,
# 3 of 4 upgrades started together fail; started plainly, none did).
UPGRADE_AT = (
    "import sys, time; from attune.storage.migrate import upgrade; "
    "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); upgrade(sys.argv[1])"
)


def test_concurrent_upgrades_of_one_database_all_succeed(empty_postgres_url: str) -> None:
    argv = [sys.executable, "-c", UPGRADE_AT, empty_postgres_url, str(time.time() + STARTUP_SECONDS)]
    processes = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(UPGRADES)]
    errors = [process.communicate(timeout=120)[1].decode() for process in processes]
    failed = [
        err.strip().splitlines()[-1:] for process, err in zip(processes, errors, strict=True) if process.returncode
    ]
    assert not failed, f"{len(failed)} of {UPGRADES} concurrent upgrades failed: {failed}"
    head = ScriptDirectory.from_config(alembic_config(empty_postgres_url)).get_current_head()
    assert asyncio.run(_versions(empty_postgres_url)) == [head]


async def _versions(url: str) -> list[str]:
    """The rows of alembic_version."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return list((await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars())
    finally:
        await engine.dispose()
