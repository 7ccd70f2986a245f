"""Tokens as the scheduler stores them, on PostgreSQL and SQLite: hashed only, unique names,
revocation, the bootstrap admin token and the verifier's one-second cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from attune.grpcutil.errors import AlreadyExists, InvalidArgument, NotFound
from attune.security.policy import Role
from attune.security.tokens import TOKEN_PREFIX, new_token
from attune.storage import Database
from attune.storage.schema import api_tokens
from attune_services.scheduler.tokens import BOOTSTRAP_NAME, TokenStore, TokenVerifier


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TokenStore]:
    db = Database(database_url)
    try:
        yield TokenStore(db)
    finally:
        await db.close()


async def _stored_text(store: TokenStore) -> str:
    async with store._db.read() as conn:
        rows = (await conn.execute(sa.select(api_tokens))).all()
    return repr(rows)


async def test_a_token_is_stored_only_as_its_hash(store: TokenStore) -> None:
    token = new_token()
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40
    record = await store.create("ci", Role.OPERATOR, token, created_by="admin")
    assert (record.name, record.role, record.created_by, record.revoked_at) == ("ci", Role.OPERATOR, "admin", None)
    assert token not in await _stored_text(store)
    found = await store.find(token)
    assert found is not None and found.name == "ci"
    assert await store.find(new_token()) is None


async def test_a_name_is_used_once_even_after_revocation(store: TokenStore) -> None:
    await store.create("ci", Role.VIEWER, new_token(), created_by="")
    with pytest.raises(AlreadyExists, match="'ci' already exists"):
        await store.create("ci", Role.ADMIN, new_token(), created_by="")
    revoked = await store.revoke("ci")
    assert revoked.revoked_at is not None
    assert (await store.revoke("ci")).revoked_at == revoked.revoked_at  # a second revoke changes nothing
    with pytest.raises(AlreadyExists):
        await store.create("ci", Role.VIEWER, new_token(), created_by="")
    with pytest.raises(NotFound, match="no token named 'nobody'"):
        await store.revoke("nobody")
    with pytest.raises(InvalidArgument, match="token name 'bad name' is not valid"):
        await store.create("bad name", Role.VIEWER, new_token(), created_by="")


async def test_the_bootstrap_token_is_kept_valid_and_follows_its_file(store: TokenStore, tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    path.write_text("attune_first\n")
    await store.ensure_bootstrap(path)
    await store.ensure_bootstrap(path)  # every start: nothing changes
    first = await store.find("attune_first")
    assert first is not None and (first.name, first.role) == (BOOTSTRAP_NAME, Role.ADMIN)
    path.write_text("attune_second")
    await store.ensure_bootstrap(path)
    assert await store.find("attune_first") is None
    second = await store.find("attune_second")
    assert second is not None and second.name == BOOTSTRAP_NAME
    path.write_text("")
    with pytest.raises(ValueError, match=r"admin\.token is empty"):
        await store.ensure_bootstrap(path)


async def test_replicas_starting_together_on_a_fresh_database_all_make_the_bootstrap_token(
    database_url: str, tmp_path: Path
) -> None:
    """Scheduler replicas started at the same moment each ensure the bootstrap token: none fails
    on the other's insert (found by `attune bench faults`, which starts replicas together)."""
    path = tmp_path / "admin.token"
    path.write_text("attune_together\n")
    replicas = [Database(database_url) for _ in range(4)]
    try:
        for _ in range(5):  # the race is narrow: several rounds, each on a table without the row
            async with replicas[0].write() as conn:
                await conn.execute(api_tokens.delete().where(api_tokens.c.name == BOOTSTRAP_NAME))
            await asyncio.gather(*(TokenStore(db).ensure_bootstrap(path) for db in replicas))
            found = await TokenStore(replicas[0]).find("attune_together")
            assert found is not None and (found.name, found.role) == (BOOTSTRAP_NAME, Role.ADMIN)
    finally:
        for db in replicas:
            await db.close()


async def test_the_verifier_sees_a_revocation_by_another_replica_within_its_ttl(store: TokenStore) -> None:
    token = new_token()
    await store.create("ops", Role.OPERATOR, token, created_by="")
    verifier = TokenVerifier(store, ttl=0.3)
    other_replica = TokenStore(store._db)
    assert (await verifier.verify(token)).record is not None
    await other_replica.revoke("ops")
    cached = verifier.cached(token)
    assert cached is not None and cached.record is not None  # still cached: the ttl bounds this
    assert cached.record.revoked_at is None and (await verifier.verify(token)) is cached
    await asyncio.sleep(0.35)
    assert verifier.cached(token) is None
    after = (await verifier.verify(token)).record
    assert after is not None and after.revoked_at is not None


async def test_concurrent_lookups_of_one_token_share_one_read(store: TokenStore) -> None:
    token = new_token()
    await store.create("busy", Role.VIEWER, token, created_by="")
    reads = 0
    find = store.find

    async def counted(value: str) -> object:
        nonlocal reads
        reads += 1
        return await find(value)

    store.find = counted  # type: ignore[method-assign,assignment]
    verifier = TokenVerifier(store)
    records = await asyncio.gather(*(verifier.verify(token) for _ in range(50)))
    assert {r.record.name for r in records if r.record is not None} == {"busy"} and reads == 1
