"""WorkflowService as clients see it at the scheduler: queries forwarded to the coordinator.

So clients need one address (docs/architecture.md, Services). The public messages are copied
into the coordinator's internal CoordinatorService messages (same fields, same numbers) and
back. Each task run's state is refreshed from the child execution's current row, which the
scheduler and completion service keep up to date.

The coordinator's refusals reach the client as the coordinator answered them (code, message and
field violations: NOT_FOUND for an unknown run); a coordinator that cannot be reached is
UNAVAILABLE. Page tokens are the scheduler's own (`pages.py`), wrapping the coordinator's key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
import sqlalchemy as sa

from attune.config import Settings
from attune.grpcutil.convert import execution_state_to_proto
from attune.grpcutil.errors import MESSAGE_MAX_BYTES, invalid_field, rpc_errors
from attune.grpcutil.server import RpcContext
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune.storage import Database
from attune.storage.schema import executions
from attune.workflow.v1 import workflow_pb2, workflow_pb2_grpc
from attune_services.scheduler.cancel import Canceller
from attune_services.scheduler.pages import key_after, page_token

T = TypeVar("T")

# The trailer carrying a rich status's details (field violations), passed on as received.
_DETAILS_TRAILER = "grpc-status-details-bin"
# The coordinator's answers passed on as they are; any other failure to reach it is UNAVAILABLE.
_PASSED_ON = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.INTERNAL,
    }
)


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

    @rpc_errors
    async def GetWorkflowRun(
        self, request: workflow_pb2.GetWorkflowRunRequest, context: RpcContext
    ) -> workflow_pb2.GetWorkflowRunResponse:
        """The run with each task run's child state as currently stored."""
        forwarded = coordinator_pb2.GetWorkflowRunRequest(execution_id=_required_id(request.execution_id))
        response = await _forward(context, lambda: self._coordinator.GetWorkflowRun(forwarded, timeout=self._timeout))
        await self._refresh(response.run)
        return workflow_pb2.GetWorkflowRunResponse(run=response.run)

    @rpc_errors
    async def ListWorkflowRuns(
        self, request: workflow_pb2.ListWorkflowRunsRequest, context: RpcContext
    ) -> workflow_pb2.ListWorkflowRunsResponse:
        """Forwarded to the coordinator (runs are listed without their task runs)."""
        filters = {"state": request.state}
        forwarded = coordinator_pb2.ListWorkflowRunsRequest(
            state=request.state,
            page_size=request.page_size,
            page_token=key_after(request.page_token, "workflow_runs", filters),
        )
        response = await _forward(context, lambda: self._coordinator.ListWorkflowRuns(forwarded, timeout=self._timeout))
        return workflow_pb2.ListWorkflowRunsResponse(
            runs=response.runs, next_page_token=page_token(response.next_page_token, "workflow_runs", filters)
        )

    @rpc_errors
    async def CancelWorkflow(
        self, request: workflow_pb2.CancelWorkflowRequest, context: RpcContext
    ) -> workflow_pb2.CancelWorkflowResponse:
        """Cancels the workflow's execution (→ canceling, then the coordinator), returns the run."""
        execution_id = _required_id(request.execution_id)
        await self._canceller.cancel(execution_id)
        response = await _forward(
            context,
            lambda: self._coordinator.GetWorkflowRun(
                coordinator_pb2.GetWorkflowRunRequest(execution_id=execution_id), timeout=self._timeout
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


def _required_id(execution_id: str) -> str:
    if not execution_id:
        raise invalid_field("execution_id", "is required")
    return execution_id


async def _forward(context: RpcContext, call: Callable[[], Awaitable[T]]) -> T:
    """Runs a call to the coordinator. Its refusal becomes this call's, with its message and
    details (field violations); a coordinator that did not answer raises on, for `rpc_errors` to
    answer UNAVAILABLE."""
    try:
        return await call()
    except grpc.aio.AioRpcError as err:
        if err.code() not in _PASSED_ON:
            raise
        details = [(key, value) for key, value in (err.trailing_metadata() or ()) if key == _DETAILS_TRAILER]
        message = (err.details() or "").encode()[:MESSAGE_MAX_BYTES].decode(errors="ignore")
        await context.abort(err.code(), message, tuple(details))
        raise  # unreachable: abort raises
