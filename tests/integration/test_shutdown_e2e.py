"""Graceful SIGTERM of every service, watched the way an orchestrator watches it: through
grpc.health.v1's Watch stream. Health must turn NOT_SERVING before the process stops (so a load
balancer stops sending it work while it drains), in-flight work must finish, and the process
must exit 0. A worker stopped on its own (compose, Kubernetes) cancels what outlives its grace
and reports it before it exits. Runs on PostgreSQL and on SQLite."""

from __future__ import annotations

import asyncio
import signal
import time

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_from_proto
from tests.integration.cluster import SERVICES, Cluster, ClusterFactory
from tests.integration.test_resilience_e2e import started, wait_state

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthWatch:
    """Follows one server's overall health (service "") until its stream ends."""

    def __init__(self, address: str) -> None:
        self.statuses: list[int] = []
        self.changed = asyncio.Event()
        self._channel = grpc.aio.insecure_channel(address)
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        # types-grpcio-health-checking's HealthStub lists no methods; Watch streams HealthCheckResponses.
        call = health_pb2_grpc.HealthStub(self._channel).Watch(health_pb2.HealthCheckRequest(service=""))  # type: ignore[attr-defined]
        try:
            async for reply in call:
                self.statuses.append(reply.status)
                self.changed.set()
        except grpc.aio.AioRpcError:
            pass  # the server stopped: the stream ends with CANCELLED or UNAVAILABLE

    async def wait_for(self, status: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while status not in self.statuses:
                self.changed.clear()
                await self.changed.wait()

    async def close(self) -> None:
        self._task.cancel()
        await self._channel.close()


async def _sigterm(cluster: Cluster, name: str, timeout: float = 20.0) -> int:
    """SIGTERMs one process and waits for it without blocking the event loop."""
    proc = cluster.processes.pop(name)
    proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout)


async def test_sigterm_turns_health_not_serving_drains_and_exits_cleanly(fresh_cluster: ClusterFactory) -> None:
    # A worker that left is lost to the scheduler after ATTUNE_WORKER_GRACE: longer than the
    # action it finishes while draining (the short cluster timing would race it).
    cluster = await started(fresh_cluster, ATTUNE_WORKER_GRACE="10")
    execution = await cluster.request("core.sleep", {"seconds": 1.5})
    await wait_state(cluster, execution.id, "running")
    watches = {
        name: HealthWatch(address)
        for name, address in [
            *cluster.addresses.items(),
            ("worker:worker-1", cluster.worker_addresses["worker:worker-1"]),
        ]
    }
    try:
        for watch in watches.values():
            await watch.wait_for(SERVING)

        # The worker first, with an action running: it stops taking work at once, and the
        # action it holds still finishes and is reported.
        exiting = asyncio.create_task(_sigterm(cluster, "worker:worker-1"))
        await watches["worker:worker-1"].wait_for(NOT_SERVING)
        during = await cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=execution.id))
        assert execution_state_from_proto(during.execution.state) == "running"
        assert await exiting == 0
        reply = await cluster.wait_terminal(execution.id, timeout=15)
        assert execution_state_from_proto(reply.execution.state) == "succeeded"

        for name in ("scheduler", "coordinator", "completion"):
            assert await _sigterm(cluster, name) == 0, cluster.log_tail(name)
            # Sent before the server stopped; it may still be in this client's hands.
            await watches[name].wait_for(NOT_SERVING, timeout=5.0)
            statuses = watches[name].statuses
            assert statuses[0] == SERVING and statuses[-1] == NOT_SERVING, f"{name}: {statuses}"
    finally:
        for watch in watches.values():
            await watch.close()


async def test_sigterm_to_a_worker_cancels_what_outlives_the_grace_and_reports_it_before_exiting(
    fresh_cluster: ClusterFactory,
) -> None:
    # The scheduler gives a worker that left ATTUNE_WORKER_GRACE before it abandons its work:
    # longer than the worker's shutdown grace plus its kill grace (docs/operations.md).
    cluster = await fresh_cluster(ATTUNE_WORKER_GRACE="10")
    for name in SERVICES:
        await cluster.start_service(name)
    worker = await cluster.start_worker("worker-1", ATTUNE_SHUTDOWN_GRACE="2")
    await cluster.register_bundled_packs()
    short = await cluster.request("core.sleep", {"seconds": 0.5})
    long = await cluster.request("core.sleep", {"seconds": 600})
    await wait_state(cluster, long.id, "running")
    actions = psutil.Process(cluster.processes[worker].pid).children(recursive=True)
    assert any(p.name() == "sleep" for p in actions), actions

    began = time.monotonic()
    assert await _sigterm(cluster, worker) == 0, cluster.log_tail(worker)
    print(f"\nworker SIGTERM with a 600 s action, grace 2 s: exited in {time.monotonic() - began:.2f}s")
    _, left = psutil.wait_procs(actions, timeout=2)
    assert left == [], f"processes of its runs outlived the worker: {left}"
    # It exited only once the completion service had acknowledged both results: they are stored.
    for execution, state, error in [(short, "succeeded", ""), (long, "cancelled", "worker shut down")]:
        reply = await cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=execution.id))
        got = reply.execution
        assert (execution_state_from_proto(got.state), got.error) == (state, error), cluster.log_tail(worker)
