"""The one database session helper: an async SQLAlchemy engine for PostgreSQL or SQLite.

`Database.write()` opens a write transaction (on SQLite `BEGIN IMMEDIATE`, so concurrent writers
queue on the busy timeout instead of failing on lock upgrade); `Database.read()` a read-only one.
`Database.asyncpg()` lends a hot path on PostgreSQL the pooled asyncpg connection itself: one
statement costs a round trip and ~0.2 ms of CPU there, against ~0.8 ms through SQLAlchemy's
async layer with its BEGIN and COMMIT. It keeps up to KEPT_CONNECTIONS of those connections
checked out between uses: a checkout and checkin through SQLAlchemy's pool (a Connection facade,
greenlets, the reset on return) on every use cost more CPU than the statement. In interleaved runs
of a 200-step chain, keeping them cut the CPU per step of the completion service, the coordinator
and the scheduler from ~1,500 / 1,850 / 1,650 µs to ~1,100 / 1,450 / 1,300 µs, and the step from
~6.1 to ~5.0 ms.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from attune.config import normalize_database_url
from attune.logs import ThrottledLog

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: A batch statement over arrays at least this long is planned for its own values (see
#: `Database.asyncpg`).
CUSTOM_PLAN_ROWS = 16
#: Connections `Database.asyncpg` keeps checked out between uses (the pool's are lent beyond).
KEPT_CONNECTIONS = 4
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
        #: Connections `asyncpg()` keeps between uses: (checked-out connection, its asyncpg one).
        self._kept: list[tuple[AsyncConnection, Any]] = []
        self._closed = False

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
        conn, raw = self._kept.pop() if self._kept else await self._check_out()
        error: BaseException | None = None
        try:
            if transaction or rows >= CUSTOM_PLAN_ROWS:
                async with raw.transaction():
                    if rows >= CUSTOM_PLAN_ROWS:
                        await raw.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                    yield raw
            else:
                yield raw
        except BaseException as err:
            error = err
            raise
        finally:
            await self._give_back(conn, raw, error)

    async def _give_back(self, conn: AsyncConnection, raw: Any, error: BaseException | None) -> None:
        """Keeps a connection whose use ended cleanly for the next use; returns one to the pool
        after a use that failed on the server's side; drops one that is lost, or whose protocol
        state is in doubt (a client-side error, a cancelled call)."""
        in_doubt = isinstance(
            error, (asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, asyncio.CancelledError)
        )
        if in_doubt or not await _out_of_transaction(raw):
            await conn.invalidate()
            await conn.close()
        elif error is None and not self._closed and len(self._kept) < KEPT_CONNECTIONS:
            self._kept.append((conn, raw))
        else:
            await conn.close()

    async def _check_out(self) -> tuple[AsyncConnection, Any]:
        conn = await self.engine.connect()
        try:
            raw = (await conn.get_raw_connection()).driver_connection
        except BaseException:
            await conn.close()
            raise
        assert raw is not None  # a live pooled connection always has its driver connection
        return conn, raw

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction."""
        async with self.engine.connect() as conn:
            yield conn
            await conn.rollback()

    async def close(self) -> None:
        """Releases every pooled connection."""
        self._closed = True
        kept, self._kept = self._kept, []
        for conn, _ in kept:
            await conn.close()
        await self.engine.dispose()


async def _out_of_transaction(raw: Any) -> bool:
    """Rolls back a transaction a use of `Database.asyncpg` left open (SQLAlchemy's reset on
    return does not see one begun on the driver connection); False if the connection is lost."""
    if not raw.is_closed() and raw.is_in_transaction():
        try:
            await raw.execute("ROLLBACK")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            return False
    return not raw.is_closed()


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
    not accepting connections (a service started before PostgreSQL, a database being restarted or
    closed to connections), a connection broke (the server ended it, the network dropped it), the
    pool has no connection to lend, it is not migrated yet, or an SQLite file is locked beyond the
    busy timeout (another process is cleaning up or recovering its WAL). SQLAlchemy wraps the
    driver's error: its cause chain is searched too."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_connection_failure(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


def _is_connection_failure(err: BaseException) -> bool:
    if isinstance(err, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)):
        return True
    if isinstance(err, sa.exc.DBAPIError) and err.connection_invalidated:
        return True
    if isinstance(
        err,
        (
            OSError,
            asyncpg.InterfaceError,  # "connection is closed", and the like, on the client's side
            asyncpg.InternalClientError,  # a connection left mid-operation by one that broke
            asyncpg.PostgresConnectionError,  # class 08: the connection failed or does not exist
            asyncpg.exceptions.OperatorInterventionError,  # class 57: shut down, cannot connect now
            asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
            # A database not migrated to this code's revision (health says NOT_SERVING): on
            # SQLite "no such table" and "no such column" are OperationalErrors, as above.
            asyncpg.exceptions.UndefinedTableError,
            asyncpg.exceptions.UndefinedColumnError,
        ),
    ):
        return True
    # PostgreSQL ends the session after a FATAL error: e.g. `database "x" is not currently
    # accepting connections` or `does not exist`, refused while connecting.
    return isinstance(err, asyncpg.PostgresError) and getattr(err, "severity", "") in ("FATAL", "PANIC")


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


def log_failed_round(throttled: ThrottledLog, what: str, err: BaseException) -> None:
    """Logs a failed round of a background loop (`what`: "sweep", "dispatch round"): while the
    database is unavailable every round fails alike, so one line per interval with a count;
    anything else with its traceback."""
    if is_unavailable(err):
        cause = getattr(err, "orig", None) or err
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        throttled.warning(what, "%s failed: the database is unavailable (%s); retrying", what, reason)
    else:
        throttled.logger.error("%s failed", what, exc_info=err)
