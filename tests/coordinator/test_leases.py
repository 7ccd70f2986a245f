"""Replica leases (attune.storage.leases) on both databases: who counts as alive, what a lapse
does, and that two replicas claiming a dead one's outbox at once split it instead of sharing it."""

from __future__ import annotations

import asyncio
import time

import sqlalchemy as sa

from attune.ids import new_id
from attune.storage import Database
from attune.storage.leases import ReplicaLease, live_replicas
from attune.storage.schema import task_runs, workflow_executions
from attune_services.coordinator.carrier import LEASE_KIND
from attune_services.coordinator.store import claim_outbox

TTL = 0.4


async def live(db: Database, kind: str) -> set[str]:
    async with db.read() as conn:
        return {row.replica_id for row in await conn.execute(live_replicas(kind, time.time()))}


async def test_a_lease_is_live_until_it_expires_or_is_released(database_url: str) -> None:
    db = Database(database_url)
    kind = f"t-{new_id()[12:]}"
    a = ReplicaLease(db, kind=kind, ttl=TTL, retry=0.05)
    b = ReplicaLease(db, kind=kind, ttl=TTL, retry=0.05)
    try:
        await a.renew()
        await b.renew()
        assert await live(db, kind) == {a.id, b.id}
        assert a.valid and a.steady
        await b.release()
        assert await live(db, kind) == {a.id}
        await asyncio.sleep(TTL * 1.5)  # a stops renewing: expired, and no longer valid itself
        assert await live(db, kind) == set()
        assert not a.valid and not a.steady
    finally:
        await db.close()


async def test_after_a_lapse_a_replica_re_reads_its_work_and_claims_nothing_for_a_lease_time(
    database_url: str,
) -> None:
    db = Database(database_url)
    lease = ReplicaLease(db, kind=f"t-{new_id()[12:]}", ttl=TTL, retry=0.05)
    regained: list[float] = []

    async def on_regained() -> None:
        regained.append(time.monotonic())

    lease.on_regained = on_regained
    try:
        await lease.renew()
        await lease.renew()
        assert lease.steady and regained == []  # renewed in time: no lapse
        await asyncio.sleep(TTL * 1.2)  # as an outage longer than the lease would
        await lease.renew()
        assert len(regained) == 1
        assert lease.valid and not lease.steady  # its peers need a lease time to renew theirs
        await asyncio.sleep(TTL * 0.6)
        await lease.renew()
        await asyncio.sleep(TTL * 0.5)
        await lease.renew()
        assert lease.steady and len(regained) == 1
    finally:
        await db.close()


async def test_two_replicas_claiming_a_dead_one_s_outbox_split_it(database_url: str) -> None:
    """Each pending row goes to exactly one claimer, also when both claim at the same moment."""
    db = Database(database_url)
    try:
        now = time.time()
        dead = f"dead-{new_id()}"  # no lease row at all: gone
        workflows = [new_id() for _ in range(20)]
        async with db.write() as conn:
            await conn.execute(
                sa.insert(workflow_executions),
                [
                    {
                        "id": w,
                        "action_ref": "tests.flow",
                        "status": "succeeded",
                        "definition_digest": "d",
                        "depth": 0,
                        "version": 1,
                        "finish_reported": False,
                        "created_at": now,
                        "finished_at": now,
                        "result_owner": dead,
                    }
                    for w in workflows
                ],
            )
            await conn.execute(
                sa.insert(task_runs),
                [
                    {
                        "workflow_id": w,
                        "run_key": f"t/{i}/-/1",
                        "seq": i,
                        "task_name": "t",
                        "run": i,
                        "attempt": 1,
                        "action_ref": "core.noop",
                        "state": "requested",
                        "request": "{}",
                        "dispatched": False,
                        "cancel_requested": False,
                        "started_at": now,
                        "owner": dead,
                    }
                    for w in workflows
                    for i in range(1, 6)
                ],
            )

        b, c = (ReplicaLease(db, kind=LEASE_KIND, ttl=60.0, retry=0.05) for _ in range(2))
        await b.renew()
        await c.renew()

        async def claim(lease: ReplicaLease) -> tuple[set[tuple[str, str]], set[str]]:
            async with db.write() as conn:
                claimed = await claim_outbox(
                    conn, owner=lease.id, kind=LEASE_KIND, now=time.time(), unowned_before=None
                )
            return {(r.workflow_id, r.run_key) for r in claimed.runs if r.workflow_id in workflows}, {
                w for w in claimed.finishes if w in workflows
            }

        (runs_b, finishes_b), (runs_c, finishes_c) = await asyncio.gather(claim(b), claim(c))
        assert not runs_b & runs_c and not finishes_b & finishes_c
        assert len(runs_b | runs_c) == 100 and finishes_b | finishes_c == set(workflows)
        assert await claim(b) == (set(), set())  # c is alive: its share stays its own
        await c.release()
        runs, finishes = await claim(b)  # c is gone: b takes its share over
        assert runs == runs_c and finishes == finishes_c
        await b.release()
    finally:
        await db.close()
