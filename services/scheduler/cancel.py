"""Cancelling an execution, by where it is (DESIGN §2).

- Not yet on a worker (requested, scheduling): → canceling, then a CANCELLED result to the
  completion service (the scheduler never writes terminal states).
- On a worker (scheduled, running): → canceling and a Cancellations message to that worker,
  which reports CANCELLED through the completion service.
- A running workflow: → canceling and CancelWorkflow to the coordinator.
- Already canceling: the message is sent again (idempotent). Terminal: FAILED_PRECONDITION.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable

import grpc
import sqlalchemy as sa

from attune.config import Settings
from attune.grpcutil.errors import FailedPrecondition, NotFound, Unavailable
from attune.states import CANCELING, CANCELLED, REQUESTED, RUNNING, SCHEDULED, SCHEDULING, TERMINAL
from attune.storage import Database
from attune.storage.schema import executions
from attune.workflow.v1 import workflow_pb2, workflow_pb2_grpc
from attune_services.scheduler.dispatch import Dispatcher
from attune_services.scheduler.giveups import GiveUp, ResultSubmitter

log = logging.getLogger(__name__)

Row = dict[str, Any]


class Canceller:
    """Applies CancelExecution (and the scheduler's side of CancelWorkflow)."""

    def __init__(
        self, *, db: Database, settings: Settings, dispatcher: Dispatcher, submitter: ResultSubmitter,
        coordinator: workflow_pb2_grpc.WorkflowServiceStub, on_changed: Callable[[Iterable[str]], None] | None = None,
    ) -> None:  # fmt: skip
        self._on_changed = on_changed or (lambda ids: None)  # wakes the watches of changed executions
        self._db = db
        self._settings = settings
        self._dispatcher = dispatcher
        self._submitter = submitter
        self._coordinator = coordinator

    async def cancel(self, execution_id: str) -> Row:
        """Cancels one execution; returns its row after the request."""
        for _ in range(5):  # a concurrent transition makes the CAS miss: look again
            row = await self._load(execution_id)
            state = row["state"]
            if state in TERMINAL:
                raise FailedPrecondition(f"execution {execution_id} already {state}")
            if state == CANCELING or await self._to_canceling(execution_id, state):
                self._on_changed([execution_id, *([row["parent_id"]] if row["parent_id"] else [])])
                await self._notify(row)
                return await self._load(execution_id)
        raise FailedPrecondition(f"execution {execution_id} keeps changing state; retry the cancel")

    async def _load(self, execution_id: str) -> Row:
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(executions).where(executions.c.id == execution_id))).mappings().first()
        if row is None:
            raise NotFound(f"no execution {execution_id!r}")
        return dict(row)

    async def _to_canceling(self, execution_id: str, expected: str) -> bool:
        if expected not in (REQUESTED, SCHEDULING, SCHEDULED, RUNNING):
            return False
        async with self._db.write() as conn:
            result = await conn.execute(
                executions.update()
                .where(executions.c.id == execution_id, executions.c.state == expected)
                .values(state=CANCELING, updated_at=time.time())
            )
        return bool(result.rowcount)

    async def _notify(self, row: Row) -> None:
        """Tells whoever holds the execution to stop it."""
        execution_id = row["id"]
        if row["runner_type"] == "workflow" and row["state"] in (RUNNING, CANCELING) and row["started_at"]:
            await self._cancel_workflow(execution_id)
        elif row["worker_id"]:
            # If the worker is away, it hears it on reconnect (or its executions are abandoned).
            self._dispatcher.send_cancellations(row["worker_id"], [execution_id])
        else:
            self._dispatcher.forget([execution_id])
            give_up = GiveUp(execution_id, CANCELLED, "cancelled before it was dispatched", row["traceparent"] or "")
            if execution_id not in await self._submitter.submit([give_up]):
                # Stays canceling; the sweeper submits it again.
                log.warning("completion service did not confirm a cancel yet", extra={"execution_id": execution_id})

    async def _cancel_workflow(self, execution_id: str) -> None:
        try:
            await self._coordinator.CancelWorkflow(
                workflow_pb2.CancelWorkflowRequest(execution_id=execution_id),
                timeout=max(self._settings.shutdown_grace, 1.0),
            )
        except grpc.RpcError as err:
            log.warning("coordinator did not take the cancel", extra={"execution_id": execution_id, "error": str(err)})
            if err.code() == grpc.StatusCode.UNAVAILABLE:
                raise Unavailable(f"execution {execution_id} is canceling; the coordinator is unreachable") from err
