"""Fake peers for service tests: real gRPC servicers on the generated stubs that record what the
service under test asked of them and answer like the real ones would.

- `FakeExecutionService`: the scheduler as the coordinator uses it: its ChildExecutionService
  (child requests and cancels). `serve_on` adds it to a server.
- `FakeCompletionService`: the completion service as the coordinator (SubmitResult) and the
  worker (the SubmitResults stream) use it.
- `FakeCoordinatorService`: the coordinator's CoordinatorService as the scheduler (hand-offs,
  cancels, runs) and the completion service (the ReportOutcomes stream) use it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc

from attune.common.v1 import common_pb2
from attune.grpcutil.server import RpcContext
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.internal.execution.v1 import execution_pb2 as child_pb2
from attune.internal.execution.v1 import execution_pb2_grpc as child_pb2_grpc
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune.workflow.v1 import workflow_pb2
from tests.support.polling import eventually


def child_id_of(request_id: str) -> str:
    """The execution id the fake scheduler gives a request_id (32 hex digits, like real ids)."""
    return hashlib.md5(request_id.encode()).hexdigest()


class FakeExecutionService(child_pb2_grpc.ChildExecutionServiceServicer):
    """Records child requests, answers an id per request_id (idempotent like the real one);
    refuses action refs starting with "missing.", and answers UNAVAILABLE (child requests and
    cancels) while `down` is set. A batch holding an action ref starting with "broken." fails as
    a whole with INTERNAL (as a bug would), recorded in `refused_batches` (request_ids). Serves
    both the stream the coordinator uses and the unary call (counted apart). A cancel takes
    `cancel_delay` seconds; `most_cancels_in_flight` is the most it answered at once."""

    def __init__(self) -> None:
        self.requests: list[child_pb2.ChildExecutionRequest] = []
        self.ids: dict[str, str] = {}
        self.cancels: list[str] = []
        self.down = False
        self.cancel_delay = 0.0
        self.cancels_in_flight = 0
        self.most_cancels_in_flight = 0
        self.streamed_batches = 0
        self.unary_batches = 0
        self.refused_batches: list[list[str]] = []

    async def StreamChildExecutions(self, request_iterator: Any, context: RpcContext) -> Any:
        async for batch in request_iterator:
            await self._check(batch, context)
            self.streamed_batches += 1
            yield child_pb2.StreamChildExecutionsResponse(batch_id=batch.batch_id, children=self._answer(batch))

    async def RequestChildExecutions(self, request: Any, context: RpcContext) -> Any:
        await self._check(request, context)
        self.unary_batches += 1
        return child_pb2.RequestChildExecutionsResponse(children=self._answer(request))

    async def _check(self, request: Any, context: RpcContext) -> None:
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "scheduler is down")
        if any(child.action_ref.startswith("broken.") for child in request.children):
            self.refused_batches.append([child.request_id for child in request.children])
            await context.abort(
                grpc.StatusCode.INTERNAL, "internal error; the service logged it with error id 0123abcd"
            )

    def _answer(self, request: Any) -> list[child_pb2.ChildExecutionResponse]:
        answers = []
        for child in request.children:
            self.requests.append(child)
            if child.action_ref.startswith("missing."):
                answers.append(
                    child_pb2.ChildExecutionResponse(
                        request_id=child.request_id, error=f"action {child.action_ref} is not registered"
                    )
                )
                continue
            child_id = self.ids.setdefault(child.request_id, child_id_of(child.request_id))
            answers.append(child_pb2.ChildExecutionResponse(request_id=child.request_id, execution_id=child_id))
        return answers

    async def CancelChildExecution(self, request: Any, context: RpcContext) -> Any:
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "scheduler is down")
        self.cancels_in_flight += 1
        self.most_cancels_in_flight = max(self.most_cancels_in_flight, self.cancels_in_flight)
        try:
            if self.cancel_delay:
                await asyncio.sleep(self.cancel_delay)
        finally:
            self.cancels_in_flight -= 1
        self.cancels.append(request.id)
        return child_pb2.CancelChildExecutionResponse(state=common_pb2.EXECUTION_STATE_CANCELING)

    def serve_on(self, server: grpc.aio.Server) -> None:
        """Adds the scheduler's service this fake plays to a server."""
        child_pb2_grpc.add_ChildExecutionServiceServicer_to_server(self, server)

    def of(self, workflow_id: str) -> list[child_pb2.ChildExecutionRequest]:
        """Requests made for one workflow, in order."""
        return [r for r in self.requests if r.parent_id == workflow_id]

    def per_run(self, workflow_id: str) -> Counter[str]:
        """How many times each task run (request_id) was requested."""
        return Counter(r.request_id for r in self.of(workflow_id))


