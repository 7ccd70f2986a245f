"""Two replicas of every service on one PostgreSQL, no fault: nothing is abandoned, nothing runs
twice, every execution ends as it should (issue #14). And a client given several scheduler
addresses fails over when the first is down.

With a short worker grace (4 s) a replica that judged workers by its own streams abandoned the
long actions of workers connected to the other replica at ~4 s ("worker w lost"); the leases
(services/scheduler/leases.py) make every replica see the same live workers, and cancels sent to
either replica reach the worker through the database (relay.py).

The issue's run (60 s of mixed load, 40 s actions) takes over a minute: it runs with
ATTUNE_LONG_TESTS=1. The suite runs the same load for 15 s with 14 s actions, three and a half
times the worker grace, long past the point where the old sweeper abandoned them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa

from attune.execution.v1 import execution_pb2
from attune.grpcutil.channel import open_channel
from attune.grpcutil.convert import execution_state_from_proto
from attune.registry.v1 import registry_pb2, registry_pb2_grpc
from attune.storage import Database
from attune.storage.schema import executions, worker_leases
from attune_services.cli.launcher import free_port
from tests.cli.e2e import attune
from tests.integration.cluster import Cluster
from tests.integration.replicas import STARTLOG_PACK, start_log, start_replicas
from tests.support.polling import eventually

LONG_TESTS = os.environ.get("ATTUNE_LONG_TESTS") == "1"
#: How long the mixed load keeps coming (the issue asks for at least 60 s: ATTUNE_LONG_TESTS=1).
LOAD_S = 60.0 if LONG_TESTS else 15.0
#: The actions the old sweeper abandoned after the worker grace (WORKER_GRACE).
LONG_S = 40.0 if LONG_TESTS else 14.0
WORKER_GRACE = "4"
ROUND_S = 1.0


class Load:
    """What the test asked for and how each execution must end."""

    def __init__(self, cluster: Cluster, start_log: Path) -> None:
        self.cluster = cluster
        self.start_log = start_log
        self.expected: dict[str, str] = {}  # execution id → terminal state
        self.logged: set[str] = set()  # executions of startlog.sleep: exactly one start each
        self._tasks: list[asyncio.Task[None]] = []
        self.refused: dict[str, str] = {}  # cancels refused, with the error

    async def sleep(self, seconds: float, expected: str = "succeeded", **kw: Any) -> str:
        execution = await self.cluster.request("startlog.sleep", {"log": str(self.start_log), "seconds": seconds}, **kw)
        self.expected[execution.id] = expected
        self.logged.add(execution.id)
        return execution.id

    async def request(self, action_ref: str, parameters: dict[str, Any], expected: str = "succeeded") -> None:
        execution = await self.cluster.request(action_ref, parameters)
        self.expected[execution.id] = expected

    def cancel_later(self, execution_id: str, after: float) -> None:
        """Cancels through the client's channel (either scheduler) once the action has started."""

        async def cancel() -> None:
            await asyncio.sleep(after)
            try:
                await self.cluster.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=execution_id))
            except grpc.aio.AioRpcError as err:  # already ended: the final check names its state
                self.refused[execution_id] = f"{err.code().name}: {err.details()}"

        self._tasks.append(asyncio.create_task(cancel()))

    async def round(self, n: int) -> None:
        """One second's worth: short actions, a no-op, and now and then a workflow, a cancel, a timeout."""
        for _ in range(3):
            await self.sleep(0.2)
        await self.request("core.noop", {})
        if n % 5 == 0:
            await self.request("examples.sequence", {"name": f"round-{n}"})
        if n % 7 == 0:
            await self.request("examples.parallel_join", {})
        if n % 4 == 1:
            self.cancel_later(await self.sleep(30, "cancelled"), after=2.0)
        if n % 6 == 2:
            await self.sleep(30, "timeout", timeout_seconds=1.0)

    async def settle(self) -> None:
        await asyncio.gather(*self._tasks)


async def final_states(cluster: Cluster, ids: list[str], timeout: float) -> dict[str, tuple[str, str]]:
    """Each execution's terminal state and error, waiting for all of them: one at a time, since
    by then most have ended (hundreds of concurrent pollers would load the loaded machine more)."""
    deadline = time.monotonic() + timeout
    states: dict[str, tuple[str, str]] = {}
    for i in ids:
        reply = await cluster.wait_terminal(i, timeout=max(1.0, deadline - time.monotonic()))
        states[i] = (execution_state_from_proto(reply.execution.state), reply.execution.error)
    return states


async def duplicate_children(database_url: str) -> list[Any]:
    """Workflow task runs (workflow, task, run, item, attempt) with more than one execution."""
    db = Database(database_url)
    try:
        async with db.read() as conn:
            link = (
                executions.c.workflow_execution_id,
                executions.c.task_name,
                executions.c.task_run,
                executions.c.item_index,
                executions.c.attempt,
            )
            query = (
                sa.select(*link, sa.func.count())
                .where(executions.c.workflow_execution_id.is_not(None))
                .group_by(*link)
                .having(sa.func.count() > 1)
            )
            return list((await conn.execute(query)).all())
    finally:
        await db.close()


