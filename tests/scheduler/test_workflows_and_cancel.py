"""Workflow hand-off to the coordinator, cancel paths and WatchExecution."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_from_proto
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune.workflow.v1 import workflow_pb2
from tests.scheduler.harness import Cluster, FakeWorker


@pytest.fixture
async def examples(core: Cluster) -> Cluster:
    await core.register_bundled("examples")
    return core


async def test_workflow_action_goes_to_the_coordinator_never_to_a_worker(examples: Cluster) -> None:
    # Even a worker claiming every runtime, "workflow" included, never receives a workflow.
    greedy = FakeWorker(examples, "greedy", ["noop", "shell", "python", "nodejs", "workflow"])
    await greedy.connect()
    examples.coordinator.unavailable_calls = 2  # the hand-off is retried until it is taken
    execution = await examples.request("examples.single_echo", {"message": "hello"})
    running = await examples.wait_state(execution.id, "running")
    assert running.started_at.seconds > 0
    assert examples.coordinator.start_calls >= 3
    (start,) = examples.coordinator.started
    assert (start.execution_id, start.action_ref, start.depth) == (execution.id, "examples.single_echo", 0)
    assert start.workflow_source == "actions/workflows/single_echo.workflow.yaml"
    assert "core.echo" in start.workflow_yaml
    assert json.loads(start.parameters_json) == {"message": "hello"}
    await asyncio.sleep(0.2)
    assert greedy.assignments == []
    await greedy.disconnect()


async def test_workflow_queries_are_forwarded_with_child_states(examples: Cluster) -> None:
    workflow = await examples.request("examples.single_echo")
    await examples.wait_state(workflow.id, "running")
    child = await examples.request("core.noop")
    examples.coordinator.children[workflow.id] = [child.id]
    worker = FakeWorker(examples, "w", ["noop"])
    await worker.connect()
    await worker.wait_for(lambda: len(worker.assignments) == 1)
    await worker.started(child.id)
    await examples.wait_state(child.id, "running")
    run = (await examples.workflows.GetWorkflowRun(workflow_pb2.GetWorkflowRunRequest(execution_id=workflow.id))).run
    assert [execution_state_from_proto(t.state) for t in run.task_runs] == ["running"]
    listed = await examples.workflows.ListWorkflowRuns(workflow_pb2.ListWorkflowRunsRequest())
    assert [r.execution_id for r in listed.runs] == [workflow.id]
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await examples.workflows.GetWorkflowRun(workflow_pb2.GetWorkflowRunRequest(execution_id="nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in (missing.value.details() or "")
    # The hand-off is the coordinator's own: the scheduler does not serve CoordinatorService.
    with pytest.raises(grpc.aio.AioRpcError) as unimplemented:
        await coordinator_pb2_grpc.CoordinatorServiceStub(examples.channel).StartWorkflows(
            coordinator_pb2.StartWorkflowsRequest()
        )
    assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED
    await worker.disconnect()


async def test_cancel_running_workflow_forwards_to_the_coordinator(examples: Cluster) -> None:
    workflow = await examples.request("examples.single_echo")
    await examples.wait_state(workflow.id, "running")
    response = await examples.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=workflow.id))
    assert execution_state_from_proto(response.execution.state) == "canceling"
    assert examples.coordinator.cancelled == [workflow.id]
    again = await examples.workflows.CancelWorkflow(workflow_pb2.CancelWorkflowRequest(execution_id=workflow.id))
    assert again.run.state == workflow_pb2.WORKFLOW_STATE_CANCELING
    assert examples.coordinator.cancelled == [workflow.id, workflow.id]


async def test_cancel_before_dispatch_is_cancelled_by_completion(core: Cluster) -> None:
    execution = await core.request("core.noop")
    response = await core.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=execution.id))
    assert execution_state_from_proto(response.execution.state) == "cancelled"
    worker = FakeWorker(core, "w", ["noop"])
    await worker.connect()
    await asyncio.sleep(0.2)
    assert worker.assignments == []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await core.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=execution.id))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.details() == f"execution {execution.id} already cancelled"
    await worker.disconnect()


async def test_cancel_on_a_worker_sends_cancellations_and_watch_ends_at_terminal(core: Cluster) -> None:
    worker = FakeWorker(core, "w", ["shell"])
    await worker.connect()
    execution = await core.request("core.echo", {"message": "hi"})
    states: list[str] = []

    async def watch() -> None:  # the stream ends by itself once the execution is terminal
        async for snapshot in core.executions.WatchExecution(execution_pb2.WatchExecutionRequest(id=execution.id)):
            states.append(execution_state_from_proto(snapshot.execution.state))

    watcher = asyncio.create_task(watch())
    await worker.wait_for(lambda: len(worker.assignments) == 1)
    await worker.started(execution.id)
    await core.wait_state(execution.id, "running")
    response = await core.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=execution.id))
    assert execution_state_from_proto(response.execution.state) == "canceling"
    await worker.wait_for(lambda: execution.id in worker.cancellations)
    repeated = await core.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=execution.id))
    assert execution_state_from_proto(repeated.execution.state) == "canceling"  # idempotent
    await core.submit_result(execution.id, "cancelled", error="cancelled on request")
    await worker.released(execution.id)
    await asyncio.wait_for(watcher, timeout=5)
    assert states[-1] == "cancelled"
    assert states == sorted(set(states), key=states.index)  # each snapshot is a change
    assert "canceling" in states
    await worker.disconnect()


async def test_watch_shows_children_and_unknown_id_is_not_found(core: Cluster) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in core.executions.WatchExecution(execution_pb2.WatchExecutionRequest(id="missing")):
            pass
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    execution = await core.request("core.noop")
    snapshots = []

    async def watch() -> None:
        async for snapshot in core.executions.WatchExecution(execution_pb2.WatchExecutionRequest(id=execution.id)):
            snapshots.append(execution_state_from_proto(snapshot.execution.state))

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.1)
    assert snapshots == ["scheduling"]
    await core.submit_result(execution.id, "succeeded")
    await asyncio.wait_for(watcher, timeout=5)
    assert snapshots == ["scheduling", "succeeded"]
