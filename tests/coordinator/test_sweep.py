"""The recovery sweep: a running coordinator replica takes over the commands another replica
committed and never carried out (it stopped between its commit and the call, cleanly or killed),
with no restart of anything, but never the commands of a replica that is alive however slow it
is; and the sweep's reads stay on the outbox's partial indexes.

Replica A is the harness's coordinator, B a second one on the same database, started before the
work so its start-up recovery sees none of it: only its sweep can find A's commands. A replica
stopped cleanly releases its lease (taken over at B's next sweep); a killed one leaves it to
expire (LEASE_TIME).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from attune.grpcutil.channel import open_channel
from attune.grpcutil.server import start_server, stop_server
from attune.ids import new_id
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune.storage import Database
from attune.storage.schema import service_leases, task_runs, workflow_executions
from attune.workflow.v1 import workflow_pb2
from attune_services.coordinator.app import CoordinatorApp
from attune_services.coordinator.store import claim_statements, outbox_queries
from tests.coordinator.conftest import LEASE_TIME, RECOVERY_INTERVAL, Harness, outcome, settle
from tests.coordinator.test_coordinator import SEQUENCE
from tests.support.polling import eventually

#: How long a takeover of a stopped replica's commands may take: a few sweep intervals.
TAKEOVER_S = 10 * RECOVERY_INTERVAL


@dataclass
class Replica:
    """A second coordinator, and its client."""

    app: CoordinatorApp
    client: coordinator_pb2_grpc.CoordinatorServiceStub


@asynccontextmanager
async def replica(harness: Harness) -> AsyncIterator[Replica]:
    """Replica B, running until the block ends."""
    app = CoordinatorApp(harness.settings)
    handle = await start_server(app, address="127.0.0.1:0", settings=harness.settings)
    channel = open_channel(f"127.0.0.1:{handle.port}", harness.settings)
    try:
        yield Replica(app, coordinator_pb2_grpc.CoordinatorServiceStub(channel))
    finally:
        await channel.close()
        await stop_server(app, handle, grace=2.0)


async def finish_reported(db: Database, workflow_id: str) -> bool:
    we = workflow_executions
    async with db.read() as conn:
        return bool((await conn.execute(sa.select(we.c.finish_reported).where(we.c.id == workflow_id))).scalar())


async def test_a_running_replica_requests_the_children_a_stopped_replica_committed(harness: Harness) -> None:
    async with replica(harness) as b:
        harness.scheduler.down = True
        wf = await harness.start_workflow(SEQUENCE, parameters={"who": "kim"})  # A commits "greet"
        await settle(0.1)
        await harness.stop_coordinator()  # A is gone; its child request was never taken
        assert harness.scheduler.of(wf) == []
        harness.scheduler.down = False
        [greet] = await harness.wait_requests(wf, 1, timeout=TAKEOVER_S)
        stream = b.client.ReportOutcomes()
        await harness.report(outcome(greet, result={"stdout": "hi"}), stream=stream)
        [_, shout] = await harness.wait_requests(wf, 2)
        await harness.report(outcome(shout, result={"stdout": "HI"}), stream=stream)
        state, result, _ = await harness.wait_result(wf)
        assert state == "succeeded" and result == {"succeeded": True, "greeting": "hi", "shouted": "HI"}
        await settle(3 * RECOVERY_INTERVAL)  # later sweeps find nothing left to send
        assert harness.scheduler.per_run(wf) == {f"{wf}:greet/1/-/1": 1, f"{wf}:shout/1/-/1": 1}
        stream.cancel()


async def test_a_running_replica_submits_the_result_a_stopped_replica_left_unreported(harness: Harness) -> None:
    async with replica(harness) as b:
        wf = await harness.start_workflow(SEQUENCE, parameters={"who": "lea"})
        [greet] = await harness.wait_requests(wf, 1)
        await harness.report(outcome(greet, result={"stdout": "yo"}))
        [_, shout] = await harness.wait_requests(wf, 2)
        harness.completion.down = True
        await harness.report(outcome(shout, result={"stdout": "YO"}))  # A finishes the workflow
        assert (await harness.run_of(wf)).state == workflow_pb2.WORKFLOW_STATE_SUCCEEDED
        await harness.stop_coordinator()  # A is gone; its result was never acknowledged
        assert wf not in harness.completion.results
        harness.completion.down = False
        state, result, _ = await harness.wait_result(wf, timeout=TAKEOVER_S)
        assert state == "succeeded" and result == {"succeeded": True, "greeting": "yo", "shouted": "YO"}
        await eventually(
            lambda: finish_reported(b.app.db, wf),
            within=TAKEOVER_S,
            interval=0.02,
            what="the takeover to record the result as reported",
        )
        await settle(3 * RECOVERY_INTERVAL)
        assert harness.completion.calls[wf] == 1


async def test_a_running_replica_delivers_the_cancel_a_stopped_replica_committed(harness: Harness) -> None:
    async with replica(harness) as b:
        wf = await harness.start_workflow("""
