"""Real test databases: a fresh PostgreSQL database (unique name, dropped afterwards) or a fresh
SQLite file, migrated to head. PostgreSQL is required when CI=true: its absence fails the test.

Each store is migrated once per test process, into a template (a PostgreSQL database that is
only ever copied, a SQLite file); every fresh database is a copy of it, which takes a fraction of
the migration's time. The template is made from the migrations as they are when the first
database is asked for, and dropped when the process ends."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import tempfile
import threading
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


def _postgres_url(name: str) -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


_template_lock = threading.Lock()
_templates: dict[str, str] = {}  # store → the template's database name or file path


def _postgres_template() -> str:
    """This process's migrated template database (made on first use); its name."""
    with _template_lock:
        if "postgres" not in _templates:
            name = f"attune_template_{uuid.uuid4().hex[:12]}"
            _run_blocking(_admin(f'CREATE DATABASE "{name}"'))
            try:
                upgrade(_postgres_url(name))
            except BaseException:
                _run_blocking(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                raise
            _templates["postgres"] = name
            atexit.register(_drop_postgres_template, name)
        return _templates["postgres"]


def _drop_postgres_template(name: str) -> None:
    with contextlib.suppress(TimeoutError, OSError, asyncpg.PostgresError):  # the server went first
        _run_blocking(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def create_postgres_database(prefix: str = "attune_test") -> str:
    """Creates a fresh database migrated to head (a copy of the template); returns its URL."""
    require_postgres()
    template = _postgres_template()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _template_lock:  # a template being copied must have no other session
        _run_blocking(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    return _postgres_url(name)


def drop_postgres_database(url: str) -> None:
    """Drops a database made by create_postgres_database (terminating leftover sessions)."""
    name = url.rsplit("/", 1)[1]
    _run_blocking(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _sqlite_template() -> Path:
    """This process's migrated template file (made on first use)."""
    with _template_lock:
        if "sqlite" not in _templates:
            folder = Path(tempfile.mkdtemp(prefix="attune-template-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            upgrade(f"sqlite+aiosqlite:///{folder / 'template.db'}")
            _templates["sqlite"] = str(folder / "template.db")
        return Path(_templates["sqlite"])


def create_sqlite_database(folder: Path) -> str:
    """Creates a fresh SQLite file in `folder` migrated to head (a copy of the template); returns
    its URL."""
    path = folder / f"attune-{uuid.uuid4().hex[:8]}.db"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_sqlite_template(), path)
    return f"sqlite+aiosqlite:///{path}"


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
