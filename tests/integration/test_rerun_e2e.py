"""Re-runs end to end (RerunExecution, `attune execution rerun`), on both databases: a plain
action with a parameter changed, and a failed workflow re-run from its failed task with new input
— the tasks before it do not run again."""

from __future__ import annotations

from collections import Counter

import grpc
import pytest

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto, struct_from_dict
from attune.ids import new_id
from tests.cli.e2e import attune
from tests.integration.cluster import Cluster


def _tasks(reply: execution_pb2.GetExecutionResponse) -> Counter[str]:
    return Counter(child.link.task_name for child in reply.children)


async def test_workflow_rerun_from_the_failed_task_keeps_what_ran_before(cluster: Cluster) -> None:
    original = await cluster.run("examples.rerun", {"release": "2.5"})
    assert execution_state_from_proto(original.execution.state) == "failed"
    assert _tasks(original) == {"build": 1, "deploy": 2}  # the run and its one retry

    # The CLI, as an operator would: from the failed task, with new input for it.
    ran = await attune(
        "execution", "rerun", original.execution.id,
        "--from-task", "deploy", "--task-input", "deploy.succeed_on_attempt=1",
        "--output", "json", env=cluster.cli_env(),
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    doc = ran.json()
    assert doc["rerun_of"] == original.execution.id and doc["action_ref"] == "examples.rerun"

    rerun = await cluster.wait_terminal(doc["id"])
    assert execution_state_from_proto(rerun.execution.state) == "succeeded", rerun.execution.error
    assert rerun.execution.rerun_of == original.execution.id
    # build did not run again; its published artifact came from the original run
    assert _tasks(rerun) == {"deploy": 1, "announce": 1}
    assert dict_from_struct(rerun.execution.result) == {"succeeded": True, "artifact": "artifact-2.5", "attempts": 1}
    [deploy] = [c for c in rerun.children if c.link.task_name == "deploy"]
    assert dict_from_struct(deploy.parameters)["succeed_on_attempt"] == 1
    # the original is left as it was
    again = await cluster.wait_terminal(original.execution.id)
    assert _tasks(again) == {"build": 1, "deploy": 2}


async def test_refusals_name_why(cluster: Cluster) -> None:
    failed = await cluster.run("examples.rerun")
    with pytest.raises(grpc.RpcError) as never_ran:
        await cluster.executions.RerunExecution(
            execution_pb2.RerunExecutionRequest(id=failed.execution.id, from_tasks=["announce"]), timeout=10
        )
    assert never_ran.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "announce" in (never_ran.value.details() or "") and "never ran" in (never_ran.value.details() or "")

    sleeping = await cluster.request("core.sleep", {"seconds": 30})
    try:
        with pytest.raises(grpc.RpcError) as unfinished:
            await cluster.executions.RerunExecution(execution_pb2.RerunExecutionRequest(id=sleeping.id), timeout=10)
        assert unfinished.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "ended" in (unfinished.value.details() or "")
    finally:
        await cluster.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=sleeping.id), timeout=10)

    echoed = await cluster.run("core.echo", {"message": "first"})
    with pytest.raises(grpc.RpcError) as plain:
        await cluster.executions.RerunExecution(
            execution_pb2.RerunExecutionRequest(id=echoed.execution.id, from_tasks=["echo"]), timeout=10
        )
    assert plain.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a workflow" in (plain.value.details() or "")


async def test_plain_action_rerun_with_a_parameter_changed_is_idempotent(cluster: Cluster) -> None:
    original = await cluster.run("core.echo", {"message": "first"})
    request = execution_pb2.RerunExecutionRequest(
        id=original.execution.id, parameters=struct_from_dict({"message": "second"}), request_id=new_id()
    )
    first = (await cluster.executions.RerunExecution(request, timeout=10)).execution
    retried = (await cluster.executions.RerunExecution(request, timeout=10)).execution
    assert first.id == retried.id != original.execution.id
    done = await cluster.wait_terminal(first.id)
    assert done.execution.rerun_of == original.execution.id and done.execution.action_ref == "core.echo"
    assert execution_state_from_proto(done.execution.state) == "succeeded"
    assert dict_from_struct(done.execution.result)["stdout"] == "second\n"


async def test_rerun_survives_a_coordinator_sigkill(cluster: Cluster) -> None:
    """The re-run's tasks and new input are stored with its execution: a coordinator killed while
    the re-run is handed over (or starting) picks it up again after a restart, exactly once."""
    original = await cluster.run("examples.rerun", {"release": "3.0"})
    request = execution_pb2.RerunExecutionRequest(
        id=original.execution.id,
        from_tasks=["deploy"],
        task_inputs=[execution_pb2.TaskInput(task="deploy", input=struct_from_dict({"succeed_on_attempt": 1}))],
        request_id=new_id(),
    )
    rerun = (await cluster.executions.RerunExecution(request, timeout=10)).execution
    cluster.kill("coordinator")
    await cluster.start_service("coordinator")
    done = await cluster.wait_terminal(rerun.id, timeout=60)
    assert execution_state_from_proto(done.execution.state) == "succeeded", done.execution.error
    assert _tasks(done) == {"deploy": 1, "announce": 1}
    assert dict_from_struct(done.execution.result) == {"succeeded": True, "artifact": "artifact-3.0", "attempts": 1}
