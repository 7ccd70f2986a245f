"""Workflow hand-off: workflow executions go to the coordinator, never to a worker.

Batches of rows in "scheduling" are sent with CoordinatorService.StartWorkflows; each accepted one
moves scheduling → running. While the coordinator is unreachable the batch is retried with
backoff; the rows stay in "scheduling", so a restart finds them again (durable hand-off).

A workflow action with a concurrency policy is handed off only once its key has a free slot: the
admission (concurrency.py) marks the row with `scheduled_at` in its own transaction, so the slot
is held from then on, through a crash, whichever replica hands the row off. One that must wait is
held here and tried again every RETRY_INTERVAL; one refused is `cancelled` through the completion
service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
from attune_services.scheduler.concurrency import RETRY_INTERVAL, Candidate, admit
from attune_services.scheduler.giveups import GiveUp, ResultSubmitter
from attune_services.scheduler.reruns import rerun_spec

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
        self._held: dict[str, dict[str, Any]] = {}  # waiting for a slot of their concurrency key
        self._wake = asyncio.Event()
        self._loop = BackgroundTask("workflow-handoff", self._run)
        self._stopped = False

    def enqueue(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Adds workflow rows in "scheduling" (duplicates ignored)."""
        for row in rows:
            if row["id"] not in self._held:
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
            if self._held:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RETRY_INTERVAL):
                        await self._wake.wait()
                held, self._held = self._held, {}
                for execution_id, row in held.items():
                    self._queue.setdefault(execution_id, row)
            else:
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
        batch = await self._admitted([row for row in batch if row["id"] in still])
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
                    **_rerun_fields(row),
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

    async def _admitted(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows of `batch` that may be handed off now: those with no concurrency policy, and
        those holding (or now given) a slot of their key. The others are held or refused."""
        bound = {row["id"]: row for row in batch if row.get("concurrency_key") is not None}
        if not bound:
            return batch
        actions = await self._cache.get_many({row["action_ref"] for row in bound.values()})
        policies = {ref: a.concurrency for ref, a in actions.items() if a.concurrency is not None}
        async with self._db.write() as conn:
            admitted = set(
                (
                    await conn.execute(
                        sa.select(executions.c.id).where(
                            executions.c.id.in_(list(bound)), executions.c.scheduled_at.is_not(None)
                        )
                    )
                ).scalars()
            )
            candidates = [
                Candidate(id=i, action_ref=row["action_ref"], key=row["concurrency_key"])
                for i, row in bound.items()
                if i not in admitted
            ]
            admission = await admit(conn, candidates, policies, is_sqlite=self._db.is_sqlite)
            if admission.admitted:
                await conn.execute(
                    executions.update()
                    .where(
                        executions.c.id.in_(sorted(admission.admitted)),
                        executions.c.state == ExecutionState.SCHEDULING,
                        executions.c.scheduled_at.is_(None),
                    )
                    .values(scheduled_at=time.time())
                )
        for execution_id in admission.waiting:
            self._held[execution_id] = self._queue.pop(execution_id, bound[execution_id])
        refused = [
            GiveUp(i, ExecutionState.CANCELLED, reason, bound[i]["traceparent"] or "")
            for i, reason in admission.refused.items()
        ]
        if refused:
            acked = await self._submitter.submit(refused)
            for give_up in refused:  # one not acknowledged is tried again, like one that waits
                row = self._queue.pop(give_up.execution_id, None)
                if give_up.execution_id not in acked and row is not None:
                    self._held[give_up.execution_id] = row
        return [row for row in batch if not admission.keeps_back(row["id"])]


def _rerun_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """A workflow re-run from some tasks starts seeded from its original (reruns.py)."""
    from_tasks, inputs = rerun_spec(row)
    if not from_tasks:
        return {}
    return {
        "rerun_of": row["rerun_of"] or "",
        "from_tasks": from_tasks,
        "task_inputs_json": json.dumps(inputs).encode() if inputs else b"",
    }
