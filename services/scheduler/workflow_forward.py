"""WorkflowService as clients see it at the scheduler: queries forwarded to the coordinator.

So clients need one address (docs/architecture.md, Services). The public messages are copied
into the coordinator's internal CoordinatorService messages (same fields, same numbers) and
back. Each task run's state is refreshed from the child execution's current row, which the
scheduler and completion service keep up to date.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
import sqlalchemy as sa

from attune.config import Settings
from attune.grpcutil.convert import execution_state_to_proto
from attune.grpcutil.errors import AttuneError, to_status
from attune.grpcutil.server import RpcContext
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune.storage import Database
from attune.storage.schema import executions
from attune.workflow.v1 import workflow_pb2, workflow_pb2_grpc
from attune_services.scheduler.cancel import Canceller

T = TypeVar("T")


class WorkflowForwardServicer(workflow_pb2_grpc.WorkflowServiceServicer):
    """Serves attune.workflow.v1.WorkflowService by forwarding to the coordinator."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        coordinator: coordinator_pb2_grpc.CoordinatorServiceStub,
        canceller: Canceller,
    ) -> None:
        self._db = db
        self._timeout = max(settings.shutdown_grace, 1.0)
        self._coordinator = coordinator
        self._canceller = canceller

    async def GetWorkflowRun(
        self, request: workflow_pb2.GetWorkflowRunRequest, context: RpcContext
    ) -> workflow_pb2.GetWorkflowRunResponse:
        """The run with each task run's child state as currently stored."""
        forwarded = coordinator_pb2.GetWorkflowRunRequest(execution_id=request.execution_id)
        response = await _forward(context, lambda: self._coordinator.GetWorkflowRun(forwarded, timeout=self._timeout))
        await self._refresh(response.run)
        return workflow_pb2.GetWorkflowRunResponse(run=response.run)

    async def ListWorkflowRuns(
        self, request: workflow_pb2.ListWorkflowRunsRequest, context: RpcContext
    ) -> workflow_pb2.ListWorkflowRunsResponse:
        """Forwarded to the coordinator (runs are listed without their task runs)."""
        forwarded = coordinator_pb2.ListWorkflowRunsRequest(
            state=request.state, page_size=request.page_size, page_token=request.page_token
        )
        response = await _forward(context, lambda: self._coordinator.ListWorkflowRuns(forwarded, timeout=self._timeout))
        return workflow_pb2.ListWorkflowRunsResponse(runs=response.runs, next_page_token=response.next_page_token)

    async def CancelWorkflow(
        self, request: workflow_pb2.CancelWorkflowRequest, context: RpcContext
    ) -> workflow_pb2.CancelWorkflowResponse:
        """Cancels the workflow's execution (→ canceling, then the coordinator), returns the run."""
        try:
            await self._canceller.cancel(request.execution_id)
        except AttuneError as err:
            # grpc.aio's concrete context has abort_with_status; its abstract base and the stubs omit it.
            await context.abort_with_status(to_status(err))  # type: ignore[attr-defined]
        response = await _forward(
            context,
            lambda: self._coordinator.GetWorkflowRun(
                coordinator_pb2.GetWorkflowRunRequest(execution_id=request.execution_id), timeout=self._timeout
            ),
        )
        await self._refresh(response.run)
        return workflow_pb2.CancelWorkflowResponse(run=response.run)

    async def _refresh(self, run: workflow_pb2.WorkflowRun) -> None:
        ids = [t.child_execution_id for t in run.task_runs if t.child_execution_id]
        if not ids:
            return
        async with self._db.read() as conn:
            states = dict(
                (
                    await conn.execute(sa.select(executions.c.id, executions.c.state).where(executions.c.id.in_(ids)))
                ).all()
            )
        for task_run in run.task_runs:
            state = states.get(task_run.child_execution_id)
            if state is not None:
                task_run.state = execution_state_to_proto(state)


async def _forward(context: RpcContext, call: Callable[[], Awaitable[T]]) -> T:
    """Runs a call to the coordinator; its error (with rich details) becomes this call's error."""
    try:
        return await call()
    except grpc.aio.AioRpcError as err:
        await context.abort(err.code(), err.details() or "", err.trailing_metadata() or ())
        raise  # unreachable: abort raises
