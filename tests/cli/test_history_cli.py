"""`attune execution list --since/--until` and `attune execution purge` against the running
cluster (both stores): the time range selects exactly the executions created in it, and a purge
deletes exactly the old ended ones and prints how many."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from attune.states import ExecutionState
from attune.storage import Database
from attune.storage.schema import executions
from attune_services.bench.history_seed import execution_row
from tests.cli.e2e import attune
from tests.integration.cluster import Cluster

pytestmark = pytest.mark.integration

DAY = 86400.0


async def test_list_by_creation_time_and_purge_older_than(cluster: Cluster) -> None:
    # 20 days old: within the cluster's own ATTUNE_RETENTION (30 days), so only the CLI purges them.
    now = time.time()
    old = [execution_row(now - 20 * DAY + i, action_ref="core.echo") for i in range(3)]
    running = execution_row(now - 20 * DAY + 5, state=ExecutionState.RUNNING)
    running["worker_id"] = None  # on no worker: the sweep leaves it alone
    db = Database(cluster.database_url)
    try:
        async with db.write() as conn:
            await conn.execute(sa.insert(executions), [*old, running])
        env = cluster.cli_env()
        listed = await attune("execution", "list", "--since", "21d", "--until", "19d", "--output", "json", env=env)
        assert listed.code == 0, listed.stderr
        assert [e["id"] for e in listed.json()["executions"]] == [r["id"] for r in reversed([*old, running])]
        iso = await attune("execution", "list", "--until", "2000-01-01T00:00:00", "--output", "json", env=env)
        assert iso.code == 0 and iso.json() == {"executions": []}, iso.stderr
        purged = await attune("execution", "purge", "--older-than", "10d", "--output", "json", env=env)
        assert purged.code == 0, purged.stderr
        assert purged.json() == {"purged": 3, "older_than_seconds": 10 * DAY}
        async with db.read() as conn:
            left = set(
                (
                    await conn.execute(sa.select(executions.c.id).where(executions.c.created_at < now - 10 * DAY))
                ).scalars()
            )
        assert left == {running["id"]}
        bad = await attune("execution", "purge", "--older-than", "soon", env=env)
        assert bad.code != 0 and "--older-than: 'soon' is not a duration" in bad.stderr
    finally:
        async with db.write() as conn:
            await conn.execute(executions.delete().where(executions.c.id == running["id"]))
        await db.close()
