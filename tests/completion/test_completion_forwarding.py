"""Forwarding workflow children's outcomes to the coordinator through the durable outbox."""

from __future__ import annotations

import asyncio
import json
import time

import sqlalchemy as sa

from attune.common.v1 import common_pb2
from attune.grpcutil.channel import open_channel
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.storage import Database
from attune.storage.schema import outcome_outbox
from tests.completion.completiontools import CompletionServer, insert_execution
from tests.support.fakes import FakeCoordinatorService
from tests.support.polling import eventually

S = common_pb2.ExecutionState


async def outbox_ids(db: Database) -> list[str]:
    async with db.read() as conn:
        return list((await conn.execute(sa.select(outcome_outbox.c.execution_id))).scalars())


async def eventually_empty(db: Database) -> None:
    async def empty() -> bool:
        return not await outbox_ids(db)

    await eventually(empty, within=5.0, interval=0.02, what="the outbox rows to be deleted")


async def finish(completion: CompletionServer, *results: completion_pb2.ExecutionResult) -> None:
    async with open_channel(completion.address, completion.settings) as channel:
        stub = completion_pb2_grpc.CompletionServiceStub(channel)
        for r in results:
            await stub.SubmitResult(completion_pb2.SubmitResultRequest(result=r))


async def workflow_child(db: Database, *, item_index: int | None = None) -> tuple[str, str]:
    workflow_id = await insert_execution(db, runner_type="workflow", action_ref="examples.flow")
    child = await insert_execution(
        db,
        workflow_execution_id=workflow_id,
        parent_id=workflow_id,
        task_name="build",
        task_run=2,
        item_index=item_index,
        attempt=3,
    )
    return workflow_id, child


async def test_linked_outcome_is_forwarded_then_deleted(completion: CompletionServer, db: Database) -> None:
    coordinator = FakeCoordinatorService()
    server = await coordinator.serve(completion.settings.coordinator_address)
    try:
        workflow_id, child = await workflow_child(db)
        _, item_child = await workflow_child(db, item_index=4)
        plain = await insert_execution(db)
        payload = json.dumps({"stdout": "ok", "exit_code": 0}).encode()
        await finish(
            completion,
            completion_pb2.ExecutionResult(
                execution_id=child, state=S.EXECUTION_STATE_FAILED, result_json=payload, error="exit code 1"
            ),
            completion_pb2.ExecutionResult(execution_id=item_child, state=S.EXECUTION_STATE_SUCCEEDED),
            completion_pb2.ExecutionResult(execution_id=plain, state=S.EXECUTION_STATE_SUCCEEDED),
        )
        outcome = await coordinator.wait_for(child)
        assert outcome.link == common_pb2.WorkflowLink(
            workflow_execution_id=workflow_id, task_name="build", run=2, item_index=-1, attempt=3
        )
        assert (outcome.state, json.loads(outcome.result_json), outcome.error) == (
            S.EXECUTION_STATE_FAILED,
            {"stdout": "ok", "exit_code": 0},
            "exit code 1",
        )
        assert (await coordinator.wait_for(item_child)).link.item_index == 4
        await eventually_empty(db)
        assert plain not in {o.execution_id for o in coordinator.received}  # not a workflow child
        assert [o.execution_id for o in coordinator.received].count(child) == 1
    finally:
        await server.stop(None)


async def test_outcome_waits_for_the_coordinator(completion: CompletionServer, db: Database) -> None:
    """Coordinator down: the row stays (across a completion restart too) and is delivered when
    the coordinator comes up."""
    _, child = await workflow_child(db)
    await finish(completion, completion_pb2.ExecutionResult(execution_id=child, state=S.EXECUTION_STATE_SUCCEEDED))
    await asyncio.sleep(0.3)
    assert await outbox_ids(db) == [child]
    await completion.stop()
    await completion.start()
    assert await outbox_ids(db) == [child]
    coordinator = FakeCoordinatorService()
    server = await coordinator.serve(completion.settings.coordinator_address)
    try:
        # Left by the previous run: found by the poll (rows older than two poll periods).
        outcome = await coordinator.wait_for(child, within=8.0)
        assert outcome.state == S.EXECUTION_STATE_SUCCEEDED
        await eventually_empty(db)
    finally:
        await server.stop(None)


async def test_coordinator_restart_loses_nothing(completion: CompletionServer, db: Database) -> None:
    coordinator = FakeCoordinatorService()
    server = await coordinator.serve(completion.settings.coordinator_address)
    _, first = await workflow_child(db)
    await finish(completion, completion_pb2.ExecutionResult(execution_id=first, state=S.EXECUTION_STATE_SUCCEEDED))
    await coordinator.wait_for(first)
    await server.stop(None)
    _, second = await workflow_child(db)
    await finish(completion, completion_pb2.ExecutionResult(execution_id=second, state=S.EXECUTION_STATE_TIMEOUT))
    await asyncio.sleep(0.2)
    assert second in await outbox_ids(db)
    coordinator = FakeCoordinatorService()
    server = await coordinator.serve(completion.settings.coordinator_address)
    try:
        assert (await coordinator.wait_for(second)).state == S.EXECUTION_STATE_TIMEOUT
        await eventually_empty(db)
    finally:
        await server.stop(None)


async def test_stop_is_prompt_while_connected_to_the_coordinator(completion: CompletionServer, db: Database) -> None:
    """Regression: stopping the forwarder as its wake-up event fired used to hang forever."""
    coordinator = FakeCoordinatorService()
    server = await coordinator.serve(completion.settings.coordinator_address)
    try:
        _, child = await workflow_child(db)
        await finish(completion, completion_pb2.ExecutionResult(execution_id=child, state=S.EXECUTION_STATE_SUCCEEDED))
        await coordinator.wait_for(child)
        began = time.monotonic()
        await asyncio.wait_for(completion.stop(), timeout=5)
        assert time.monotonic() - began < 2
    finally:
        await server.stop(None)
