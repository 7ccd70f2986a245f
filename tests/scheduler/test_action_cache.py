"""The scheduler's action cache (services/scheduler/actions.py) on both databases: misses are
single-flight, entries never expire on a clock, and a registry write through another replica is
seen through the registry generation, not a TTL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from attune.storage import Database
from attune.storage.schema import actions, packs
from attune_services.scheduler.actions import ActionCache, bump_registry_generation

POLL = 0.05


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    now = time.time()
    async with database.write() as conn:
        await conn.execute(packs.insert().values(ref="cachepack", digest="d", registered_at=now))
        await conn.execute(
            actions.insert().values(
                id="a1",
                ref="cachepack.one",
                pack="cachepack",
                name="one",
                label="one",
                description="first",
                enabled=True,
                runner_type="noop",
                created_at=now,
                updated_at=now,
            )
        )
    yield database
    await database.close()


def count_action_reads(db: Database) -> list[str]:
    """Every statement that reads the actions table, as the real engine runs it."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM actions" in statement:
            seen.append(statement)

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    return seen


async def set_description(db: Database, text: str) -> None:
    """A registry write as RegistryService makes it: the row and the generation together."""
    async with db.write() as conn:
        await conn.execute(actions.update().where(actions.c.ref == "cachepack.one").values(description=text))
        await bump_registry_generation(conn)


async def test_concurrent_misses_read_the_action_once(db: Database) -> None:
    cache = ActionCache(db, poll=60)
    reads = count_action_reads(db)
    got = await asyncio.gather(*(cache.get("cachepack.one") for _ in range(200)))
    assert {a.description for a in got if a is not None} == {"first"} and None not in got
    assert len(reads) == 1
    many = await asyncio.gather(*(cache.get_many({"cachepack.one", "cachepack.none"}) for _ in range(50)))
    assert all(set(m) == {"cachepack.one"} for m in many)
    assert len(reads) == 2  # one more read, for the unknown ref, shared by all 50


async def test_entries_stay_until_the_registry_generation_moves(db: Database) -> None:
    """Two replicas: a write through the other one is seen within a poll, and not before the
    generation moves however long the entry has been held (no clock expiry)."""
    here, other = ActionCache(db, poll=POLL), ActionCache(db, poll=POLL)
    await here.start()  # its first read of the generation is done when it returns
    try:
        first = await here.get("cachepack.one")
        assert first is not None and first.description == "first"
        # A write that does not count in the generation is not seen: nothing expires on a clock.
        async with db.write() as conn:
            await conn.execute(actions.update().where(actions.c.ref == "cachepack.one").values(description="quiet"))
        await asyncio.sleep(POLL * 6)
        held = await here.get("cachepack.one")
        assert held is not None and held.description == "first"
        await set_description(db, "second")
        other.invalidate()  # the writing replica forgets at once
        seen = await other.get("cachepack.one")
        assert seen is not None and seen.description == "second"
        deadline = time.monotonic() + 5
        while (now := await here.get("cachepack.one")) is not None and now.description != "second":
            assert time.monotonic() < deadline, "the other replica's write was never seen"
            await asyncio.sleep(POLL / 2)
    finally:
        await here.stop()


async def test_a_read_in_flight_during_an_invalidation_stores_nothing(db: Database) -> None:
    cache = ActionCache(db, poll=60)
    reading = asyncio.ensure_future(cache.get("cachepack.one"))
    await asyncio.sleep(0)  # the read has started
    await set_description(db, "changed")
    cache.invalidate()
    await reading  # whatever it read, it is not kept
    after = await cache.get("cachepack.one")
    assert after is not None and after.description == "changed"


async def test_a_cancelled_caller_leaves_the_shared_read_to_the_others(db: Database) -> None:
    cache = ActionCache(db, poll=60)
    reads = count_action_reads(db)
    first = asyncio.ensure_future(cache.get("cachepack.one"))
    second = asyncio.ensure_future(cache.get("cachepack.one"))
    await asyncio.sleep(0)
    first.cancel()
    got = await second
    assert got is not None and got.ref == "cachepack.one"
    assert first.cancelled() and len(reads) == 1
