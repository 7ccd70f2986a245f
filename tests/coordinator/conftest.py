"""Fixtures for the coordinator tests: a real database (PostgreSQL and SQLite), the coordinator
in-process on a free port, and a FAKE scheduler + completion service — real gRPC servers built on
the generated stubs — that record what the coordinator asks of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.config import Settings
from attune.execution.v1 import execution_pb2, execution_pb2_grpc
from attune.grpcutil.channel import channel_options, open_channel
from attune.grpcutil.convert import dumps, loads
from attune.grpcutil.server import ServerHandle, start_server, stop_server
from attune.ids import new_id
from attune.workflow.v1 import workflow_pb2, workflow_pb2_grpc
from attune_services.coordinator.app import CoordinatorApp
from tests.support.databases import create_postgres_database, create_sqlite_database, drop_postgres_database

#: The coordinators' recovery sweep runs this often in every test (a dead replica's commands are
#: taken over within about two of them).
RECOVERY_INTERVAL = 0.2


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database shared by a module's tests (each test uses its own workflow ids)."""
    if request.param == "postgres":
        url = create_postgres_database("attune_coord")
        yield url
        drop_postgres_database(url)
    else:
        yield create_sqlite_database(tmp_path_factory.mktemp("coordinator"))


class FakeScheduler(execution_pb2_grpc.ExecutionServiceServicer):
    """Records child requests, answers an id per request_id (idempotent like the real one);
    refuses action refs starting with "missing.", and answers UNAVAILABLE (child requests and
    cancels) while `down` is set. Serves both the stream the coordinator uses and the unary call
    (counted apart). A cancel takes `cancel_delay` seconds; `most_cancels_in_flight` is the
    most it answered at once."""

    def __init__(self) -> None:
        self.requests: list[execution_pb2.ChildExecutionRequest] = []
        self.ids: dict[str, str] = {}
        self.cancels: list[str] = []
        self.down = False
        self.cancel_delay = 0.0
        self.cancels_in_flight = 0
        self.most_cancels_in_flight = 0
        self.streamed_batches = 0
        self.unary_batches = 0

    async def StreamChildExecutions(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        async for batch in request_iterator:
            if self.down:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "scheduler is down")
            self.streamed_batches += 1
            yield execution_pb2.StreamChildExecutionsResponse(batch_id=batch.batch_id, children=self._answer(batch))

    async def RequestChildExecutions(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "scheduler is down")
        self.unary_batches += 1
        return execution_pb2.RequestChildExecutionsResponse(children=self._answer(request))

    def _answer(self, request: Any) -> list[execution_pb2.ChildExecutionResponse]:
        answers = []
        for child in request.children:
            self.requests.append(child)
            if child.action_ref.startswith("missing."):
                answers.append(
                    execution_pb2.ChildExecutionResponse(
                        request_id=child.request_id, error=f"action {child.action_ref} is not registered"
                    )
                )
                continue
            child_id = self.ids.setdefault(child.request_id, child_id_of(child.request_id))
            answers.append(execution_pb2.ChildExecutionResponse(request_id=child.request_id, execution_id=child_id))
        return answers

    async def CancelExecution(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
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
        return execution_pb2.CancelExecutionResponse(execution=execution_pb2.Execution(id=request.id))

    def of(self, workflow_id: str) -> list[execution_pb2.ChildExecutionRequest]:
        """Requests made for one workflow, in order."""
        return [r for r in self.requests if r.parent_id == workflow_id]

    def per_run(self, workflow_id: str) -> Counter[str]:
        """How many times each task run (request_id) was requested."""
        return Counter(r.request_id for r in self.of(workflow_id))


class FakeCompletion(completion_pb2_grpc.CompletionServiceServicer):
    """Records submitted results by execution id (`calls`: those answered, not refused while
    `down` is set, when it answers UNAVAILABLE)."""

    def __init__(self) -> None:
        self.results: dict[str, completion_pb2.ExecutionResult] = {}
        self.calls: Counter[str] = Counter()
        self.down = False

    async def SubmitResult(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "completion is down")
        self.calls[request.result.execution_id] += 1
        applied = request.result.execution_id not in self.results
        self.results.setdefault(request.result.execution_id, request.result)
        return completion_pb2.SubmitResultResponse(applied=applied, state=request.result.state)


@dataclass
class Harness:
    """The coordinator under test plus its fakes and a client."""

    settings: Settings
    scheduler: FakeScheduler
    completion: FakeCompletion
    app: CoordinatorApp | None = None
    handle: ServerHandle | None = None
    channel: grpc.aio.Channel | None = None
    streams: list[Any] = field(default_factory=list)

    @property
    def client(self) -> workflow_pb2_grpc.WorkflowServiceStub:
        assert self.channel is not None
        return workflow_pb2_grpc.WorkflowServiceStub(self.channel)

    async def start_coordinator(self) -> None:
        """Starts a coordinator on a free port (again, after `stop_coordinator`)."""
        self.app = CoordinatorApp(self.settings)
        self.handle = await start_server(self.app, address="127.0.0.1:0", settings=self.settings)
        self.channel = open_channel(f"127.0.0.1:{self.handle.port}", self.settings)

    async def stop_coordinator(self) -> None:
        """Graceful stop (drain)."""
        for stream in self.streams:
            stream.cancel()
        self.streams.clear()
        if self.channel is not None:
            await self.channel.close()
        if self.app is not None and self.handle is not None:
            await stop_server(self.app, self.handle, grace=5.0)
        self.app = self.handle = self.channel = None

    async def start_workflow(
        self,
        yaml_text: str,
        *,
        parameters: dict[str, Any] | None = None,
        depth: int = 0,
        workflow_id: str | None = None,
    ) -> str:
        """Hands a workflow over like the scheduler does; returns its id."""
        workflow_id = workflow_id or new_id()
        response = await self.client.StartWorkflows(
            workflow_pb2.StartWorkflowsRequest(
                workflows=[
                    workflow_pb2.WorkflowStart(
                        execution_id=workflow_id,
                        action_ref="tests.flow",
                        workflow_yaml=yaml_text,
                        workflow_source="tests/flow.workflow.yaml",
                        parameters_json=dumps(parameters or {}),
                        depth=depth,
                        trace=common_pb2.TraceContext(traceparent=f"00-{'ab' * 16}-{'cd' * 8}-01"),
                    )
                ]
            )
        )
        assert list(response.accepted_execution_ids) == [workflow_id]
        return workflow_id

    def open_stream(self) -> Any:
        """A ReportOutcomes stream, as the completion service holds one."""
        stream = self.client.ReportOutcomes()
        self.streams.append(stream)
        return stream

    async def report(self, *outcomes: workflow_pb2.TaskOutcome, stream: Any = None) -> list[str]:
        """Sends one batch on a stream and waits for acks of all its (distinct) execution ids."""
        stream = stream or self.open_stream()
        await stream.write(workflow_pb2.ReportOutcomesRequest(outcomes=list(outcomes)))
        wanted = {o.execution_id for o in outcomes}
        acked: list[str] = []
        while not wanted <= set(acked):
            response = await asyncio.wait_for(stream.read(), timeout=10)
            assert response is not grpc.aio.EOF
            acked.extend(response.acked_execution_ids)
        return acked

    async def wait_requests(self, workflow_id: str, count: int, timeout: float = 10.0) -> list[Any]:
        """Waits until the fake scheduler got `count` child requests of a workflow."""
        await wait_until(
            lambda: len(self.scheduler.of(workflow_id)) >= count,
            timeout,
            f"{count} child requests of {workflow_id}: got {self.scheduler.of(workflow_id)}",
        )
        return self.scheduler.of(workflow_id)

    async def wait_result(self, workflow_id: str, timeout: float = 10.0) -> tuple[str, dict[str, Any], str]:
        """Waits for the workflow's own result at the fake completion: (state, result, error)."""
        await wait_until(lambda: workflow_id in self.completion.results, timeout, f"result of {workflow_id}")
        r = self.completion.results[workflow_id]
        state = common_pb2.ExecutionState.Name(r.state).removeprefix("EXECUTION_STATE_").lower()
        return state, loads(r.result_json, {}), r.error

    async def run_of(self, workflow_id: str) -> workflow_pb2.WorkflowRun:
        return (await self.client.GetWorkflowRun(workflow_pb2.GetWorkflowRunRequest(execution_id=workflow_id))).run


def child_id_of(request_id: str) -> str:
    """The execution id the fake scheduler gives a request_id (32 hex digits, like real ids)."""
    return hashlib.md5(request_id.encode()).hexdigest()


def outcome(
    request: execution_pb2.ChildExecutionRequest,
    state: str = "succeeded",
    result: dict[str, Any] | None = None,
    error: str = "",
    execution_id: str = "",
) -> workflow_pb2.TaskOutcome:
    """The completion service's TaskOutcome for a child the fake scheduler accepted."""
    return workflow_pb2.TaskOutcome(
        execution_id=execution_id or child_id_of(request.request_id),
        link=request.link,
        state=common_pb2.ExecutionState.Value("EXECUTION_STATE_" + state.upper()),
        result_json=dumps(result if result is not None else {}),
        error=error,
    )


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def settle(seconds: float = 0.3) -> None:
    """Gives the coordinator time to do something it should NOT do."""
    await asyncio.sleep(seconds)


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    """Fakes started, coordinator started; everything stopped afterwards."""
    fakes = grpc.aio.server(options=channel_options(Settings()))
    scheduler, completion = FakeScheduler(), FakeCompletion()
    execution_pb2_grpc.add_ExecutionServiceServicer_to_server(scheduler, fakes)
    completion_pb2_grpc.add_CompletionServiceServicer_to_server(completion, fakes)
    port = fakes.add_insecure_port("127.0.0.1:0")
    await fakes.start()
    address = f"127.0.0.1:{port}"
    settings = Settings(
        database_url=database_url,
        scheduler_address=address,
        completion_address=address,
        retry_interval=0.05,
        poll_interval=0.01,
        shutdown_grace=5.0,
        recovery_interval=RECOVERY_INTERVAL,
    )
    h = Harness(settings, scheduler, completion)
    await h.start_coordinator()
    try:
        yield h
    finally:
        await h.stop_coordinator()
        await fakes.stop(grace=None)
