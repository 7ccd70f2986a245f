"""Workflows end to end through all four services (scheduler → coordinator → scheduler →
worker → completion → coordinator → completion)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto
from attune.storage import Database
from attune.storage.schema import executions
from tests.integration.cluster import Cluster, ClusterFactory

TESTPACK = Path(__file__).parent / "packs" / "testpack"


def state(execution: execution_pb2.Execution) -> str:
    return execution_state_from_proto(execution.state)


async def test_single_echo_runs_through_all_four_services(cluster: Cluster) -> None:
    reply = await cluster.run("examples.single_echo", {"message": "seed bug fixed"})
    workflow = reply.execution
    assert state(workflow) == "succeeded", workflow.error
    assert dict_from_struct(workflow.result) == {"succeeded": True, "message": "seed bug fixed"}
    assert workflow.worker_id == "", "a workflow action is never assigned to a worker"
    [child] = reply.children
    assert child.action_ref == "core.echo" and child.link.task_name == "echo"
    assert state(child) == "succeeded" and child.worker_id == "worker-1"
    for log in cluster.workdir.glob("worker*.log"):
        assert workflow.id not in log.read_text(errors="replace"), "the worker heard of the workflow execution"
    db = Database(cluster.database_url)
    try:
        async with db.read() as conn:
            row = (await conn.execute(sa.select(executions.c.worker_id).where(executions.c.id == workflow.id))).one()
        assert row.worker_id is None
    finally:
        await db.close()


async def test_workflow_shares_one_trace_with_its_children(cluster: Cluster) -> None:
    reply = await cluster.run("examples.single_echo", {"message": "traced"})
    assert reply.children[0].trace_id == reply.execution.trace_id
    await asyncio.sleep(0.2)
    services = {s["service"] for s in cluster.spans() if s["trace_id"] == reply.execution.trace_id}
    assert {"scheduler", "coordinator", "worker", "completion"} <= services, services


async def _run_many(cluster: Cluster, count: int) -> list[str]:
    return [(await cluster.request("testpack.chain3", {"n": i})).id for i in range(count)]


async def test_coordinator_sigkill_with_20_workflows_running_recovers_exactly_once(
    fresh_cluster: ClusterFactory,
) -> None:
    cluster = await fresh_cluster()
    await cluster.start(workers=1)
    await cluster.register_bundled_packs()
    await cluster.register_pack(TESTPACK)
    ids = await _run_many(cluster, 20)
    await asyncio.sleep(0.6)  # some workflows are mid-chain
    cluster.kill("coordinator")
    await asyncio.sleep(0.5)
    await cluster.start_service("coordinator")
    for i, workflow_id in enumerate(ids):
        reply = await cluster.wait_terminal(workflow_id, timeout=60)
        assert state(reply.execution) == "succeeded", reply.execution.error
        # The undisturbed result of chain3 is ((n + 1) * 2) + 1.
        assert dict_from_struct(reply.execution.result) == {"succeeded": True, "total": (i + 1) * 2 + 1}
        runs = Counter((c.link.task_name, c.link.run, c.link.item_index, c.link.attempt) for c in reply.children)
        assert sorted(t for t, *_ in runs) == ["one", "three", "two"], runs
        assert set(runs.values()) == {1}, f"a task ran twice: {runs}"