version: 1
cancellation_policy: cancel_running
tasks:
  - name: slow
    action: core.sleep
""")
        [slow] = await harness.wait_requests(wf, 1)
        await eventually(lambda: slow.request_id in harness.scheduler.ids, within=5, what="dispatch")
        child = harness.scheduler.ids[slow.request_id]
        harness.scheduler.down = True
        await harness.client.CancelWorkflow(coordinator_pb2.CancelWorkflowRequest(execution_id=wf))  # A commits
        await settle(0.1)
        await harness.stop_coordinator()  # A is gone; the child's cancel was never delivered
        assert harness.scheduler.cancels == []
        harness.scheduler.down = False
        await eventually(
            lambda: child in harness.scheduler.cancels, within=TAKEOVER_S, what="CancelExecution of the child"
        )
        stream = b.client.ReportOutcomes()
        await harness.report(outcome(slow, "cancelled", execution_id=child), stream=stream)
        assert (await harness.wait_result(wf))[0] == "cancelled"
        stream.cancel()


async def test_a_live_replica_keeps_its_commands_however_long_its_peer_is_down(harness: Harness) -> None:
    """Replica A cannot reach the scheduler for longer than many sweeps and a whole lease time,
    but it is alive: B takes over none of its commands (the cause of duplicate child requests
    under load: the sweep used to take any command older than a short grace), and every child is
    requested exactly once when the scheduler is back."""
    async with replica(harness) as b:
        harness.scheduler.down = True
        wf = await harness.start_workflow(SEQUENCE, parameters={"who": "ada"})  # A commits "greet"
        began = time.monotonic()
        while time.monotonic() - began < LEASE_TIME + 5 * RECOVERY_INTERVAL:
            # B would hold a taken-over child until the scheduler is back: it holds nothing.
            assert b.app.carrier.idle
            await settle(RECOVERY_INTERVAL / 2)
        assert await owners(harness, wf) == {harness_owner(harness)}
        harness.scheduler.down = False
        [greet] = await harness.wait_requests(wf, 1)
        await harness.report(outcome(greet, result={"stdout": "hi"}))
        [_, shout] = await harness.wait_requests(wf, 2)
        await harness.report(outcome(shout, result={"stdout": "HI"}))
        assert (await harness.wait_result(wf))[0] == "succeeded"
        await settle(3 * RECOVERY_INTERVAL)
        assert harness.scheduler.per_run(wf) == {f"{wf}:greet/1/-/1": 1, f"{wf}:shout/1/-/1": 1}
        assert harness.completion.calls[wf] == 1


async def test_a_killed_replica_s_commands_are_taken_over_once_its_lease_expires(harness: Harness) -> None:
    """Replica A dies without releasing its lease: B takes over its child request after the
    lease has expired (not before), within about a lease time of the death."""
    async with replica(harness) as b:
        harness.scheduler.down = True
        wf = await harness.start_workflow(SEQUENCE, parameters={"who": "bo"})  # A commits "greet"
        await settle(0.1)
        assert harness.app is not None
        a_id = harness.app.lease.id
        await harness.app.lease.close(release=False)  # as SIGKILL leaves it
        killed = time.time()
        await harness.stop_coordinator()
        expires_at = await lease_expiry(b.app.db, a_id)
        assert expires_at is not None and expires_at > killed  # still live: nobody may take over yet
        harness.scheduler.down = False
        [greet] = await harness.wait_requests(wf, 1, timeout=LEASE_TIME + 10 * RECOVERY_INTERVAL)
        taken_over = time.time()
        print(f"killed replica's command taken over {taken_over - killed:.2f} s after the kill (lease {LEASE_TIME} s)")
        assert taken_over >= expires_at, "taken over while the lease was live"
        assert taken_over - killed < LEASE_TIME + 10 * RECOVERY_INTERVAL
        assert await owners(harness, wf, db=b.app.db) == {b.app.lease.id}
        stream = b.client.ReportOutcomes()
        await harness.report(outcome(greet, result={"stdout": "hi"}), stream=stream)
        [_, shout] = await harness.wait_requests(wf, 2)
        await harness.report(outcome(shout, result={"stdout": "HI"}), stream=stream)
        assert (await harness.wait_result(wf))[0] == "succeeded"
        assert harness.scheduler.per_run(wf) == {f"{wf}:greet/1/-/1": 1, f"{wf}:shout/1/-/1": 1}
        stream.cancel()


def harness_owner(harness: Harness) -> str:
    assert harness.app is not None
    return harness.app.lease.id


async def owners(harness: Harness, workflow_id: str, *, db: Database | None = None) -> set[str | None]:
    """The owners recorded on a workflow's task runs."""
    if db is None:
        assert harness.app is not None
        db = harness.app.db
    async with db.read() as conn:
        rows = await conn.execute(sa.select(task_runs.c.owner).where(task_runs.c.workflow_id == workflow_id))
        return set(rows.scalars())


