"""Recovery within seconds (issue #14), between the completion service and the coordinator:
outcomes waiting while the coordinator is away reach it within about a second of it coming back
(a new stream waits for the channel to connect), not after a resend timer of
30 s or more. And completion replicas share the outbox by lease: a live replica's rows stay its
own however long the coordinator is away; a stopped replica's are taken over.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import time
from operator import contains
from typing import Any

import pytest
import sqlalchemy as sa

from attune.common.v1 import common_pb2
from attune.config import Settings
from attune.grpcutil.channel import open_channel
from attune.grpcutil.server import RpcContext
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.storage import Database
from attune.storage.schema import outcome_outbox
from attune_services.worker.results import ResultSender
from tests.completion.completiontools import CompletionServer, insert_execution
from tests.completion.test_completion_forwarding import eventually_empty, finish, workflow_child
from tests.support.fakes import FakeCoordinatorService
from tests.support.polling import eventually

S = common_pb2.ExecutionState
ROUNDS = 3
AWAY_S = 1.5
#: Generous for a loaded machine; the figure measured is printed (the goal is a 2 s median).
DELIVERED_WITHIN_S = 5.0


# The stream does not depend on the database: measured once, on PostgreSQL.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_outcomes_reach_a_returning_coordinator_within_seconds(settings: Settings, db: Database) -> None:
    """Production timings (the default retry interval): the coordinator is away for a few
    seconds while an outcome is stored; measured from its return to the outcome's arrival."""
    completion = CompletionServer(settings.replace(retry_interval=Settings().retry_interval))
    await completion.start()
    figures = []
    try:
        for _ in range(ROUNDS):
            _, child = await workflow_child(db)
            await finish(completion, result_of(child))
            await asyncio.sleep(AWAY_S)
            coordinator = FakeCoordinatorService()
            back = time.monotonic()
            server = await coordinator.serve(completion.settings.coordinator_address)
            try:
                await coordinator.wait_for(child, within=30)
                figures.append(time.monotonic() - back)
                await eventually_empty(db)
            finally:
                await server.stop(None)
    finally:
        await completion.stop()
    median = statistics.median(figures)
    print(f"outcome delivered {median:.2f} s (median; {', '.join(f'{f:.2f}' for f in figures)}) after the coordinator")
    assert median < DELIVERED_WITHIN_S, figures


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_worker_s_results_reach_a_returning_completion_service_within_seconds(
    settings: Settings, db: Database
) -> None:
    """The worker's result stream (services/worker/results.py) waits for the channel rather than
    backing off on its own: a result held while the completion service was down is acked soon
    after it is back. Production retry interval; measured from the restart to the ack."""
    settings = settings.replace(retry_interval=Settings().retry_interval)
    completion = CompletionServer(settings)
    await completion.start()
    channel = open_channel(completion.address, settings)
    acked: list[str] = []
    sender = ResultSender(completion_pb2_grpc.CompletionServiceStub(channel), settings, on_acked=acked.extend)
    sender.start()
    figures = []
    try:
        for _ in range(ROUNDS):
            await completion.stop()
            execution_id = await insert_execution(db)
            sender.add(result_of(execution_id))
            await asyncio.sleep(AWAY_S)
            back = time.monotonic()
            await completion.start()
            await eventually(functools.partial(contains, acked, execution_id), within=30, what="the ack")
            figures.append(time.monotonic() - back)
    finally:
        await sender.close()
        await channel.close()
        await completion.stop()
    median = statistics.median(figures)
    print(f"result acked {median:.2f} s (median; {', '.join(f'{f:.2f}' for f in figures)}) after the restart")
    assert median < DELIVERED_WITHIN_S, figures


class SlowCoordinator(FakeCoordinatorService):
    """A coordinator that receives outcomes and acknowledges none (it is slow to apply them)."""

    async def ReportOutcomes(self, request_iterator: Any, context: RpcContext) -> Any:
        async for request in request_iterator:
            self.received.extend(request.outcomes)
        if False:  # an async generator that yields nothing
            yield coordinator_pb2.ReportOutcomesResponse()


async def test_a_live_replica_keeps_its_outbox_rows_and_a_stopped_one_s_are_taken_over(
    settings: Settings, db: Database
) -> None:
    """Two completion replicas; the coordinator takes outcomes but acknowledges none for longer
    than many polls and several lease times: B leaves A's row alone (it never sends it). Once A
    stops, B takes the row over and sends it."""
    settings = settings.replace(lease_time=1.5)
    coordinator = SlowCoordinator()
    server = await coordinator.serve(settings.coordinator_address)
    a, b = CompletionServer(settings), CompletionServer(settings)
    await a.start()
    await b.start()
    try:
        assert a.app is not None and b.app is not None
        b_id = b.app.lease.id
        _, child = await workflow_child(db)
        await finish(a, result_of(child))
        await coordinator.wait_for(child)
        await asyncio.sleep(3 * settings.lease_time)
        assert await owner_of(db, child) == a.app.lease.id
        assert [o.execution_id for o in coordinator.received].count(child) == 1  # A's only
        await a.stop()  # its lease is released: B takes the row over at its next claim
        await eventually(lambda: owner_is(db, child, b_id), within=10, what="B to take the row over")
        await eventually(
            lambda: [o.execution_id for o in coordinator.received].count(child) == 2,
            within=10,
            what="B to send the row it took over",
        )
    finally:
        await a.stop()
        await b.stop()
        await server.stop(None)


async def test_a_replica_restarted_with_its_id_resumes_its_rows_at_once(settings: Settings, db: Database) -> None:
    """A replica dies without releasing its lease (as SIGKILL leaves it) and starts again with
    the same ATTUNE_REPLICA_ID: its rows are its own, sent at once, not after the lease time."""
    settings = settings.replace(replica_id="completion-1", lease_time=60.0)
    first = CompletionServer(settings)
    await first.start()
    assert first.app is not None
    _, child = await workflow_child(db)
    await finish(first, result_of(child))
    await first.app.lease.close(release=False)
    await first.stop()
    second = CompletionServer(settings)
    await second.start()
    coordinator = FakeCoordinatorService()
    server = await coordinator.serve(settings.coordinator_address)
    try:
        await coordinator.wait_for(child, within=10)  # well within the lease time
        await eventually_empty(db)
    finally:
        await second.stop()
        await server.stop(None)


def result_of(execution_id: str) -> completion_pb2.ExecutionResult:
    return completion_pb2.ExecutionResult(execution_id=execution_id, state=S.EXECUTION_STATE_SUCCEEDED)


async def owner_of(db: Database, execution_id: str) -> str | None:
    o = outcome_outbox
    async with db.read() as conn:
        return (await conn.execute(sa.select(o.c.owner).where(o.c.execution_id == execution_id))).scalar()


async def owner_is(db: Database, execution_id: str, owner: str) -> bool:
    return await owner_of(db, execution_id) == owner
