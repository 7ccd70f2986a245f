"""Pausing and resuming workflows (PauseExecution, ResumeExecution; docs/workflows.md, Pause and resume).

The coordinator decides: the scheduler forwards the request (PauseWorkflow / ResumeWorkflow, as
a cancel of a workflow is forwarded) and then moves the execution's row to the state the run
answered, by compare-and-set: running → pausing or paused, pausing | paused → running. A
workflow answered `pausing` becomes `paused` when its last running task ends, and nested
workflows pause and resume with their parent; the sweep moves such rows on from the
coordinator's record (`follow_pauses`). Terminal states stay the
completion service's: a paused workflow that is cancelled or fails ends through it.

Only a workflow the coordinator has taken can be paused; a plain action, or an execution that is
not running, is FAILED_PRECONDITION.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
import sqlalchemy as sa

from attune.config import Settings
from attune.grpcutil.convert import workflow_state_from_proto
from attune.grpcutil.errors import FailedPrecondition, Unavailable
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune.states import ExecutionState
from attune.storage import Database
from attune.storage.schema import executions, workflow_executions
from attune_services.scheduler.execution_rows import execution_row

Row = dict[str, Any]

PAUSED_STATES = (ExecutionState.PAUSING, ExecutionState.PAUSED)


class Pauses:
    """Applies PauseExecution and ResumeExecution."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        coordinator: coordinator_pb2_grpc.CoordinatorServiceStub,
        on_changed: Callable[[Iterable[str]], None] | None = None,
    ) -> None:
        self._db = db
        self._timeout = max(settings.shutdown_grace, 1.0)
        self._coordinator = coordinator
        self._on_changed = on_changed or (lambda ids: None)  # wakes the watches of changed executions

    async def pause(self, execution_id: str) -> Row:
        """Pauses a running workflow; returns its row after the request (pausing or paused)."""
        row = await self._workflow(execution_id)
        if row["state"] in PAUSED_STATES:
            return row
        if row["state"] != ExecutionState.RUNNING or not row["started_at"]:
            raise FailedPrecondition(
                f"execution {execution_id} is {row['state']}; only a running workflow can be paused"
            )
        run = await self._forward(
            execution_id,
            lambda: self._coordinator.PauseWorkflow(
                coordinator_pb2.PauseWorkflowRequest(execution_id=execution_id), timeout=self._timeout
            ),
        )
        status = workflow_state_from_proto(run.state)
        if status in PAUSED_STATES:
            await self._move(execution_id, (ExecutionState.RUNNING,), status)
        for child_id in await self._nested(execution_id, (ExecutionState.RUNNING,)):
            await self._quietly(self.pause, child_id)
        return await self._workflow(execution_id)

    async def resume(self, execution_id: str) -> Row:
        """Resumes a paused (or pausing) workflow; returns its row after the request."""
        row = await self._workflow(execution_id)
        if row["state"] == ExecutionState.RUNNING:
            return row
        if row["state"] not in PAUSED_STATES:
            raise FailedPrecondition(
                f"execution {execution_id} is {row['state']}; only a paused workflow can be resumed"
            )
        for child_id in await self._nested(execution_id, PAUSED_STATES):
            await self._quietly(self.resume, child_id)
        run = await self._forward(
            execution_id,
            lambda: self._coordinator.ResumeWorkflow(
                coordinator_pb2.ResumeWorkflowRequest(execution_id=execution_id), timeout=self._timeout
            ),
        )
        if workflow_state_from_proto(run.state) == ExecutionState.RUNNING:
            await self._move(execution_id, PAUSED_STATES, ExecutionState.RUNNING)
        return await self._workflow(execution_id)

    async def _nested(self, execution_id: str, states: tuple[str, ...]) -> list[str]:
        """The nested workflows of a workflow (its children that are workflows) in `states`."""
        query = sa.select(executions.c.id).where(
            executions.c.parent_id == execution_id,
            executions.c.runner_type == "workflow",
            executions.c.state.in_(states),
        )
        async with self._db.read() as conn:
            return list((await conn.execute(query)).scalars())

    @staticmethod
    async def _quietly(change: Callable[[str], Awaitable[Row]], execution_id: str) -> None:
        """Pauses or resumes a nested workflow with its parent; one that ended or is not taken by
        the coordinator yet in the meantime is left as it is (the refusal is its own, not the
        parent's)."""
        with contextlib.suppress(FailedPrecondition):
            await change(execution_id)

    async def _workflow(self, execution_id: str) -> Row:
        row = await execution_row(self._db, execution_id)
        if row["runner_type"] != "workflow":
            raise FailedPrecondition(
                f"execution {execution_id} runs the plain action {row['action_ref']}; "
                "only a workflow can be paused or resumed"
            )
        return row

    async def _move(self, execution_id: str, expected: tuple[str, ...], to: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                executions.update()
                .where(executions.c.id == execution_id, executions.c.state.in_(expected))
                .values(state=to, updated_at=time.time())
            )
        self._on_changed([execution_id])

    async def _forward(self, execution_id: str, call: Callable[[], Any]) -> Any:
        """The coordinator's answer (its run); its refusal passed on, unreachable as UNAVAILABLE."""
        try:
            return (await call()).run
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise FailedPrecondition(f"execution {execution_id} has no workflow run yet; retry") from err
            raise Unavailable(f"the coordinator did not answer for execution {execution_id}; retry") from err


async def follow_pauses(db: Database) -> list[str]:
    """Moves workflow rows to the pause state the coordinator has decided since (run by the
    sweep): `pausing` → `paused` once nothing of it runs; a nested workflow paused or resumed
    with its parent; a pause or resume whose scheduler stopped between the coordinator's answer
    and its own compare-and-set. Returns the ids moved."""
    e, w = executions, workflow_executions
    paused_runs = w.c.status.in_(PAUSED_STATES)
    # Driven by the two state indexes: few workflows are paused at any time.
    query = sa.union_all(
        sa.select(e.c.id, w.c.status)
        .select_from(w.join(e, e.c.id == w.c.id))
        .where(paused_runs, e.c.state.in_((ExecutionState.RUNNING, ExecutionState.PAUSING)), e.c.state != w.c.status),
        sa.select(e.c.id, w.c.status)
        .select_from(e.join(w, w.c.id == e.c.id))
        .where(e.c.state.in_(PAUSED_STATES), w.c.status == ExecutionState.RUNNING),
    )
    async with db.read() as conn:  # a read first: most sweeps find nothing, and need no write lock
        found = (await conn.execute(query)).all()
    if not found:
        return []
    by_status: dict[str, list[str]] = {}
    for execution_id, status in found:
        by_status.setdefault(status, []).append(execution_id)
    moved: list[str] = []
    now = time.time()
    async with db.write() as conn:
        for status, ids in by_status.items():
            expected = (
                PAUSED_STATES if status == ExecutionState.RUNNING else (ExecutionState.RUNNING, ExecutionState.PAUSING)
            )
            still = sa.select(w.c.id).where(w.c.id.in_(ids), w.c.status == status)  # as decided now
            done = await conn.execute(
                e.update()
                .where(e.c.id.in_(ids), e.c.state.in_(expected), e.c.id.in_(still))
                .values(state=status, updated_at=now)
                .returning(e.c.id)
            )
            moved += done.scalars()
    return moved