async def lease_holders(database_url: str) -> dict[str, str]:
    db = Database(database_url)
    try:
        async with db.read() as conn:
            rows = (await conn.execute(sa.select(worker_leases.c.worker_id, worker_leases.c.scheduler_id))).all()
        return {r.worker_id: r.scheduler_id for r in rows}
    finally:
        await db.close()


async def test_two_of_every_service_abandon_nothing_and_run_nothing_twice(postgres_url: str, tmp_path: Path) -> None:
    cluster = Cluster(
        postgres_url, tmp_path / "cluster", ATTUNE_WORKER_GRACE=WORKER_GRACE, ATTUNE_SCHEDULE_TIMEOUT="10"
    )
    starts = start_log()
    try:
        await start_replicas(cluster, count=2, workers=2)
        await cluster.register_bundled_packs()
        await cluster.register_pack(STARTLOG_PACK)
        load = Load(cluster, starts)
        longs = [await load.sleep(LONG_S) for _ in range(4)]
        began = time.monotonic()
        n = 0
        while time.monotonic() - began < LOAD_S:
            await load.round(n)
            n += 1
            await asyncio.sleep(max(0.0, began + n * ROUND_S - time.monotonic()))
        await load.settle()
        states = await final_states(cluster, list(load.expected), timeout=60)
        wrong = {i: (*states[i], want) for i, want in load.expected.items() if states[i][0] != want}
        assert not wrong, f"{len(wrong)} of {len(states)} ended otherwise than expected: {list(wrong.items())[:10]}"
        assert all(states[i][0] == "succeeded" for i in longs)
        assert not load.refused, load.refused
        started = Counter(load.start_log.read_text().split())
        twice = {i: c for i, c in started.items() if c > 1}
        assert not twice, f"processes started more than once: {twice}"
        # Every action that succeeded or timed out started exactly once (a cancel may come first).
        assert all(started[i] == 1 for i in load.logged if load.expected[i] != "cancelled")
        assert await duplicate_children(postgres_url) == []
        holders = await lease_holders(postgres_url)
        assert set(holders) == {"worker-1", "worker-2"}, holders
        print(f"{len(states)} executions in {n} rounds; workers by scheduler: {holders}")
    finally:
        await cluster.stop()
        shutil.rmtree(starts.parent, ignore_errors=True)


async def test_a_client_with_two_addresses_fails_over_when_the_first_is_down(cluster: Cluster) -> None:
    down = f"127.0.0.1:{free_port()}"
    both = f"{down},{cluster.addresses['scheduler']}"
    async with open_channel(both, cluster.client_settings, token=cluster.admin_token) as channel:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        for _ in range(3):  # every call, not only the first one that found a live address
            reply = await registry.ListActions(registry_pb2.ListActionsRequest(), timeout=10)
            assert any(a.ref == "core.noop" for a in reply.actions)
    # The CLI, given the list in ATTUNE_ADDRESS (or --address), as a user would.
    outcome = await attune("action", "list", env={**cluster.cli_env(), "ATTUNE_ADDRESS": both})
    assert outcome.code == 0, outcome.stderr
    assert "core.noop" in outcome.stdout


async def test_a_worker_fails_over_to_the_other_scheduler_and_keeps_its_run(postgres_url: str, tmp_path: Path) -> None:
    """SIGKILL of the scheduler holding the worker: the worker reconnects through the same address
    list to the other one, which takes its lease; the action runs on, once, and succeeds."""
    cluster = Cluster(postgres_url, tmp_path / "cluster", ATTUNE_WORKER_GRACE="4")
    starts = start_log()
    try:
        await start_replicas(cluster, count={"scheduler": 2}, workers=1)
        await cluster.register_bundled_packs()
        await cluster.register_pack(STARTLOG_PACK)
        execution = await cluster.request("startlog.sleep", {"log": str(starts), "seconds": 6})
        await eventually(lambda: starts.read_text().strip(), within=20, what="the action to start")
        (holder,) = [n for n in ("scheduler", "scheduler-2") if "worker connected" in cluster.log_tail(n, 400)]
        before = (await lease_holders(postgres_url))["worker-1"]
        cluster.kill(holder)
        moved = await eventually(
            lambda: _moved_lease(postgres_url, before),
            within=20,
            what="the worker's lease to move to the other scheduler",
        )
        reply = await cluster.wait_terminal(execution.id, timeout=30)
        assert execution_state_from_proto(reply.execution.state) == "succeeded", reply.execution.error
        assert starts.read_text().split() == [execution.id]  # started once
        assert moved != before
    finally:
        await cluster.stop()
        shutil.rmtree(starts.parent, ignore_errors=True)


async def _moved_lease(database_url: str, before: str) -> str | None:
    holder = (await lease_holders(database_url)).get("worker-1")
    return holder if holder and holder != before else None
