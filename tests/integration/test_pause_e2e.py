"""Pause and resume end to end (PauseExecution, ResumeExecution, `attune execution pause|resume`),
on both databases: a workflow paused while its first task sleeps is `pausing`, then `paused` with
its next task not started — and stays so across a coordinator SIGKILL; resumed, it succeeds.
A paused workflow can be cancelled; a plain action cannot be paused."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import grpc
import pytest

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto
from attune.ids import new_id
from tests.cli.e2e import attune
from tests.integration.cluster import Cluster
from tests.support.polling import eventually

SLEEP_S = 1.5  # the first task's sleep: long enough to pause it while it runs


async def _state(cluster: Cluster, execution_id: str) -> str:
    reply = await cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=execution_id), timeout=5)
    return execution_state_from_proto(reply.execution.state)


async def _tasks(cluster: Cluster, execution_id: str) -> Counter[str]:
    reply = await cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=execution_id), timeout=5)
    return Counter(child.link.task_name for child in reply.children)


async def _running_workflow(cluster: Cluster) -> str:
    workflow = await cluster.request("examples.pausable", {"seconds": SLEEP_S})

    async def prepare_runs() -> bool:
        return await _state(cluster, workflow.id) == "running" and (await _tasks(cluster, workflow.id))["prepare"] == 1

    await eventually(prepare_runs, within=15, interval=0.05, what="the workflow's first task to run")
    return workflow.id


async def test_pause_then_resume_continues_where_it_stopped(cluster: Cluster) -> None:
    workflow_id = await _running_workflow(cluster)
    request = execution_pb2.PauseExecutionRequest(id=workflow_id, request_id=new_id())
    paused = (await cluster.executions.PauseExecution(request, timeout=10)).execution
    assert execution_state_from_proto(paused.state) == "pausing"  # prepare still sleeps
    retried = (await cluster.executions.PauseExecution(request, timeout=10)).execution
    assert retried == paused  # a retried request_id answers the original response

    async def is_paused() -> bool:
        return await _state(cluster, workflow_id) == "paused"

    await eventually(is_paused, within=SLEEP_S + 20, interval=0.05, what="the workflow to be paused")
    assert await _tasks(cluster, workflow_id) == {"prepare": 1}  # deploy did not start

    # A coordinator killed while the workflow is paused keeps it paused.
    cluster.kill("coordinator")
    await cluster.start_service("coordinator")
    assert await _state(cluster, workflow_id) == "paused"
    assert await _tasks(cluster, workflow_id) == {"prepare": 1}

    resumed = await attune("execution", "resume", workflow_id, "--output", "json", env=cluster.cli_env())
    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["state"] == "running"
    done = await cluster.wait_terminal(workflow_id, timeout=30)
    assert execution_state_from_proto(done.execution.state) == "succeeded", done.execution.error
    assert Counter(c.link.task_name for c in done.children) == {"prepare": 1, "deploy": 1, "report": 1}
    assert dict_from_struct(done.execution.result) == {"succeeded": True, "message": "deployed"}

    # Each call is attributed to the caller's token (one line for the pause: its retry was
    # answered from the request log) and traced under the workflow's execution span.
    log = (cluster.workdir / "scheduler.log").read_text()
    assert log.count(f"PauseExecution of execution {workflow_id} by 'admin'") == 1
    assert log.count(f"ResumeExecution of execution {workflow_id} by 'admin'") == 1

    def calls() -> list[str] | None:
        methods = [
            s["attributes"].get("rpc.method", "")
            for s in cluster.spans()
            if s["kind"] == "SERVER"
            and s["attributes"].get("rpc.service") == "attune.execution.v1.ExecutionService"
            and s["attributes"].get("attune.execution.id") == workflow_id
        ]
        return methods if "ResumeExecution" in methods else None

    methods = await eventually(calls, within=10, interval=0.1, what="the resume's span in the trace file")
    assert sorted(methods) == ["PauseExecution", "RequestExecution", "ResumeExecution"]


async def test_cancel_while_paused_and_refusals(cluster: Cluster) -> None:
    workflow_id = await _running_workflow(cluster)
    paused = await attune("execution", "pause", workflow_id, "--output", "json", env=cluster.cli_env())
    assert paused.code == 0, paused.stderr
    assert paused.json()["state"] in ("pausing", "paused")
    await cluster.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=workflow_id), timeout=10)
    done = await cluster.wait_terminal(workflow_id, timeout=SLEEP_S + 30)
    assert execution_state_from_proto(done.execution.state) == "cancelled"
    assert Counter(c.link.task_name for c in done.children) == {"prepare": 1}

    with pytest.raises(grpc.RpcError) as finished:
        await cluster.executions.PauseExecution(execution_pb2.PauseExecutionRequest(id=workflow_id), timeout=10)
    assert finished.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "cancelled" in (finished.value.details() or "")

    sleeping = await cluster.request("core.sleep", {"seconds": 30})
    try:
        with pytest.raises(grpc.RpcError) as plain:
            await cluster.executions.PauseExecution(execution_pb2.PauseExecutionRequest(id=sleeping.id), timeout=10)
        assert plain.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "only a workflow" in (plain.value.details() or "")
    finally:
        await cluster.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=sleeping.id), timeout=10)


async def test_a_nested_workflow_pauses_with_its_parent(cluster: Cluster, tmp_path: Path) -> None:
    """The parent's pause reaches its running nested workflow; once that is paused (nothing of it
    runs) the parent shows `paused` too, and a resume takes both on to the end."""
    (tmp_path / "workflows").mkdir()
    (tmp_path / "pack.yaml").write_text("ref: pausetest\nlabel: Pause test\nversion: '1.0'\n")
    (tmp_path / "workflows" / "outer.workflow.yaml").write_text(
        "ref: pausetest.outer\nlabel: Outer\nversion: 1\ntasks:\n"
        f"  - name: inner\n    action: examples.pausable\n    input: {{seconds: {SLEEP_S}}}\n"
        "    next:\n      - do: last\n"
        "  - {name: last, action: core.noop}\n"
    )
    await cluster.register_pack(tmp_path)
    outer = await cluster.request("pausetest.outer")

    async def inner_prepares() -> str | None:
        inner = [c for c in (await _children(cluster, outer.id)) if c.link.task_name == "inner"]
        if inner and (await _tasks(cluster, inner[0].id))["prepare"] == 1:
            return inner[0].id
        return None

    inner_id = await eventually(inner_prepares, within=15, interval=0.05, what="the nested workflow to run")
    await cluster.executions.PauseExecution(execution_pb2.PauseExecutionRequest(id=outer.id), timeout=10)

    states: tuple[str, str] = ("", "")

    async def both_paused() -> bool:
        nonlocal states
        states = (await _state(cluster, outer.id), await _state(cluster, inner_id))
        return states == ("paused", "paused")

    await eventually(
        both_paused,
        within=SLEEP_S + 20,
        interval=0.05,
        what=lambda: f"parent and child to be paused (now {states})\n{cluster.log_tail('coordinator', 60)}",
    )
    assert await _tasks(cluster, inner_id) == {"prepare": 1}
    await cluster.executions.ResumeExecution(execution_pb2.ResumeExecutionRequest(id=outer.id), timeout=10)
    done = await cluster.wait_terminal(outer.id, timeout=30)
    assert execution_state_from_proto(done.execution.state) == "succeeded", done.execution.error
    assert await _tasks(cluster, inner_id) == {"prepare": 1, "deploy": 1, "report": 1}


async def _children(cluster: Cluster, execution_id: str) -> list[execution_pb2.Execution]:
    reply = await cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=execution_id), timeout=5)
    return list(reply.children)
