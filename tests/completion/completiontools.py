"""Helpers for the completion tests: free ports, a restartable in-process completion server, a fake
coordinator (a real gRPC server) and execution rows inserted the way the scheduler would."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
import sqlalchemy as sa

from attune.config import Settings
from attune.grpcutil.server import ServerHandle, start_server, stop_server
from attune.ids import new_id
from attune.storage import Database
from attune.storage.schema import executions
from attune.workflow.v1 import workflow_pb2, workflow_pb2_grpc
from attune_services.cli.launcher import free_port
from attune_services.completion.app import CompletionApp


class CompletionServer:
    """A completion service in this process; restartable on the same port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.app: CompletionApp | None = None
        self.handle: ServerHandle | None = None

    async def start(self) -> None:
        self.app = CompletionApp(self.settings)
        self.handle = await start_server(self.app, address=self.address, settings=self.settings)

    async def stop(self) -> None:
        if self.app is not None and self.handle is not None:
            await stop_server(self.app, self.handle, grace=self.settings.shutdown_grace)
        self.app = self.handle = None


@dataclass
class FakeCoordinator(workflow_pb2_grpc.WorkflowServiceServicer):
    """Records every TaskOutcome it receives and acks it."""

    received: list[workflow_pb2.TaskOutcome] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def ReportOutcomes(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        async for request in request_iterator:
            self.received.extend(request.outcomes)
            self.arrived.set()
            yield workflow_pb2.ReportOutcomesResponse(acked_execution_ids=[o.execution_id for o in request.outcomes])

    async def serve(self, address: str) -> grpc.aio.Server:
        server = grpc.aio.server()
        workflow_pb2_grpc.add_WorkflowServiceServicer_to_server(self, server)
        server.add_insecure_port(address)
        await server.start()
        return server

    async def wait_for(self, execution_id: str, within: float = 5.0) -> workflow_pb2.TaskOutcome:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for outcome in self.received:
                if outcome.execution_id == execution_id:
                    return outcome
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), timeout=0.05)
        raise AssertionError(f"coordinator never received the outcome of {execution_id}")


async def insert_execution(db: Database, *, state: str = "running", **columns: Any) -> str:
    """Inserts an execution row the way the scheduler would, returns its id."""
    execution_id = new_id()
    now = time.time()
    row = {
        "id": execution_id,
        "action_ref": "core.echo",
        "runner_type": "shell",
        "state": state,
        "created_at": now,
        "updated_at": now,
        **columns,
    }
    async with db.write() as conn:
        await conn.execute(executions.insert().values(**row))
    return execution_id


async def execution_row(db: Database, execution_id: str) -> sa.Row[Any]:
    async with db.read() as conn:
        row = (await conn.execute(sa.select(executions).where(executions.c.id == execution_id))).one()
    return row
