"""The one database session helper: an async SQLAlchemy engine for PostgreSQL or SQLite.

`Database.write()` opens a write transaction (on SQLite `BEGIN IMMEDIATE`, so concurrent writers
queue on the busy timeout instead of failing on lock upgrade); `Database.read()` a read-only one.
`Database.asyncpg()` lends a hot path on PostgreSQL the pooled asyncpg connection itself: one
statement costs a round trip and ~0.2 ms of CPU there, against ~0.8 ms through SQLAlchemy's
async layer with its BEGIN and COMMIT.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import asyncpg

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from attune.config import normalize_database_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: A batch statement over arrays at least this long is planned for its own values (see
#: `Database.asyncpg`).
CUSTOM_PLAN_ROWS = 16
#: How long a service keeps retrying its start-up reads while the database is unavailable.
UNAVAILABLE_RETRY_S = 30.0

T = TypeVar("T")
log = logging.getLogger(__name__)


class Database:
    """One engine per service process; connections are pooled."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalize_database_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed on exit (rolled back on error)."""
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.info["begin_immediate"] = True
            await conn.begin()
            try:
                yield conn
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()

    @asynccontextmanager
    async def asyncpg(self, *, transaction: bool = False, rows: int = 0) -> AsyncIterator[Any]:
        """PostgreSQL only: a pooled connection's `asyncpg.Connection`. Without `transaction` each
        statement commits on its own (a single statement is atomic and durable when it returns);
        with it, everything inside commits on exit (rolled back on error).

        `rows` is the size of the batch the statements carry as arrays. From CUSTOM_PLAN_ROWS on,
        they run in a transaction planned for their actual values (plan_cache_mode =
        force_custom_plan, local to it): a cached statement's generic plan assumes a few rows per
        array, and joined 388 ended task runs to a workflow's 1,002 with a nested loop (75 ms
        instead of ~3 ms). Small batches keep the cached plan (no planning per call)."""
        if self.is_sqlite:
            raise RuntimeError("Database.asyncpg() is for PostgreSQL only")
        async with self.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None  # a live pooled connection always has its driver connection
            try:
                if transaction or rows >= CUSTOM_PLAN_ROWS:
                    async with raw.transaction():
                        if rows >= CUSTOM_PLAN_ROWS:
                            await raw.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                        yield raw
                else:
                    yield raw
            except BaseException:
                if raw.is_closed():  # a lost connection must not go back to the pool
                    await conn.invalidate()
                raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction."""
        async with self.engine.connect() as conn:
            yield conn
            await conn.rollback()

    async def close(self) -> None:
        """Releases every pooled connection."""
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let `write()` issue BEGIN IMMEDIATE itself instead of pysqlite's deferred BEGIN.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writes take the write lock up front; reads get a plain deferred BEGIN.
        immediate = conn.info.pop("begin_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def dialect_insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """The connection's dialect's INSERT into `table`, which has on_conflict_do_nothing /
    on_conflict_do_update (the same on PostgreSQL and SQLite)."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def is_unique_violation(err: sa.exc.IntegrityError) -> bool:
    """True when an IntegrityError is a unique/primary-key conflict (both databases)."""
    text = str(err.orig).lower()
    return "unique" in text or "duplicate key" in text


def is_unavailable(err: BaseException) -> bool:
    """The database cannot serve this right now, and the same call may succeed shortly: it is
    not accepting connections yet (a service started before PostgreSQL), or an SQLite file is
    locked beyond the busy timeout (another process is cleaning up or recovering its WAL)."""
    if isinstance(err, sa.exc.OperationalError):
        return True
    if isinstance(err, sa.exc.DBAPIError) and err.connection_invalidated:
        return True
    return isinstance(
        err,
        (
            OSError,
            asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.TooManyConnectionsError,
            asyncpg.exceptions.ConnectionDoesNotExistError,
        ),
    )


async def retry_while_unavailable(
    call: Callable[[], Awaitable[T]], *, what: str, timeout: float = UNAVAILABLE_RETRY_S
) -> T:
    """``await call()``, again with backoff while it fails with `is_unavailable` errors, for up
    to ``timeout`` seconds; other errors, and the last one after the timeout, propagate."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return await call()
        except Exception as err:
            if not is_unavailable(err) or time.monotonic() + delay > deadline:
                raise
            log.warning("%s: database unavailable (%s); retrying in %.2fs", what, str(err).splitlines()[0], delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)
