"""examples.approval end to end: the workflow waits on its core.ask task until someone answers
through the CLI (`execution list --state pending`, `execution respond`), then takes the branch
the answer chose."""

from __future__ import annotations

from typing import Any

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto, struct_from_dict
from tests.cli.e2e import attune
from tests.integration.cluster import Cluster
from tests.support.polling import eventually


async def pending_ask(cluster: Cluster, workflow_id: str) -> execution_pb2.Execution:
    """The workflow's `approve` child once it waits for its answer."""

    async def found() -> execution_pb2.Execution | None:
        reply = await cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=workflow_id), timeout=5)
        for child in reply.children:
            if child.link.task_name == "approve" and execution_state_from_proto(child.state) == "pending":
                return child
        return None

    return await eventually(found, within=30, interval=0.05, what=lambda: f"{workflow_id}'s approve task pending")


def tasks_of(reply: execution_pb2.GetExecutionResponse) -> list[str]:
    return [c.link.task_name for c in reply.children]


async def test_the_workflow_waits_for_the_answer_given_with_the_cli(cluster: Cluster) -> None:
    workflow = await cluster.request("examples.approval", {"version": "2.1"})
    ask = await pending_ask(cluster, workflow.id)
    waiting = await cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=workflow.id), timeout=5)
    assert execution_state_from_proto(waiting.execution.state) == "running"

    listed = await attune("execution", "list", "--state", "pending", "--output", "json", env=cluster.cli_env())
    assert listed.code == 0, listed.stderr
    assert {"id": ask.id, "action_ref": "core.ask"}.items() <= next(
        e for e in listed.json()["executions"] if e["id"] == ask.id
    ).items()

    wrong = await attune("execution", "respond", ask.id, "-p", "approved=perhaps", env=cluster.cli_env())
    assert wrong.code != 0 and "approved" in wrong.stderr and "Traceback" not in wrong.stderr

    answered = await attune(
        "execution", "respond", ask.id, "-p", "approved=yes", "--output", "json", env=cluster.cli_env()
    )
    assert answered.code == 0, answered.stderr
    assert answered.json()["state"] == "succeeded"
    assert answered.json()["result"] == {"approved": True, "reason": ""}

    done = await cluster.wait_terminal(workflow.id, timeout=30)
    assert execution_state_from_proto(done.execution.state) == "succeeded"
    assert dict_from_struct(done.execution.result) == {"succeeded": True, "deployed": True, "reason": "approved"}
    assert tasks_of(done) == ["approve", "deploy"]


async def test_a_rejection_takes_the_other_branch(cluster: Cluster) -> None:
    workflow = await cluster.request("examples.approval")
    ask = await pending_ask(cluster, workflow.id)
    answer: dict[str, Any] = {"approved": False, "reason": "freeze week"}
    await cluster.executions.RespondToExecution(
        execution_pb2.RespondToExecutionRequest(id=ask.id, answer=struct_from_dict(answer)), timeout=10
    )
    done = await cluster.wait_terminal(workflow.id, timeout=30)
    assert dict_from_struct(done.execution.result) == {"succeeded": True, "deployed": False, "reason": "freeze week"}
    assert tasks_of(done) == ["approve", "rejected"]
