"""ChildExecutionService: the coordinator's requests for the child executions of workflow task
runs, in batches (docs/architecture.md, The life of one workflow step, 5), and its cancels of them.

Internal: only the coordinator calls it. Each child is idempotent on its request_id and refused
per child — unknown ref, bad parameters, and also a failure that is not an outage (a row the
database refuses, a bug: "internal error" with the id it is logged under), so that the
coordinator fails that task instead of sending it again forever. Only an outage (the database
away, the scheduler stopping) fails the batch as a whole: the coordinator sends it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

from attune.grpcutil.convert import execution_state_to_proto
from attune.grpcutil.errors import AttuneError, Unavailable, abort_for, is_outage, rpc_errors, status_for
from attune.grpcutil.server import RpcContext
from attune.internal.execution.v1 import execution_pb2 as child_pb2
from attune.internal.execution.v1 import execution_pb2_grpc as child_pb2_grpc
from attune_services.scheduler.cancel import Canceller
from attune_services.scheduler.requests import ChildLink, ExecutionRequests

log = logging.getLogger(__name__)

CHILD_CHUNK = 100


class ChildExecutionServicer(child_pb2_grpc.ChildExecutionServiceServicer):
    """Serves attune.internal.execution.v1.ChildExecutionService."""

    def __init__(self, requests: ExecutionRequests, canceller: Canceller) -> None:
        self._requests = requests
        self._canceller = canceller

    @rpc_errors
    async def CancelChildExecution(
        self, request: child_pb2.CancelChildExecutionRequest, context: RpcContext
    ) -> child_pb2.CancelChildExecutionResponse:
        """Cancels a child as a client's CancelExecution does, sharing its batches; idempotent by
        nature (an ended or cancelling child is left as it is), so no request log is kept."""
        row = await self._canceller.cancel(request.id)
        return child_pb2.CancelChildExecutionResponse(state=execution_state_to_proto(row["state"]))

    @rpc_errors
    async def RequestChildExecutions(
        self, request: child_pb2.RequestChildExecutionsRequest, context: RpcContext
    ) -> child_pb2.RequestChildExecutionsResponse:
        """Creates workflow children concurrently (group-committed); errors are per child."""
        return child_pb2.RequestChildExecutionsResponse(children=await self._children(request.children))

    async def StreamChildExecutions(
        self,
        request_iterator: AsyncIterator[child_pb2.StreamChildExecutionsRequest],
        context: RpcContext,
    ) -> AsyncIterator[child_pb2.StreamChildExecutionsResponse]:
        """Each batch is handled as it arrives (batches overlap) and answered once its children
        are stored. A batch that fails as a whole (the scheduler is shutting down, the database
        is away: UNAVAILABLE) ends the stream with that status; the sender re-sends what was not
        answered."""
        answers: asyncio.Queue[child_pb2.StreamChildExecutionsResponse | BaseException | None] = asyncio.Queue()

        async def answer(batch: child_pb2.StreamChildExecutionsRequest) -> None:
            try:
                children = await self._children(batch.children)
            except Exception as err:
                answers.put_nowait(err)
                return
            answers.put_nowait(child_pb2.StreamChildExecutionsResponse(batch_id=batch.batch_id, children=children))

        async def read() -> None:
            batches: set[asyncio.Task[None]] = set()
            try:
                async for batch in request_iterator:
                    task = asyncio.create_task(answer(batch))
                    batches.add(task)
                    task.add_done_callback(batches.discard)
                if batches:
                    await asyncio.gather(*batches)
            finally:
                answers.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (item := await answers.get()) is not None:
                if isinstance(item, BaseException):
                    # Logged as its kind needs (an outage once per interval, a bug with an error id).
                    await abort_for(context, item, method="StreamChildExecutions")  # raises
                    return
                yield item
        finally:
            reader.cancel()

    async def _children(
        self, requests: Sequence[child_pb2.ChildExecutionRequest]
    ) -> list[child_pb2.ChildExecutionResponse]:
        """Creates children concurrently (group-committed); errors are per child, except that
        an outage fails the whole batch (it is worth sending again).

        A wide fan-out is validated CHILD_CHUNK children at a time, yielding between chunks, so
        the first chunk is inserted and dispatched while the next is still being validated
        instead of every worker waiting for the whole request."""
        pending: list[asyncio.Future[child_pb2.ChildExecutionResponse]] = []
        for start in range(0, len(requests), CHILD_CHUNK):
            if start:
                await asyncio.sleep(0)
            pending += [asyncio.ensure_future(self._child(c)) for c in requests[start : start + CHILD_CHUNK]]
        return list(await asyncio.gather(*pending))

    async def _child(self, child: child_pb2.ChildExecutionRequest) -> child_pb2.ChildExecutionResponse:
        link = ChildLink(
            parent_id=child.parent_id or child.link.workflow_execution_id,
            workflow_execution_id=child.link.workflow_execution_id or child.parent_id,
            task_name=child.link.task_name,
            task_run=child.link.run,
            item_index=None if child.link.item_index < 0 else child.link.item_index,
            attempt=child.link.attempt,
            depth=child.depth,
            traceparent=child.trace.traceparent,
        )
        try:
            row = await self._requests.request_child(
                child.action_ref,
                child.parameters_json,
                request_id=child.request_id,
                timeout=child.timeout_seconds,
                link=link,
            )
        except AttuneError as err:
            if isinstance(err, Unavailable):
                raise  # not the child's fault: the batch fails and is sent again
            details = "; ".join(f"{v.field}: {v.description}" for v in err.violations)
            return child_pb2.ChildExecutionResponse(
                request_id=child.request_id,
                error=f"{err.message}" + (f" ({details})" if details and details not in err.message else ""),
            )
        except Exception as err:
            if is_outage(err):
                raise
            # Sending it again would fail again: the child is refused, its task fails with why
            # ("internal error" and the error id its traceback is logged under; no internals).
            status = status_for(err, method="ChildExecutionService (one child)")
            return child_pb2.ChildExecutionResponse(
                request_id=child.request_id, error=f"the scheduler could not store it: {status.details}"
            )
        return child_pb2.ChildExecutionResponse(request_id=child.request_id, execution_id=row["id"])
