"""Helpers for the completion tests: free ports, a restartable in-process completion server and
execution rows inserted the way the scheduler would (the fake coordinator is in `tests/support/fakes.py`)."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from attune.config import Settings
from attune.grpcutil.server import ServerHandle, start_server, stop_server
from attune.ids import new_id
from attune.storage import Database
from attune.storage.schema import executions
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
