"""Intervening survives a coordinator SIGKILL, on both databases: killed while a workflow is
`pausing` (its task still runs), right after a resume was answered, and while a core.ask waits
for its answer — after a restart each workflow goes on to succeed, every task run exactly once."""

from __future__ import annotations

from collections import Counter

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto, struct_from_dict
from tests.integration.cluster import Cluster
from tests.integration.test_approvals_e2e import pending_ask, tasks_of
from tests.integration.test_pause_e2e import SLEEP_S, _running_workflow, _state, _tasks
from tests.support.polling import eventually

ALL_ONCE = {"prepare": 1, "deploy": 1, "report": 1}


async def _restart_coordinator(cluster: Cluster) -> None:
    cluster.kill("coordinator")
    await cluster.start_service("coordinator")


async def _wait_paused(cluster: Cluster, workflow_id: str) -> None:
    async def is_paused() -> bool:
        return await _state(cluster, workflow_id) == "paused"

    await eventually(
        is_paused,
        within=SLEEP_S + 30,
        interval=0.05,
        what=lambda: f"the workflow to be paused\n{cluster.log_tail('coordinator', 60)}",
    )


async def _succeeds_each_task_once(cluster: Cluster, workflow_id: str) -> None:
    done = await cluster.wait_terminal(workflow_id, timeout=60)
    assert execution_state_from_proto(done.execution.state) == "succeeded", done.execution.error
    assert Counter(c.link.task_name for c in done.children) == ALL_ONCE
    assert dict_from_struct(done.execution.result) == {"succeeded": True, "message": "deployed"}


async def test_sigkill_while_pausing_still_pauses(cluster: Cluster) -> None:
    workflow_id = await _running_workflow(cluster)
    request = execution_pb2.PauseExecutionRequest(id=workflow_id)
    pausing = (await cluster.executions.PauseExecution(request, timeout=10)).execution
    assert execution_state_from_proto(pausing.state) == "pausing"  # prepare still sleeps
    await _restart_coordinator(cluster)
    await _wait_paused(cluster, workflow_id)
    assert await _tasks(cluster, workflow_id) == {"prepare": 1}  # deploy did not start
    await cluster.executions.ResumeExecution(execution_pb2.ResumeExecutionRequest(id=workflow_id), timeout=10)
    await _succeeds_each_task_once(cluster, workflow_id)


async def test_sigkill_right_after_resume_still_finishes(cluster: Cluster) -> None:
    workflow_id = await _running_workflow(cluster)
    await cluster.executions.PauseExecution(execution_pb2.PauseExecutionRequest(id=workflow_id), timeout=10)
    await _wait_paused(cluster, workflow_id)
    resume = execution_pb2.ResumeExecutionRequest(id=workflow_id)
    resumed = (await cluster.executions.ResumeExecution(resume, timeout=10)).execution
    assert execution_state_from_proto(resumed.state) == "running"
    await _restart_coordinator(cluster)
    await _succeeds_each_task_once(cluster, workflow_id)


async def test_an_answer_after_a_coordinator_sigkill_continues_the_workflow(cluster: Cluster) -> None:
    workflow = await cluster.request("examples.approval", {"version": "2.2"})
    ask = await pending_ask(cluster, workflow.id)
    await _restart_coordinator(cluster)
    assert execution_state_from_proto((await pending_ask(cluster, workflow.id)).state) == "pending"
    answer = struct_from_dict({"approved": True})
    await cluster.executions.RespondToExecution(
        execution_pb2.RespondToExecutionRequest(id=ask.id, answer=answer), timeout=10
    )
    done = await cluster.wait_terminal(workflow.id, timeout=30)
    assert execution_state_from_proto(done.execution.state) == "succeeded", done.execution.error
    assert dict_from_struct(done.execution.result) == {"succeeded": True, "deployed": True, "reason": "approved"}
    assert tasks_of(done) == ["approve", "deploy"]
