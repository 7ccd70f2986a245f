"""Fixtures for the completion service: a fresh migrated database per test (PostgreSQL and SQLite),
an in-process completion server on a free port, and a fake coordinator (a real gRPC server)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from completiontools import CompletionServer, free_port

from attune.config import Settings
from attune.storage import Database
from attune.storage.migrate import upgrade_async

PG_ADMIN = os.environ.get("ATTUNE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _pg_template() -> str:
    """A migrated PostgreSQL database used as the template of each test's database."""
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError) as err:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL at {PG_ADMIN} unreachable: {err}")
        pytest.skip(f"PostgreSQL at {PG_ADMIN} unreachable: {err}")
    name = f"attune_compl_tpl_{uuid.uuid4().hex[:10]}"
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    await upgrade_async(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}")
    return name


_templates: dict[str, str] = {}


async def _template(kind: str, tmp_root: Path) -> str:
    """The migrated template of a backend, created on first use (migrations run once per session)."""
    if kind not in _templates:
        if kind == "sqlite":
            path = tmp_root / "template.db"
            await upgrade_async(f"sqlite:///{path}")
            _templates[kind] = str(path)
        else:
            _templates[kind] = await _pg_template()
    return _templates[kind]


@pytest.fixture(scope="session", autouse=True)
async def _drop_pg_template() -> AsyncIterator[None]:
    yield
    name = _templates.pop("postgres", None)
    if name:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(params=["postgres", "sqlite"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    template = await _template(request.param, tmp_path_factory.getbasetemp())
    if request.param == "sqlite":
        path = tmp_path / "attune.db"
        shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    name = f"attune_compl_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    yield PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


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


