"""The bundled examples pack, run end to end on the real services (the language's showcase)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto
from attune.workflow.v1 import workflow_pb2
from tests.integration.cluster import Cluster


async def run(
    cluster: Cluster, ref: str, params: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any], list[execution_pb2.Execution]]:
    reply = await cluster.run(ref, params, timeout=60)
    return (
        execution_state_from_proto(reply.execution.state),
        dict_from_struct(reply.execution.result),
        list(reply.children),
    )


def tasks_of(children: list[execution_pb2.Execution]) -> list[str]:
    return [c.link.task_name for c in children]


async def test_sequence_publishes_from_task_to_task(cluster: Cluster) -> None:
    state, result, children = await run(cluster, "examples.sequence", {"name": "ada"})
    assert (state, result) == ("succeeded", {"succeeded": True, "greeting": "Hello, ada", "shouted": "HELLO, ADA!"})
    assert tasks_of(children) == ["greet", "shout"]


@pytest.mark.parametrize(
    ("fail", "tasks", "outcome"),
    [(True, ["risky", "recover"], "failed with exit code 1, recovered"), (False, ["risky", "celebrate"], "it worked")],
)
async def test_failure_branch_with_a_handler(cluster: Cluster, fail: bool, tasks: list[str], outcome: str) -> None:
    state, result, children = await run(cluster, "examples.failure_handler", {"fail": fail})
    assert (state, result) == ("succeeded", {"succeeded": True, "outcome": outcome})
    assert tasks_of(children) == tasks


async def test_fail_after_a_handler(cluster: Cluster) -> None:
    # `migrate` fails, `log` records why, then the engine command `fail` ends the workflow failed,
    # its output_map kept over what the handler published
    reply = await cluster.run("examples.fail_after_handler", timeout=60)
    error = 'task "log" requested fail (transition next[0])'
    assert execution_state_from_proto(reply.execution.state) == "failed"
    assert reply.execution.error == error
    assert dict_from_struct(reply.execution.result) == {
        "succeeded": False,
        "error": error,
        "reason": "exit code 3: table locked",
    }
    assert tasks_of(list(reply.children)) == ["migrate", "log"]
    log = next(c for c in reply.children if c.link.task_name == "log")
    assert "migrate failed (exit code 3: table locked)" in dict_from_struct(log.result)["stdout"]


async def test_parallel_branches_joined_once(cluster: Cluster) -> None:
    state, result, children = await run(cluster, "examples.parallel_join")
    assert (state, result) == ("succeeded", {"succeeded": True, "combined": "alpha + beta + gamma"})
    names = tasks_of(children)
    assert sorted(names) == ["combine", "fetch_a", "fetch_b", "fetch_c", "start"]
    assert names[0] == "start" and names[-1] == "combine"


async def test_loop_with_a_counter(cluster: Cluster) -> None:
    state, result, children = await run(cluster, "examples.countdown", {"count": 3})
    assert (state, result) == ("succeeded", {"succeeded": True, "ticks": 3})
    assert tasks_of(children) == ["init"] + ["check", "tick"] * 3 + ["check", "liftoff"]
    assert [c.link.run for c in children if c.link.task_name == "tick"] == [1, 2, 3]


async def test_with_items_in_item_order(cluster: Cluster) -> None:
    state, result, children = await run(
        cluster, "examples.with_items", {"names": ["ada", "grace", "ken"], "concurrency": 2}
    )
    assert state == "succeeded"
    assert result["greetings"] == ["#0: hello, ada", "#1: hello, grace", "#2: hello, ken"]
    assert sorted(c.link.item_index for c in children) == [0, 1, 2]


async def test_retry_with_backoff(cluster: Cluster) -> None:
    # Two runs at once: examples.flaky counts attempts per task run (from the ATTUNE_* variables
    # the worker exports), so neither run's attempts advance the other's counter.
    outcomes = await asyncio.gather(run(cluster, "examples.retry"), run(cluster, "examples.retry"))
    for state, result, children in outcomes:
        assert (state, result) == ("succeeded", {"succeeded": True, "attempts": 3})
        assert [c.link.attempt for c in children] == [1, 2, 3]
        started = [c.started_at.ToNanoseconds() / 1e9 for c in children]
        assert started[2] - started[1] >= 0.9, "exponential backoff: the second retry waits twice the first delay"


async def test_nested_workflow_and_its_task_tree(cluster: Cluster) -> None:
    reply = await cluster.run("examples.nested", {"name": "ken"}, timeout=60)
    assert execution_state_from_proto(reply.execution.state) == "succeeded", reply.execution.error
    assert dict_from_struct(reply.execution.result) == {
        "succeeded": True,
        "shouted": "HELLO, KEN!",
        "echoed": "the inner workflow said HELLO, KEN!",
    }
    run_reply = await cluster.workflows.GetWorkflowRun(
        workflow_pb2.GetWorkflowRunRequest(execution_id=reply.execution.id)
    )
    assert [t.task_name for t in run_reply.run.task_runs] == ["inner_sequence", "inner_echo"]
    inner = next(c for c in reply.children if c.link.task_name == "inner_sequence")
    assert inner.runner_type == "workflow" and inner.worker_id == ""
    grandchildren = await cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=inner.id))
    assert tasks_of(list(grandchildren.children)) == ["greet", "shout"]
    assert {c.trace_id for c in grandchildren.children} == {reply.execution.trace_id}