async def lease_expiry(db: Database, replica_id: str) -> float | None:
    t = service_leases
    async with db.read() as conn:
        return (await conn.execute(sa.select(t.c.expires_at).where(t.c.replica_id == replica_id))).scalar()


async def test_the_sweep_reads_only_outbox_rows_through_their_partial_indexes(database_url: str) -> None:
    """With a history of ended task runs, reported workflows and a wide running workflow stored,
    neither read, nor the claim of a dead replica's rows, scans a table: each walks its partial
    index (which holds only pending rows)."""
    db = Database(database_url)
    try:
        now = time.time()
        ended = [
            {"id": new_id(), "status": "succeeded", "finish_reported": True, "finished_at": now - 60}
            for _ in range(2000)
        ]
        running = {"id": new_id(), "status": "running", "finish_reported": False, "finished_at": None}
        async with db.write() as conn:
            await conn.execute(
                sa.insert(workflow_executions),
                [
                    {
                        "action_ref": "tests.flow",
                        "definition_digest": "d",
                        "depth": 0,
                        "version": 1,
                        "created_at": now - 120,
                        **w,
                    }
                    for w in [*ended, running]
                ],
            )
            await conn.execute(
                sa.insert(task_runs),
                [
                    {
                        "workflow_id": w["id"],
                        "run_key": f"t/{i}/-/1",
                        "seq": i,
                        "task_name": "t",
                        "run": i,
                        "attempt": 1,
                        "action_ref": "core.noop",
                        "state": state,
                        "request": "{}",
                        "child_execution_id": new_id(),
                        "dispatched": True,
                        "cancel_requested": False,
                        "started_at": now - 90,
                        "finished_at": finished,
                    }
                    for w, state, finished in [*((w, "succeeded", now - 60) for w in ended), (running, "running", None)]
                    for i in range(1, 3)
                ],
            )
        async with db.write() as conn:
            if conn.dialect.name == "postgresql":
                await conn.exec_driver_sql("ANALYZE task_runs")
                await conn.exec_driver_sql("ANALYZE workflow_executions")
            plans = [await _plan(conn, query) for owner in (None, "replica-a") for query in outbox_queries(owner)]
            claims = claim_statements(owner="replica-b", kind="coordinator", now=now, unowned_before=now - 10)
            plans += [await _plan(conn, statement) for statement in claims]
        for runs_plan, finishes_plan in (plans[0:2], plans[2:4], plans[4:6]):
            assert "ix_task_runs_outbox" in runs_plan, runs_plan
            assert "ix_workflow_executions_unreported" in finishes_plan, finishes_plan
            for plan in (runs_plan, finishes_plan):
                # PostgreSQL: no sequential scan; SQLite: no bare table scan, no walk of the
                # primary key of task_runs; and neither reads every workflow of a status.
                assert "Seq Scan" not in plan, plan
                assert not re.search(r"^SCAN \w+$", plan, re.MULTILINE), plan
                assert "sqlite_autoindex_task_runs" not in plan and "ix_workflow_executions_status" not in plan, plan
    finally:
        await db.close()


async def _plan(conn: AsyncConnection, query: sa.Select[Any] | sa.UpdateBase) -> str:
    """The database's plan for `query`, as text."""
    if conn.dialect.name == "postgresql":
        # SQLAlchemy's PostgreSQL dialect constructor is unannotated.
        sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))  # type: ignore[no-untyped-call]
        return "\n".join(row[0] for row in (await conn.exec_driver_sql("EXPLAIN " + sql)).all())
    sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    return "\n".join(row[-1] for row in (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)).all())
