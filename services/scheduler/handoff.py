"""Workflow hand-off: workflow executions go to the coordinator, never to a worker.

Batches of rows in "scheduling" are sent with CoordinatorService.StartWorkflows; each accepted one
moves scheduling → running. While the coordinator is unreachable the batch is retried with
backoff; the rows stay in "scheduling", so a restart finds them again (durable hand-off).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc
import sqlalchemy as sa

from attune.background import BackgroundTask
from attune.common.v1 import common_pb2
from attune.config import Settings
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune.logs import ThrottledLog
from attune.states import ExecutionState
from attune.storage import Database, log_failed_round
from attune.storage.schema import executions
from attune_services.scheduler.actions import ActionCache
from attune_services.scheduler.giveups import GiveUp, ResultSubmitter

log = logging.getLogger(__name__)
_failures = ThrottledLog(log)

MAX_BATCH = 200


class WorkflowHandoff:
    """Queues workflow executions and hands them to the coordinator."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        cache: ActionCache,
        coordinator: coordinator_pb2_grpc.CoordinatorServiceStub,
        submitter: ResultSubmitter,
        on_changed: Callable[[Iterable[str]], None] | None = None,
    ) -> None:
        self._on_changed = on_changed or (lambda ids: None)  # wakes the watches of changed executions
        self._db = db
        self._settings = settings
        self._cache = cache
        self._coordinator = coordinator
        self._submitter = submitter
        self._queue: dict[str, dict[str, Any]] = {}
        self._wake = asyncio.Event()
        self._loop = BackgroundTask("workflow-handoff", self._run)
        self._stopped = False

    def enqueue(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Adds workflow rows in "scheduling" (duplicates ignored)."""
        for row in rows:
            self._queue.setdefault(row["id"], dict(row))
        self._wake.set()

    def start(self) -> None:
        """Starts the hand-off task."""
        self._loop.start()

    async def stop(self) -> None:
        """Stops handing off (queued rows stay in "scheduling" in the database)."""
        self._stopped = True
        self._wake.set()
        await self._loop.stop()

    async def _run(self) -> None:
        failures = 0
        while not self._stopped:
            await self._wake.wait()
            self._wake.clear()
            while self._queue and not self._stopped:
                batch = list(self._queue.values())[:MAX_BATCH]
                try:
                    await self._hand_off(batch)
                    failures = 0
                except grpc.RpcError as err:
                    failures += 1
                    delay = min(
                        self._settings.retry_interval * 2 ** min(failures - 1, 10), self._settings.retry_interval * 20
                    )
                    log.warning(
                        "coordinator unavailable; retrying hand-off", extra={"error": err.code().name, "delay": delay}
                    )
                    await asyncio.sleep(delay)
                except Exception as err:
                    log_failed_round(_failures, "workflow hand-off", err)
                    await asyncio.sleep(self._settings.retry_interval)

    async def _hand_off(self, batch: list[dict[str, Any]]) -> None:
        ids = [row["id"] for row in batch]
        async with self._db.read() as conn:
            still = set(
                (
                    await conn.execute(
                        sa.select(executions.c.id).where(
                            executions.c.id.in_(ids), executions.c.state == ExecutionState.SCHEDULING
                        )
                    )
                ).scalars()
            )
        for execution_id in ids:
            if execution_id not in still:
                self._queue.pop(execution_id, None)  # cancelled or handed off by another replica
        batch = [row for row in batch if row["id"] in still]
        actions = await self._cache.get_many({row["action_ref"] for row in batch})
        starts: list[coordinator_pb2.WorkflowStart] = []
        missing: list[GiveUp] = []
        for row in batch:
            action = actions.get(row["action_ref"])
            if action is None or not action.workflow_yaml:
                missing.append(
                    GiveUp(
                        row["id"],
                        ExecutionState.FAILED,
                        f"workflow action {row['action_ref']!r} is no longer registered",
                        row["traceparent"] or "",
                    )
                )
                continue
            starts.append(
                coordinator_pb2.WorkflowStart(
                    execution_id=row["id"],
                    action_ref=row["action_ref"],
                    workflow_yaml=action.workflow_yaml,
                    workflow_source=action.workflow_file or "",
                    parameters_json=(row["parameters"] or "{}").encode(),
                    depth=row["depth"] or 0,
                    trace=common_pb2.TraceContext(traceparent=row["traceparent"] or ""),
                    timeout_seconds=row["timeout"] or 0.0,
                )
            )
        if missing:
            for execution_id in await self._submitter.submit(missing):
                self._queue.pop(execution_id, None)
        if not starts:
            return
        response = await self._coordinator.StartWorkflows(
            coordinator_pb2.StartWorkflowsRequest(workflows=starts), timeout=max(self._settings.shutdown_grace, 1.0)
        )
        accepted = list(response.accepted_execution_ids)
        now = time.time()
        async with self._db.write() as conn:
            moved = set(
                (
                    await conn.execute(
                        executions.update()
                        .where(executions.c.id.in_(accepted), executions.c.state == ExecutionState.SCHEDULING)
                        .values(state=ExecutionState.RUNNING, started_at=now, updated_at=now)
                        .returning(executions.c.id)
                    )
                ).scalars()
            )
            # Read in the same transaction: the connection is gone once the block ends.
            unmoved = list(set(accepted) - moved)
            canceling = (
                set(
                    (
                        await conn.execute(
                            sa.select(executions.c.id).where(
                                executions.c.id.in_(unmoved), executions.c.state == ExecutionState.CANCELING
                            )
                        )
                    ).scalars()
                )
                if unmoved
                else set()
            )
        self._on_changed(moved)
        self._on_changed({row["parent_id"] for row in batch if row["id"] in moved and row.get("parent_id")})
        for execution_id in accepted:
            self._queue.pop(execution_id, None)
        for execution_id in canceling:
            # Cancelled while being handed off: the coordinator now owns a run to stop.
            try:
                await self._coordinator.CancelWorkflow(
                    coordinator_pb2.CancelWorkflowRequest(execution_id=execution_id),
                    timeout=max(self._settings.shutdown_grace, 1.0),
                )
            except grpc.RpcError as err:
                log.warning(
                    "could not cancel a workflow handed off during its cancel",
                    extra={"execution_id": execution_id, "error": str(err)},
                )
        for start in starts:
            if start.execution_id not in accepted:
                self._queue.pop(start.execution_id, None)  # refused: the sweep offers it again later
