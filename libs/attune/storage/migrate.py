"""Runs the Alembic migrations (libs/attune/storage/migrations) on PostgreSQL or SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

from attune.config import normalize_database_url
from attune.storage.database import SQLITE_BUSY_TIMEOUT_MS

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at the bundled migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalize_database_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Brings the database schema up to `revision` (idempotent)."""
    url = normalize_database_url(database_url)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _use_wal(path)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(alembic_config(url), revision)
        return
    # Called from inside an event loop (e.g. an async fixture): Alembic's env.py runs its own
    # loop with asyncio.run, which must happen on another thread.
    errors: list[BaseException] = []

    def target() -> None:
        try:
            command.upgrade(alembic_config(url), revision)
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=target, name="attune-migrate")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _use_wal(path: str) -> None:
    """Puts the SQLite file in WAL mode (it stays so) before any service opens it. Switching needs
    an exclusive lock: services that each switched on their first connection, starting together,
    could lock each other out until the busy timeout (CI saw "database is locked" at start)."""
    connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


async def upgrade_async(database_url: str) -> None:
    """`upgrade` from inside a running event loop (Alembic's env runs its own loop)."""
    await asyncio.to_thread(upgrade, database_url)
