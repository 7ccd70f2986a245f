"""The DB session helper and group commit on both stores."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from attune.storage import Database, retry_while_unavailable
from attune.storage.batching import GroupCommitter
from attune.storage.migrate import upgrade
from attune.storage.schema import executions


def _row(i: int) -> dict[str, object]:
    now = time.time()
    return {
        "id": f"{i:032x}",
        "action_ref": "core.noop",
        "runner_type": "noop",
        "state": "scheduling",
        "parameters": "{}",
        "secret_names": "[]",
        "depth": 0,
        "created_at": now,
        "updated_at": now,
    }


async def test_write_commits_and_rolls_back(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.write() as conn:
            await conn.execute(executions.insert(), [_row(1)])
        try:
            async with db.write() as conn:
                await conn.execute(executions.insert(), [_row(2)])
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        async with db.read() as conn:
            ids = (await conn.execute(sa.select(executions.c.id))).scalars().all()
        assert ids == [f"{1:032x}"]
    finally:
        await db.close()


async def test_asyncpg_keeps_a_connection_between_uses_only_when_it_is_clean(postgres_url: str) -> None:
    """Database.asyncpg lends the same connection again after a clean use (no checkout through
    SQLAlchemy's pool each time); one left inside a transaction, or lost, is never lent again."""
    db = Database(postgres_url)
    try:
        async with db.asyncpg() as raw:
            first = await raw.fetchval("SELECT pg_backend_pid()")
        async with db.asyncpg() as raw:
            assert await raw.fetchval("SELECT pg_backend_pid()") == first

        async with db.asyncpg() as raw:
            await raw.execute("CREATE TABLE probe (v text)")
            await raw.execute("BEGIN")  # left open by a careless caller
            await raw.execute("INSERT INTO probe VALUES ('left open')")
        async with db.asyncpg() as raw:
            assert not raw.is_in_transaction()
            await raw.execute("INSERT INTO probe VALUES ('committed')")
        async with db.read() as conn:  # another connection: the second insert committed on its own
            values = (await conn.execute(sa.text("SELECT v FROM probe"))).scalars().all()
        assert values == ["committed"]

        async with db.asyncpg() as raw:
            lost = await raw.fetchval("SELECT pg_backend_pid()")
        async with db.read() as conn:  # another connection ends it behind the kept one's back
            # (waiting up to 5 s until the backend is gone: without the timeout it only signals it)
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": lost})
        lost_errors = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)
        with pytest.raises(lost_errors):
            async with db.asyncpg() as raw:  # kept before anyone knew: its next use fails
                await raw.fetchval("SELECT 1")
        for _ in range(3):  # ... and it is never lent again
            async with db.asyncpg() as raw:
                assert await raw.fetchval("SELECT pg_backend_pid()") != lost
    finally:
        await db.close()


