"""Real test databases: a fresh PostgreSQL database (unique name, dropped afterwards) or a fresh
SQLite file, migrated to head. PostgreSQL is required when CI=true: its absence fails the test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from attune.storage.migrate import upgrade

PG_HOST = os.environ.get("ATTUNE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("ATTUNE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("ATTUNE_TEST_PG_USER", "postgres")


def _admin_dsn() -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(_admin_dsn(), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def require_postgres() -> None:
    """Skips locally, FAILS in CI, when the PostgreSQL server is unreachable."""
    try:
        _run_blocking(_admin("SELECT 1"))
    except (TimeoutError, OSError, asyncpg.PostgresError) as err:
        message = f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable: {err}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def create_postgres_database(prefix: str = "attune_test") -> str:
    """Creates and migrates a fresh database; returns its URL."""
    require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _run_blocking(_admin(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    upgrade(url)
    return url


def drop_postgres_database(url: str) -> None:
    """Drops a database made by create_postgres_database (terminating leftover sessions)."""
    name = url.rsplit("/", 1)[1]
    _run_blocking(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def create_sqlite_database(folder: Path) -> str:
    """Creates and migrates a fresh SQLite file in `folder`; returns its URL."""
    url = f"sqlite+aiosqlite:///{folder / f'attune-{uuid.uuid4().hex[:8]}.db'}"
    upgrade(url)
    return url


def _run_blocking(coro: Coroutine[Any, Any, object]) -> None:
    # Usable from sync fixtures whether or not an event loop runs in this thread.
    import threading

    error: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as err:
            error.append(err)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
