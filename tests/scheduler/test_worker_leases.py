"""Two scheduler replicas on one database: worker liveness comes from the shared leases, and a
cancel or a request reaching either replica is carried out by the one holding the worker."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_from_proto
from attune.grpcutil.server import start_server, stop_server
from attune.storage.schema import worker_leases
from attune_services.scheduler.app import SchedulerApp
from tests.scheduler.harness import TEST_TIMINGS, Cluster, FakeWorker, connect_to
from tests.support.polling import eventually

GRACE = TEST_TIMINGS["worker_grace"]


@asynccontextmanager
async def second_replica(cluster: Cluster) -> AsyncIterator[Cluster]:
    """Another scheduler on the same database, with the same peers, seen through its own address."""
    replica = SchedulerApp(cluster.settings)
    handle = await start_server(replica, address="127.0.0.1:0", settings=cluster.settings)
    try:
        async with connect_to(cluster, handle.port) as other:
            yield dataclasses.replace(other, scheduler=replica)
    finally:
        await stop_server(replica, handle, grace=1.0)


async def lease_holder(cluster: Cluster, worker_id: str) -> str | None:
    """The scheduler id in the worker's lease."""
    async with cluster.scheduler.db.read() as conn:
        return (
            await conn.execute(sa.select(worker_leases.c.scheduler_id).where(worker_leases.c.worker_id == worker_id))
        ).scalar()


async def state_of(cluster: Cluster, execution_id: str) -> str:
    return execution_state_from_proto((await cluster.get(execution_id)).execution.state)


async def running_on(cluster: Cluster, worker: FakeWorker) -> str:
    """A core.echo execution assigned to `worker` and reported started."""
    execution = await cluster.request("core.echo", {"message": "long"})
    await worker.wait_for(lambda: execution.id in {a.execution_id for a in worker.assignments})
    await worker.started(execution.id)
    await cluster.wait_state(execution.id, "running")
    return execution.id


async def test_a_worker_on_one_replica_is_not_lost_to_the_other(core: Cluster) -> None:
    async with second_replica(core) as other:
        worker = FakeWorker(core, "w1", ["shell"])
        await worker.connect()
        execution_id = await running_on(core, worker)
        assert await lease_holder(core, "w1") == core.scheduler.scheduler_id
        # Many sweeps of both replicas, well past the grace; the other never sees the worker.
        await asyncio.sleep(GRACE * 3)
        assert await state_of(other, execution_id) == "running"
        await worker.disconnect()


async def test_a_worker_whose_lease_expired_is_abandoned_by_any_replica(core: Cluster) -> None:
    async with second_replica(core) as other:
        worker = FakeWorker(core, "w1", ["shell"])
        await worker.connect()
        execution_id = await running_on(core, worker)
        await worker.disconnect()
        lost_at = time.monotonic()
        await core.stop_scheduler()  # the replica that held it is gone: only the other can act
        abandoned = await other.wait_state(execution_id, "abandoned", timeout=GRACE * 20)
        assert time.monotonic() - lost_at >= GRACE * 0.5  # not at once: once the lease expired
        assert abandoned.error == "worker w1 lost"


async def test_a_worker_that_moves_to_the_other_replica_keeps_its_executions(core: Cluster) -> None:
    async with second_replica(core) as other:
        worker = FakeWorker(core, "w1", ["shell"])
        await worker.connect()
        execution_id = await running_on(core, worker)
        await worker.disconnect()
        moved = FakeWorker(other, "w1", ["shell"])
        await moved.connect(execution_ids=[execution_id])  # its Hello lists what it still runs
        assert await lease_holder(core, "w1") == other.scheduler.scheduler_id
        await asyncio.sleep(GRACE * 3)
        assert await state_of(core, execution_id) == "running"
        await moved.disconnect()


async def test_a_cancel_at_one_replica_reaches_a_worker_on_the_other(core: Cluster) -> None:
    async with second_replica(core) as other:
        worker = FakeWorker(core, "w1", ["shell"])
        await worker.connect()
        execution_id = await running_on(core, worker)
        asked = time.monotonic()
        await other.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=execution_id))
        await worker.wait_for(lambda: execution_id in worker.cancellations, timeout=5)
        # Relayed through the database within a second, not after the grace or a sweep.
        assert time.monotonic() - asked < 1.5
        await worker.disconnect()


async def test_work_requested_at_a_replica_without_workers_runs_on_the_other(core: Cluster) -> None:
    async with second_replica(core) as other:
        worker = FakeWorker(core, "w1", ["shell"])
        await worker.connect()
        await asyncio.sleep(0.3)  # the other replica's sweep has read the lease
        # The other replica has no worker: the runtime is offered on the first one, so the
        # schedule timeout does not fail it there, and the first one dispatches it.
        execution = await other.request("core.echo", {"message": "via the other"})
        await worker.wait_for(lambda: execution.id in {a.execution_id for a in worker.assignments}, timeout=5)
        await asyncio.sleep(TEST_TIMINGS["schedule_timeout"] * 2)
        assert await state_of(other, execution.id) == "scheduled"
        # ... and the other replica stops holding it in memory.
        await eventually(
            lambda: execution.id not in {p.id for p in other.scheduler.dispatcher.waiting()},
            within=10,
            what="the other replica to drop the row dispatched elsewhere",
        )
        await worker.disconnect()


async def test_a_stale_stream_is_closed_and_what_the_worker_did_not_list_is_abandoned(core: Cluster) -> None:
    async with second_replica(core) as other:
        stale = FakeWorker(core, "w1", ["shell"])
        await stale.connect()
        execution_id = await running_on(core, stale)
        # The worker reconnects to the other replica while its old stream looks open (a cut
        # network): its Hello lists nothing, so it no longer runs the execution.
        fresh = FakeWorker(other, "w1", ["shell"])
        await fresh.connect()
        assert await lease_holder(core, "w1") == other.scheduler.scheduler_id
        # The first replica closes its stale stream at its next sweep: it lost the lease.
        await eventually(
            lambda: "w1" not in core.scheduler.dispatcher.sessions, within=5, what="the stale stream to close"
        )
        abandoned = await other.wait_state(execution_id, "abandoned", timeout=GRACE * 20)
        assert abandoned.error == "worker w1 lost"
        await fresh.disconnect()
        await stale.disconnect()
