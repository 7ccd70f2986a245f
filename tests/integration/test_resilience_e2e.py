"""Failure paths on private clusters: lost workers, restarted services, missing runtimes,
graceful shutdown. Each test runs on PostgreSQL and on SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto
from tests.integration.cluster import Cluster, ClusterFactory
from tests.support.polling import eventually

TESTPACK = Path(__file__).parent / "packs" / "testpack"


async def wait_state(cluster: Cluster, execution_id: str, wanted: str, timeout: float = 15) -> None:
    async def reached() -> bool:
        got = await cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=execution_id))
        return execution_state_from_proto(got.execution.state) == wanted

    await eventually(reached, within=timeout, interval=0.05, what=f"{execution_id} to reach {wanted}")


async def started(make: ClusterFactory, **overrides: str) -> Cluster:
    cluster = await make(**overrides)
    await cluster.start(workers=1)
    await cluster.register_bundled_packs()
    return cluster


async def test_worker_killed_mid_run_leaves_execution_abandoned(fresh_cluster: ClusterFactory) -> None:
    cluster = await started(fresh_cluster)
    execution = await cluster.request("core.sleep", {"seconds": 30})
    await wait_state(cluster, execution.id, "running")
    cluster.kill("worker:worker-1")
    reply = await cluster.wait_terminal(execution.id, timeout=15)
    assert execution_state_from_proto(reply.execution.state) == "abandoned"
    assert "worker-1" in reply.execution.error


async def test_completion_restart_with_a_result_in_flight_loses_nothing(fresh_cluster: ClusterFactory) -> None:
    cluster = await started(fresh_cluster)
    execution = await cluster.request("core.sleep", {"seconds": 1.5})
    await wait_state(cluster, execution.id, "running")
    cluster.kill("completion")
    await asyncio.sleep(2.5)  # the action ends while completion is down: the worker holds the result
    got = await cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=execution.id))
    assert execution_state_from_proto(got.execution.state) == "running"
    await cluster.start_service("completion")
    reply = await cluster.wait_terminal(execution.id, timeout=15)
    assert execution_state_from_proto(reply.execution.state) == "succeeded"
    assert dict_from_struct(reply.execution.result)["exit_code"] == 0


async def test_missing_runtime_fails_after_schedule_timeout_naming_runtimes(fresh_cluster: ClusterFactory) -> None:
    cluster = await fresh_cluster(ATTUNE_WORKER_RUNTIMES="shell,noop")
    await cluster.start(workers=1)
    await cluster.register_bundled_packs()
    await cluster.register_pack(TESTPACK)
    execution = await cluster.request("testpack.node_env")
    await asyncio.sleep(1.0)
    got = await cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=execution.id))
    assert execution_state_from_proto(got.execution.state) == "scheduling"
    reply = await cluster.wait_terminal(execution.id, timeout=15)
    assert execution_state_from_proto(reply.execution.state) == "failed"
    error = reply.execution.error
    assert "nodejs" in error and "noop" in error and "shell" in error, error


async def test_worker_sigterm_finishes_running_work(fresh_cluster: ClusterFactory) -> None:
    cluster = await started(fresh_cluster)
    execution = await cluster.request("core.sleep", {"seconds": 1})
    await wait_state(cluster, execution.id, "running")
    assert cluster.terminate("worker:worker-1") == 0
    reply = await cluster.wait_terminal(execution.id, timeout=10)
    assert execution_state_from_proto(reply.execution.state) == "succeeded"


async def test_scheduler_restart_resumes_from_the_database(fresh_cluster: ClusterFactory) -> None:
    cluster = await started(fresh_cluster)
    cluster.kill("worker:worker-1")
    queued = [await cluster.request("core.noop") for _ in range(5)]
    cluster.kill("scheduler")
    await cluster.start_service("scheduler")
    await cluster.start_worker("worker-2")
    for execution in queued:
        reply = await cluster.wait_terminal(execution.id, timeout=15)
        assert execution_state_from_proto(reply.execution.state) == "succeeded"
