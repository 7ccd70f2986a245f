"""Fixtures for the coordinator tests: a real database (PostgreSQL and SQLite), the coordinator
in-process on a free port, and a FAKE scheduler + completion service (`tests/support/fakes.py`:
real gRPC servers built on the generated stubs) that record what the coordinator asks of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.config import Settings
from attune.grpcutil.channel import channel_options, open_channel
from attune.grpcutil.convert import dumps, execution_state_to_proto, loads
from attune.grpcutil.server import ServerHandle, start_server, stop_server
from attune.ids import new_id
from attune.internal.completion.v1 import completion_pb2_grpc
from attune.internal.execution.v1 import execution_pb2 as child_pb2
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune.workflow.v1 import workflow_pb2
from attune_services.coordinator.app import CoordinatorApp
from tests.support.databases import create_postgres_database, create_sqlite_database, drop_postgres_database
from tests.support.fakes import FakeCompletionService, FakeExecutionService, child_id_of
from tests.support.polling import eventually

#: The coordinators' recovery sweep runs this often in every test (a stopped replica's commands
#: are taken over within about two of them).
RECOVERY_INTERVAL = 0.2
#: The coordinators' lease time in every test: a killed replica's commands are taken over once it
#: has expired. Long enough that a live replica on a loaded machine always renews in time.
LEASE_TIME = 3.0


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database shared by a module's tests (each test uses its own workflow ids)."""
    if request.param == "postgres":
        url = create_postgres_database("attune_coord")
        yield url
        drop_postgres_database(url)
    else:
        yield create_sqlite_database(tmp_path_factory.mktemp("coordinator"))


@dataclass
class Harness:
    """The coordinator under test plus its fakes and a client."""

    settings: Settings
    scheduler: FakeExecutionService
    completion: FakeCompletionService
    app: CoordinatorApp | None = None
    handle: ServerHandle | None = None
    channel: grpc.aio.Channel | None = None
    streams: list[Any] = field(default_factory=list)

    @property
    def client(self) -> coordinator_pb2_grpc.CoordinatorServiceStub:
        assert self.channel is not None
        return coordinator_pb2_grpc.CoordinatorServiceStub(self.channel)

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
            coordinator_pb2.StartWorkflowsRequest(
                workflows=[
                    coordinator_pb2.WorkflowStart(
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
        """A ReportOutcomes stream, as the completion service holds one. It waits for the
        coordinator to be reachable: after a restart the channel may still be backing off."""
        stream = self.client.ReportOutcomes(wait_for_ready=True)
        self.streams.append(stream)
        return stream

    async def report(self, *outcomes: coordinator_pb2.TaskOutcome, stream: Any = None) -> list[str]:
        """Sends one batch on a stream and waits for acks of all its (distinct) execution ids."""
        stream = stream or self.open_stream()
        await stream.write(coordinator_pb2.ReportOutcomesRequest(outcomes=list(outcomes)))
        wanted = {o.execution_id for o in outcomes}
        acked: list[str] = []
        while not wanted <= set(acked):
            response = await asyncio.wait_for(stream.read(), timeout=10)
            assert isinstance(response, coordinator_pb2.ReportOutcomesResponse), response  # not EOF
            acked.extend(response.acked_execution_ids)
        return acked

    async def wait_requests(self, workflow_id: str, count: int, timeout: float = 10.0) -> list[Any]:
        """Waits until the fake scheduler got `count` child requests of a workflow."""
        await eventually(
            lambda: len(self.scheduler.of(workflow_id)) >= count,
            within=timeout,
            what=lambda: f"{count} child requests of {workflow_id}: got {self.scheduler.of(workflow_id)}",
        )
        return self.scheduler.of(workflow_id)

    async def wait_result(self, workflow_id: str, timeout: float = 10.0) -> tuple[str, dict[str, Any], str]:
        """Waits for the workflow's own result at the fake completion: (state, result, error)."""
        await eventually(
            lambda: workflow_id in self.completion.results, within=timeout, what=f"result of {workflow_id}"
        )
        r = self.completion.results[workflow_id]
        state = common_pb2.ExecutionState.Name(r.state).removeprefix("EXECUTION_STATE_").lower()
        return state, loads(r.result_json, {}), r.error

    async def run_of(self, workflow_id: str) -> workflow_pb2.WorkflowRun:
        return (await self.client.GetWorkflowRun(coordinator_pb2.GetWorkflowRunRequest(execution_id=workflow_id))).run


def outcome(
    request: child_pb2.ChildExecutionRequest,
    state: str = "succeeded",
    result: dict[str, Any] | None = None,
    error: str = "",
    execution_id: str = "",
) -> coordinator_pb2.TaskOutcome:
    """The completion service's TaskOutcome for a child the fake scheduler accepted."""
    return coordinator_pb2.TaskOutcome(
        execution_id=execution_id or child_id_of(request.request_id),
        link=request.link,
        state=execution_state_to_proto(state),
        result_json=dumps(result if result is not None else {}),
        error=error,
    )


async def settle(seconds: float = 0.3) -> None:
    """Gives the coordinator time to do something it should NOT do."""
    await asyncio.sleep(seconds)


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    """Fakes started, coordinator started; everything stopped afterwards."""
    fakes = grpc.aio.server(options=channel_options(Settings()))
    scheduler, completion = FakeExecutionService(), FakeCompletionService()
    scheduler.serve_on(fakes)
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
        lease_time=LEASE_TIME,
    )
    h = Harness(settings, scheduler, completion)
    await h.start_coordinator()
    try:
        yield h
    finally:
        await h.stop_coordinator()
        await fakes.stop(grace=None)
