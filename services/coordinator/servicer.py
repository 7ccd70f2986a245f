"""attune.internal.workflow.v1.CoordinatorService: the coordinator's gRPC surface over `Workflows`.

Only other services call it: the scheduler (hand-offs, and the queries and cancels its clients make
on the public WorkflowService) and the completion service (task outcomes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from attune.grpcutil.acks import gathered_acks
from attune.grpcutil.convert import workflow_state_from_proto
from attune.grpcutil.errors import InvalidArgument, NotFound, Violation, rpc_errors
from attune.grpcutil.server import RpcContext
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune.storage import Database
from attune.workflow.v1 import workflow_pb2
from attune_services.coordinator.runs import get_run, list_runs
from attune_services.coordinator.workflows import EventOutcome, Workflows

log = logging.getLogger(__name__)

#: Outcome batches of one ReportOutcomes stream applied concurrently.
STREAM_WINDOW = 16


class CoordinatorServicer(coordinator_pb2_grpc.CoordinatorServiceServicer):
    """Starts workflows, applies task outcomes, answers queries and cancellations."""

    def __init__(self, *, db: Database, workflows: Workflows, max_page_size: int) -> None:
        self._db = db
        self._workflows = workflows
        self._max_page_size = max_page_size  # ATTUNE_MAX_PAGE_SIZE

    @rpc_errors
    async def StartWorkflows(
        self, request: coordinator_pb2.StartWorkflowsRequest, context: RpcContext
    ) -> coordinator_pb2.StartWorkflowsResponse:
        """Records and starts each workflow; answers the ids that are durably recorded."""
        missing = [
            Violation(f"workflows[{i}].execution_id", "is required")
            for i, w in enumerate(request.workflows)
            if not w.execution_id
        ]
        if missing:
            raise InvalidArgument("every workflow needs an execution_id", missing)
        accepted = await self._workflows.start_many(list(request.workflows))
        return coordinator_pb2.StartWorkflowsResponse(accepted_execution_ids=accepted)

    @rpc_errors
    async def ReportOutcomes(
        self, request_iterator: AsyncIterator[coordinator_pb2.ReportOutcomesRequest], context: RpcContext
    ) -> AsyncIterator[coordinator_pb2.ReportOutcomesResponse]:
        """Applies outcome batches as they arrive (several at once) and acks each once applied.
        An outcome that fails to apply is not acked (the completion service sends it again); the
        failure is logged, once per interval for an outage (`Workflows.apply_outcomes`)."""
        acks: asyncio.Queue[list[str] | None] = asyncio.Queue()
        window = asyncio.Semaphore(STREAM_WINDOW)

        async def apply(batch: coordinator_pb2.ReportOutcomesRequest) -> None:
            try:
                acked = await self._workflows.apply_outcomes(list(batch.outcomes))
                if acked:
                    await acks.put(acked)
            finally:
                window.release()

        async def read() -> None:
            running: set[asyncio.Task[None]] = set()
            try:
                async for batch in request_iterator:
                    await window.acquire()
                    task = asyncio.create_task(apply(batch))
                    running.add(task)
                    task.add_done_callback(running.discard)
                if running:
                    await asyncio.gather(*running, return_exceptions=True)
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                pass  # the completion service went away; it re-sends what was not acked
            finally:
                await acks.put(None)

        reader = asyncio.create_task(read())
        try:
            async for acked in gathered_acks(acks):  # one response per ACK_LINGER_S, not per outcome
                if acked is None:
                    break
                yield coordinator_pb2.ReportOutcomesResponse(acked_execution_ids=acked)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    @rpc_errors
    async def GetWorkflowRun(
        self, request: coordinator_pb2.GetWorkflowRunRequest, context: RpcContext
    ) -> coordinator_pb2.GetWorkflowRunResponse:
        """A workflow run with its task runs."""
        return coordinator_pb2.GetWorkflowRunResponse(run=await self._run(request.execution_id))

    @rpc_errors
    async def ListWorkflowRuns(
        self, request: coordinator_pb2.ListWorkflowRunsRequest, context: RpcContext
    ) -> coordinator_pb2.ListWorkflowRunsResponse:
        """Runs newest first, optionally only those in one state."""
        if request.page_size < 0:
            raise InvalidArgument("page_size must not be negative", [Violation("page_size", "must be >= 0")])
        async with self._db.read() as conn:
            runs, token = await list_runs(
                conn,
                status=workflow_state_from_proto(request.state),
                page_size=request.page_size,
                page_token=request.page_token,
                max_page_size=self._max_page_size,
            )
        return coordinator_pb2.ListWorkflowRunsResponse(runs=runs, next_page_token=token)

    @rpc_errors
    async def CancelWorkflow(
        self, request: coordinator_pb2.CancelWorkflowRequest, context: RpcContext
    ) -> coordinator_pb2.CancelWorkflowResponse:
        """Cancels a running workflow (a finished one is returned unchanged)."""
        self._require_id(request.execution_id)
        if await self._workflows.cancel(request.execution_id) == EventOutcome.UNKNOWN:
            await self._run(request.execution_id)  # NOT_FOUND unless it failed at start
        return coordinator_pb2.CancelWorkflowResponse(run=await self._run(request.execution_id))

    @rpc_errors
    async def PauseWorkflow(
        self, request: coordinator_pb2.PauseWorkflowRequest, context: RpcContext
    ) -> coordinator_pb2.PauseWorkflowResponse:
        """Pauses a running workflow (a finished or paused one is returned unchanged)."""
        self._require_id(request.execution_id)
        await self._workflows.pause(request.execution_id)
        return coordinator_pb2.PauseWorkflowResponse(run=await self._run(request.execution_id))

    @rpc_errors
    async def ResumeWorkflow(
        self, request: coordinator_pb2.ResumeWorkflowRequest, context: RpcContext
    ) -> coordinator_pb2.ResumeWorkflowResponse:
        """Resumes a paused workflow (any other is returned unchanged)."""
        self._require_id(request.execution_id)
        await self._workflows.resume(request.execution_id)
        return coordinator_pb2.ResumeWorkflowResponse(run=await self._run(request.execution_id))

    async def _run(self, execution_id: str) -> workflow_pb2.WorkflowRun:
        self._require_id(execution_id)
        async with self._db.read() as conn:
            run = await get_run(conn, execution_id)
        if run is None:
            raise NotFound(f"workflow run {execution_id} not found")
        return run

    @staticmethod
    def _require_id(execution_id: str) -> None:
        if not execution_id:
            raise InvalidArgument("execution_id is required", [Violation("execution_id", "is required")])
