"""Fixtures for the completion service: settings with short timings, an in-process completion
server on a free port, and a database handle. `database_url` (a fresh migrated database on
PostgreSQL and on SQLite) comes from tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from attune.config import Settings
from attune.storage import Database
from attune_services.cli.launcher import free_port
from tests.completion.completiontools import CompletionServer


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        coordinator_address=f"127.0.0.1:{free_port()}",
        retry_interval=0.05,
        poll_interval=0.01,
        shutdown_grace=3.0,
        max_message_bytes=256 * 1024,
    )


@pytest.fixture
async def completion(settings: Settings) -> AsyncIterator[CompletionServer]:
    server = CompletionServer(settings)
    await server.start()
    yield server
    await server.stop()