async def test_compare_and_set_moves_state_once(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.write() as conn:
            await conn.execute(executions.insert(), [_row(7)])
        cas = (
            executions.update()
            .where(executions.c.id == f"{7:032x}", executions.c.state == "scheduling")
            .values(state="scheduled")
        )
        async with db.write() as conn:
            first = (await conn.execute(cas)).rowcount
        async with db.write() as conn:
            second = (await conn.execute(cas)).rowcount
        assert (first, second) == (1, 0)
    finally:
        await db.close()


async def test_group_commit_batches_concurrent_writers(database_url: str) -> None:
    db = Database(database_url)
    batches: list[int] = []

    async def flush(rows: list[dict[str, object]]) -> list[str]:
        batches.append(len(rows))
        async with db.write() as conn:
            await conn.execute(executions.insert(), rows)
        return [str(r["id"]) for r in rows]

    committer: GroupCommitter[dict[str, object], str] = GroupCommitter(flush)
    try:
        ids = await asyncio.gather(*(committer.submit(_row(i)) for i in range(100, 400)))
        assert ids == [f"{i:032x}" for i in range(100, 400)]
        assert sum(batches) == 300
        assert len(batches) < 300 // 2, f"expected grouped batches, got {batches}"
        async with db.read() as conn:
            count = (await conn.execute(sa.select(sa.func.count()).select_from(executions))).scalar()
        assert count == 300
    finally:
        await committer.close()
        await db.close()


async def test_group_commit_failure_reaches_every_caller_of_the_batch(sqlite_url: str) -> None:
    async def flush(rows: list[int]) -> list[int]:
        if 13 in rows:
            raise ValueError("unlucky batch")
        return rows

    committer: GroupCommitter[int, int] = GroupCommitter(flush)
    results = await asyncio.gather(*(committer.submit(i) for i in (12, 13)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert await committer.submit(5) == 5
    await committer.close()


async def test_submit_many_shares_a_batch_and_reports_its_failure() -> None:
    batches: list[list[int]] = []

    async def flush(rows: list[int]) -> list[int]:
        batches.append(rows)
        if 13 in rows:
            raise ValueError("unlucky batch")
        return [r * 10 for r in rows]

    committer: GroupCommitter[int, int] = GroupCommitter(flush)
    assert await committer.submit_many([1, 2, 3]) == [10, 20, 30]
    assert batches == [[1, 2, 3]]
    assert await committer.submit_many([]) == []
    with pytest.raises(ValueError, match="unlucky"):
        await committer.submit_many([12, 13])
    await committer.close()


async def test_a_lingering_committer_gathers_items_submitted_one_after_another() -> None:
    batches: list[list[int]] = []

    async def flush(rows: list[int]) -> list[None]:
        batches.append(rows)
        return [None] * len(rows)

    committer: GroupCommitter[int, None] = GroupCommitter(flush, linger=0.1)
    waits = [asyncio.ensure_future(committer.submit(1))]
    for item in (2, 3):
        await asyncio.sleep(0.01)  # each alone would be its own batch without the linger
        waits.append(asyncio.ensure_future(committer.submit(item)))
    await asyncio.gather(*waits)
    assert batches == [[1, 2, 3]]
    await committer.close()


async def test_a_busy_committer_waits_for_more_but_a_lone_item_is_written_at_once() -> None:
    batches: list[list[int]] = []

    async def flush(rows: list[int]) -> list[None]:
        batches.append(rows)
        return [None] * len(rows)

    committer: GroupCommitter[int, None] = GroupCommitter(flush, busy_linger=0.3)

    async def two_apart(first: int, second: int) -> None:
        waits = [asyncio.ensure_future(committer.submit(first))]
        await asyncio.sleep(0.05)
        waits.append(asyncio.ensure_future(committer.submit(second)))
        await asyncio.gather(*waits)

    await asyncio.gather(*(committer.submit(i) for i in (1, 2, 3)))  # nothing before: written at once
    await two_apart(4, 5)  # after a batch of three: the committer waits and takes both
    await committer.submit(6)  # after a batch of two: waits, alone
    await two_apart(7, 8)  # after a batch of one: written at once, then 8 on its own
    assert batches == [[1, 2, 3], [4, 5], [6], [7], [8]]
    await committer.close()


async def test_retry_while_unavailable_retries_transient_errors_only() -> None:
    calls: list[int] = []

    async def locked_twice() -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise sa.exc.OperationalError("SELECT 1", {}, Exception("database is locked"))
        return "read"

    assert await retry_while_unavailable(locked_twice, what="test", timeout=5.0) == "read"
    assert len(calls) == 3

    async def broken() -> None:
        calls.append(1)
        raise ValueError("not a database outage")

    calls.clear()
    with pytest.raises(ValueError):
        await retry_while_unavailable(broken, what="test", timeout=5.0)
    assert len(calls) == 1  # not retried


async def test_retry_while_unavailable_gives_up_after_its_timeout() -> None:
    async def refused() -> None:
        raise ConnectionRefusedError("connection refused")

    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        await retry_while_unavailable(refused, what="test", timeout=0.3)
    assert time.monotonic() - started < 2.0


def test_migrating_a_new_sqlite_file_leaves_it_in_wal_mode(tmp_path: Path) -> None:
    """Services starting together must not each switch the file to WAL (an exclusive lock)."""
    path = tmp_path / "fresh" / "attune.db"
    upgrade(f"sqlite:///{path}")
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        connection.close()


async def _schema_differences(db: Database) -> list[object]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from attune.storage.schema import metadata

    async with db.engine.connect() as conn:
        return await conn.run_sync(lambda sync: list(compare_metadata(MigrationContext.configure(sync), metadata)))


async def test_the_migrations_build_exactly_the_declared_schema_and_downgrade_cleanly(database_url: str) -> None:
    from alembic import command

    from attune.storage.migrate import alembic_config

    db = Database(database_url)
    try:
        assert await _schema_differences(db) == []
        await db.engine.dispose()  # the downgrade rewrites SQLite tables: no connection may hold them
        await asyncio.to_thread(command.downgrade, alembic_config(database_url), "base")
        await asyncio.to_thread(command.upgrade, alembic_config(database_url), "head")
        assert await _schema_differences(db) == []
    finally:
        await db.close()
