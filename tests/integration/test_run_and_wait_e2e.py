"""RunExecution and RunExecutions (services/scheduler/run_wait.py) on the real services, both
stores: request and wait in one call, with RequestExecution's validation, idempotency and errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct, duration, execution_state_from_proto, struct_from_dict
from attune.grpcutil.errors import violations_of
from attune.ids import new_id
from tests.integration.cluster import Cluster


def run_request(ref: str, params: dict[str, Any] | None = None, **kw: Any) -> execution_pb2.RunExecutionRequest:
    wait = kw.pop("wait", None)
    request = execution_pb2.RequestExecutionRequest(action_ref=ref, parameters=struct_from_dict(params or {}), **kw)
    return execution_pb2.RunExecutionRequest(request=request, wait=duration(wait))


def state(execution: execution_pb2.Execution) -> str:
    return execution_state_from_proto(execution.state)


async def test_one_call_answers_with_the_ended_execution_and_its_result(cluster: Cluster) -> None:
    answer = await cluster.executions.RunExecution(run_request("core.echo", {"message": "one call"}), timeout=30)
    assert answer.ended and state(answer.execution) == "succeeded", answer.execution.error
    assert dict_from_struct(answer.execution.result)["stdout"] == "one call\n"
    again = await cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=answer.execution.id))
    assert again.execution.result == answer.execution.result  # as GetExecution shows it
    assert again.execution.finished_at == answer.execution.finished_at


async def test_a_workflow_runs_to_its_end_in_one_call(cluster: Cluster) -> None:
    answer = await cluster.executions.RunExecution(run_request("examples.parallel_join"), timeout=60)
    assert answer.ended and state(answer.execution) == "succeeded", answer.execution.error
    assert answer.execution.runner_type == "workflow"


async def test_refusals_are_those_of_request_execution(cluster: Cluster) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await cluster.executions.RunExecution(run_request("core.nonesuch"), timeout=10)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await cluster.executions.RunExecution(run_request("core.sleep", {"seconds": "long"}), timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations_of(bad.value)] == ["parameters.seconds"]


async def test_a_retried_request_id_answers_with_the_original_execution(cluster: Cluster) -> None:
    request_id = new_id()
    first = await cluster.executions.RunExecution(run_request("core.noop", request_id=request_id), timeout=30)
    second = await cluster.executions.RunExecution(run_request("core.noop", request_id=request_id), timeout=30)
    assert second.ended and second.execution.id == first.execution.id
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await cluster.executions.RunExecution(run_request("core.echo", request_id=request_id), timeout=10)
    assert other.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_wait_answers_before_the_end_and_the_execution_goes_on(cluster: Cluster) -> None:
    answer = await cluster.executions.RunExecution(run_request("core.sleep", {"seconds": 1.5}, wait=0.2), timeout=10)
    assert not answer.ended and state(answer.execution) not in ("succeeded", "failed")
    ended = await cluster.wait_terminal(answer.execution.id)
    assert state(ended.execution) == "succeeded"


async def test_a_stream_answers_each_request_as_it_ends_with_its_position(cluster: Cluster) -> None:
    refs = ["core.sleep", *["core.noop"] * 8, "core.nonesuch"]
    params: list[dict[str, Any]] = [{"seconds": 1.0}, *[{}] * 9]

    async def requests() -> AsyncIterator[execution_pb2.RunExecutionsRequest]:
        for ref, p in zip(refs, params, strict=True):
            yield execution_pb2.RunExecutionsRequest(request=run_request(ref, p).request)

    answers = [a async for a in cluster.executions.RunExecutions(requests(), timeout=60)]
    assert sorted(a.index for a in answers) == list(range(len(refs)))
    by_index = {a.index: a for a in answers}
    refused = by_index[len(refs) - 1]
    assert refused.error.code == "NOT_FOUND" and "core.nonesuch" in refused.error.message
    assert not refused.HasField("execution")
    for index in range(len(refs) - 1):
        assert by_index[index].ended and state(by_index[index].execution) == "succeeded"
    assert answers[-1].index == 0, "the sleep ends last: answers come as executions end"


async def test_a_client_that_goes_away_leaves_the_execution_running(cluster: Cluster) -> None:
    call = cluster.executions.RunExecution(run_request("core.sleep", {"seconds": 0.5}, request_id=(rid := new_id())))
    await asyncio.sleep(0.2)
    call.cancel()
    again = await cluster.executions.RunExecution(
        run_request("core.sleep", {"seconds": 0.5}, request_id=rid), timeout=30
    )
    assert again.ended and state(again.execution) == "succeeded"