class FakeCompletionService(completion_pb2_grpc.CompletionServiceServicer):
    """Records submitted results: `received` every one in order, `results` the first per
    execution, `calls` how many were answered per execution. SubmitResult answers UNAVAILABLE
    while `down` is set; the SubmitResults stream acks each batch unless `ack` is False."""

    def __init__(self, *, ack: bool = True) -> None:
        self.ack = ack
        self.down = False
        self.received: list[completion_pb2.ExecutionResult] = []
        self.results: dict[str, completion_pb2.ExecutionResult] = {}
        self.calls: Counter[str] = Counter()

    async def SubmitResult(self, request: Any, context: RpcContext) -> Any:
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "completion is down")
        applied = request.result.execution_id not in self.results
        self._record(request.result)
        return completion_pb2.SubmitResultResponse(applied=applied, state=request.result.state)

    async def SubmitResults(self, request_iterator: Any, context: RpcContext) -> AsyncIterator[Any]:
        async for request in request_iterator:
            for result in request.results:
                self._record(result)
            if self.ack:
                yield completion_pb2.SubmitResultsResponse(
                    acked_execution_ids=[r.execution_id for r in request.results]
                )

    def result_of(self, execution_id: str) -> completion_pb2.ExecutionResult | None:
        """The first result received for an execution, if any."""
        return self.results.get(execution_id)

    def _record(self, result: completion_pb2.ExecutionResult) -> None:
        self.received.append(result)
        self.results.setdefault(result.execution_id, result)
        self.calls[result.execution_id] += 1


class FakeCoordinatorService(coordinator_pb2_grpc.CoordinatorServiceServicer):
    """Records hand-offs (the first `unavailable_calls` StartWorkflows calls fail), cancels and
    every TaskOutcome it is sent (each acked); shows a started workflow as running (canceling once
    cancelled), with one task run per child id listed in `children[workflow id]`."""

    def __init__(self) -> None:
        self.started: list[coordinator_pb2.WorkflowStart] = []
        self.cancelled: list[str] = []
        self.unavailable_calls = 0
        self.start_calls = 0
        self.children: dict[str, list[str]] = {}  # workflow execution id → child ids in its task runs
        self.received: list[coordinator_pb2.TaskOutcome] = []

    async def serve(self, address: str) -> grpc.aio.Server:
        """A started server holding only this servicer."""
        server = grpc.aio.server()
        coordinator_pb2_grpc.add_CoordinatorServiceServicer_to_server(self, server)
        server.add_insecure_port(address)
        await server.start()
        return server

    async def StartWorkflows(self, request: coordinator_pb2.StartWorkflowsRequest, context: RpcContext) -> Any:
        self.start_calls += 1
        if self.unavailable_calls > 0:
            self.unavailable_calls -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "coordinator warming up")
        self.started.extend(request.workflows)
        accepted = [w.execution_id for w in request.workflows]
        return coordinator_pb2.StartWorkflowsResponse(accepted_execution_ids=accepted)

    async def ReportOutcomes(self, request_iterator: Any, context: RpcContext) -> Any:
        async for request in request_iterator:
            self.received.extend(request.outcomes)
            yield coordinator_pb2.ReportOutcomesResponse(acked_execution_ids=[o.execution_id for o in request.outcomes])

    async def GetWorkflowRun(self, request: coordinator_pb2.GetWorkflowRunRequest, context: RpcContext) -> Any:
        known = {w.execution_id: w for w in self.started}
        if request.execution_id not in known:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no workflow run {request.execution_id!r}")
        start = known[request.execution_id]
        runs = [
            workflow_pb2.TaskRun(
                task_name="echo",
                run=1,
                item_index=-1,
                attempt=1,
                action_ref="core.echo",
                state=common_pb2.EXECUTION_STATE_SCHEDULING,
                child_execution_id=child,
            )
            for child in self.children.get(request.execution_id, [])
        ]
        state = (
            workflow_pb2.WORKFLOW_STATE_CANCELING
            if request.execution_id in self.cancelled
            else workflow_pb2.WORKFLOW_STATE_RUNNING
        )
        return coordinator_pb2.GetWorkflowRunResponse(
            run=workflow_pb2.WorkflowRun(
                execution_id=start.execution_id, action_ref=start.action_ref, state=state, task_runs=runs
            )
        )

    async def ListWorkflowRuns(self, request: Any, context: RpcContext) -> Any:
        return coordinator_pb2.ListWorkflowRunsResponse(
            runs=[workflow_pb2.WorkflowRun(execution_id=w.execution_id, action_ref=w.action_ref) for w in self.started]
        )

    async def CancelWorkflow(self, request: coordinator_pb2.CancelWorkflowRequest, context: RpcContext) -> Any:
        self.cancelled.append(request.execution_id)
        return coordinator_pb2.CancelWorkflowResponse()

    def outcome_of(self, execution_id: str) -> coordinator_pb2.TaskOutcome | None:
        """The first outcome received for an execution, if any."""
        return next((o for o in self.received if o.execution_id == execution_id), None)

    async def wait_for(self, execution_id: str, within: float = 5.0) -> coordinator_pb2.TaskOutcome:
        """Waits until the outcome of an execution has arrived, and returns it."""
        return await eventually(
            lambda: self.outcome_of(execution_id),
            within=within,
            what=f"the coordinator to receive the outcome of {execution_id}",
        )
