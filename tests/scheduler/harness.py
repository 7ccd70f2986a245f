"""In-process servers for scheduler tests: the real scheduler and completion service on free
ports, a fake coordinator (a real gRPC server implementing CoordinatorService) and a fake worker
client that speaks the real WorkerService stream through the generated stubs."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import grpc

from attune.config import Settings
from attune.execution.v1 import execution_pb2, execution_pb2_grpc
from attune.grpcutil.convert import execution_state_from_proto, execution_state_to_proto
from attune.grpcutil.server import ServerHandle, start_server, stop_server
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.internal.execution.v1 import execution_pb2_grpc as child_pb2_grpc
from attune.internal.packs.v1 import packs_pb2_grpc
from attune.internal.worker.v1 import worker_pb2, worker_pb2_grpc
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune.packs import bundled_pack_path, read_pack_files
from attune.registry.v1 import registry_pb2, registry_pb2_grpc
from attune.security.sealing import new_key_text
from attune.workflow.v1 import workflow_pb2_grpc
from attune_services.completion.app import CompletionApp
from attune_services.scheduler.app import SchedulerApp
from tests.support.fakes import FakeCoordinatorService
from tests.support.polling import eventually

TEST_TIMINGS: dict[str, Any] = {
    "schedule_timeout": 0.6,
    "worker_grace": 0.6,
    "heartbeat_interval": 0.1,
    "poll_interval": 0.02,
    "retry_interval": 0.05,
    "shutdown_grace": 2.0,
}


class _CoordinatorApp:
    service_names = (coordinator_pb2.DESCRIPTOR.services_by_name["CoordinatorService"].full_name,)

    def __init__(self, servicer: FakeCoordinatorService) -> None:
        self.servicer = servicer

    def register(self, server: grpc.aio.Server) -> None:
        coordinator_pb2_grpc.add_CoordinatorServiceServicer_to_server(self.servicer, server)

    async def start(self) -> None: ...

    async def drain(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Cluster:
    """The scheduler, the completion service and the fake coordinator, with client stubs."""

    settings: Settings
    scheduler: SchedulerApp
    coordinator: FakeCoordinatorService
    channel: grpc.aio.Channel
    registry: registry_pb2_grpc.RegistryServiceStub
    executions: execution_pb2_grpc.ExecutionServiceStub
    workers: worker_pb2_grpc.WorkerServiceStub
    workflows: workflow_pb2_grpc.WorkflowServiceStub
    pack_files: packs_pb2_grpc.PackFilesServiceStub
    children: child_pb2_grpc.ChildExecutionServiceStub
    completion: completion_pb2_grpc.CompletionServiceStub
    completion_channel: grpc.aio.Channel
    _stops: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def register_bundled(self, *names: str) -> list[registry_pb2.RegisterPackResponse]:
        """Registers bundled packs in order (core first: examples' workflows call it)."""
        out = []
        for name in names:
            files = read_pack_files(bundled_pack_path(name))
            out.append(await self.registry.RegisterPack(pack_request(files)))
        return out

    async def request(self, ref: str, params: dict[str, Any] | None = None, **kwargs: Any) -> execution_pb2.Execution:
        """RequestExecution, returning the execution."""
        from attune.grpcutil.convert import struct_from_dict

        response = await self.executions.RequestExecution(
            execution_pb2.RequestExecutionRequest(action_ref=ref, parameters=struct_from_dict(params), **kwargs)
        )
        return response.execution

    async def get(self, execution_id: str) -> execution_pb2.GetExecutionResponse:
        """GetExecution."""
        return await self.executions.GetExecution(execution_pb2.GetExecutionRequest(id=execution_id))

    async def wait_state(self, execution_id: str, state: str, timeout: float = 10.0) -> execution_pb2.Execution:
        """Polls until the execution is in `state`; fails naming the last state seen."""
        last = ""

        async def reached() -> execution_pb2.Execution | None:
            nonlocal last
            execution = (await self.get(execution_id)).execution
            last = execution_state_from_proto(execution.state)
            return execution if last == state else None

        return await eventually(
            reached,
            within=timeout,
            interval=0.02,
            what=lambda: f"execution {execution_id} to be {state!r} (it stayed {last!r})",
        )

    async def submit_result(self, execution_id: str, state: str, *, error: str = "", result: bytes = b"{}") -> Any:
        """What a worker does when its process ends: SubmitResult to the completion service."""
        return await self.completion.SubmitResult(
            completion_pb2.SubmitResultRequest(
                result=completion_pb2.ExecutionResult(
                    execution_id=execution_id,
                    state=execution_state_to_proto(state),
                    result_json=result,
                    error=error,
                    finished_at=time.time(),
                    reporter="test-worker",
                )
            )
        )

    async def stop_scheduler(self) -> None:
        """Stops the scheduler gracefully (SIGTERM's path: NOT_SERVING, drain, stop)."""
        await self._stops.pop()()

    async def stop(self) -> None:
        """Stops every server."""
        await self.channel.close()
        await self.completion_channel.close()
        for stop in reversed(self._stops):
            try:
                await asyncio.wait_for(stop(), timeout=15)
            except TimeoutError:
                stuck = "\n".join(str(t.get_stack()) + repr(t) for t in asyncio.all_tasks())
                raise AssertionError(f"a server did not stop within 15 s; tasks:\n{stuck}") from None


@asynccontextmanager
async def connect_to(cluster: Cluster, port: int) -> AsyncIterator[Cluster]:
    """The same cluster seen through another scheduler listening on `port`."""
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield dataclasses.replace(
            cluster,
            channel=channel,
            registry=registry_pb2_grpc.RegistryServiceStub(channel),
            executions=execution_pb2_grpc.ExecutionServiceStub(channel),
            workers=worker_pb2_grpc.WorkerServiceStub(channel),
            workflows=workflow_pb2_grpc.WorkflowServiceStub(channel),
            pack_files=packs_pb2_grpc.PackFilesServiceStub(channel),
            children=child_pb2_grpc.ChildExecutionServiceStub(channel),
            _stops=[],
        )
    finally:
        await channel.close()


def pack_request(files: dict[str, bytes], request_id: str = "") -> registry_pb2.RegisterPackRequest:
    """A RegisterPackRequest from {path: bytes}."""
    return registry_pb2.RegisterPackRequest(
        files=[registry_pb2.PackFile(path=p, content=c) for p, c in files.items()], request_id=request_id
    )


async def start_cluster(database_url: str, **overrides: Any) -> Cluster:
    """Starts completion, the fake coordinator and the scheduler on free ports."""
    # A key of its own, as `attune up` creates one: secret parameters are sealed when stored.
    base = Settings(database_url=database_url, **{"secret_key": new_key_text(), **TEST_TIMINGS, **overrides})
    stops: list[Callable[[], Awaitable[None]]] = []

    async def serve(app: Any, settings: Settings) -> ServerHandle:
        handle = await start_server(app, address="127.0.0.1:0", settings=settings)
        stops.append(lambda: stop_server(app, handle, grace=0.5))
        return handle

    coordinator = FakeCoordinatorService()
    coordinator_handle = await serve(_CoordinatorApp(coordinator), base)
    base = base.replace(coordinator_address=f"127.0.0.1:{coordinator_handle.port}")
    completion_handle = await serve(CompletionApp(base), base)
    # Stopped in reverse: the scheduler, the completion service (whose drain ends its outcome
    # stream once the coordinator has them), then the coordinator, with no stream left to wait for.
    settings = base.replace(completion_address=f"127.0.0.1:{completion_handle.port}")
    scheduler = SchedulerApp(settings)
    scheduler_handle = await serve(scheduler, settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{scheduler_handle.port}")
    completion_channel = grpc.aio.insecure_channel(settings.completion_address)
    return Cluster(
        settings=settings,
        scheduler=scheduler,
        coordinator=coordinator,
        channel=channel,
        registry=registry_pb2_grpc.RegistryServiceStub(channel),
        executions=execution_pb2_grpc.ExecutionServiceStub(channel),
        workers=worker_pb2_grpc.WorkerServiceStub(channel),
        workflows=workflow_pb2_grpc.WorkflowServiceStub(channel),
        pack_files=packs_pb2_grpc.PackFilesServiceStub(channel),
        children=child_pb2_grpc.ChildExecutionServiceStub(channel),
        completion=completion_pb2_grpc.CompletionServiceStub(completion_channel),
        completion_channel=completion_channel,
        _stops=stops,
    )


class FakeWorker:
    """A worker client over the real stream: Hello, then read assignments and send notices."""

    def __init__(self, cluster: Cluster, worker_id: str, runtimes: list[str], capacity: int = 4) -> None:
        self.cluster = cluster
        self.worker_id = worker_id
        self.runtimes = runtimes
        self.capacity = capacity
        self.assignments: list[worker_pb2.Assignment] = []
        self.cancellations: list[str] = []
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def connect(self, execution_ids: Sequence[str] = ()) -> worker_pb2.Welcome:
        """Opens the stream, says Hello and waits for the Welcome."""
        self._call = self.cluster.workers.Connect()
        await self._call.write(
            worker_pb2.ConnectRequest(
                hello=worker_pb2.Hello(
                    worker_id=self.worker_id,
                    hostname="test",
                    runtimes=self.runtimes,
                    capacity=self.capacity,
                    execution_ids=list(execution_ids),
                )
            )
        )
        first: worker_pb2.ConnectResponse = await self._call.read()
        assert first.WhichOneof("kind") == "welcome", first
        self._reader = asyncio.create_task(self._read())
        return first.welcome

    async def _read(self) -> None:
        try:
            while True:
                message = await self._call.read()
                if not isinstance(message, worker_pb2.ConnectResponse):  # EOF: the stream ended
                    return
                if message.WhichOneof("kind") == "assignments":
                    self.assignments.extend(message.assignments.assignments)
                elif message.WhichOneof("kind") == "cancellations":
                    self.cancellations.extend(message.cancellations.execution_ids)
                self._changed.set()
        except (grpc.RpcError, asyncio.CancelledError):
            return

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Waits until `predicate()` holds for what the worker received."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"worker {self.worker_id}: condition not met; assignments="
                    f"{[a.execution_id for a in self.assignments]} cancellations={self.cancellations}"
                )
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.1))

    async def started(self, *execution_ids: str) -> None:
        """Reports processes started."""
        await self._call.write(
            worker_pb2.ConnectRequest(
                started=worker_pb2.Started(
                    executions=[
                        worker_pb2.StartedExecution(execution_id=i, started_at=time.time()) for i in execution_ids
                    ]
                )
            )
        )

    async def released(self, *execution_ids: str) -> None:
        """Reports slots freed."""
        await self._call.write(
            worker_pb2.ConnectRequest(released=worker_pb2.Released(execution_ids=list(execution_ids)))
        )

    async def disconnect(self) -> None:
        """Drops the stream as a crashed worker would."""
        if self._call is not None:
            self._call.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with suppress(asyncio.CancelledError):
                await self._reader
