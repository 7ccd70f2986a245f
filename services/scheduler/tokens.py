"""Client tokens: the `api_tokens` table, the verifier the authorization interceptor asks, and the
bootstrap admin token (docs/architecture.md, Authorization; docs/operations.md, Tokens).

The verifier keeps each lookup (found or not) for at most `ttl` (1 s): a call costs no database
read while its token is cached, and a revocation, written by any replica, is refused by every
replica within a second. Concurrent lookups of one token share one read.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import sqlalchemy as sa

from attune.grpcutil.errors import AlreadyExists, InvalidArgument, NotFound, Violation
from attune.security.authz import Lookup
from attune.security.policy import Role
from attune.security.tokens import TokenRecord, read_token_file, token_digest
from attune.storage import Database, dialect_insert, is_unique_violation
from attune.storage.schema import api_tokens

#: The name and role of the token `ATTUNE_ADMIN_TOKEN_FILE` holds.
BOOTSTRAP_NAME = "admin"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
# Far more tokens than a deployment has; a flood of made-up tokens cannot grow the cache past it.
_CACHE_LIMIT = 10_000


def _record(row: sa.RowMapping) -> TokenRecord:
    return TokenRecord(
        name=row["name"],
        role=Role(row["role"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
        revoked_at=row["revoked_at"],
    )


class TokenStore:
    """Creates, lists and revokes tokens; only a token's sha256 is written."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, name: str, role: Role, token: str, *, created_by: str) -> TokenRecord:
        """Stores a new token; a name already used (even revoked) is AlreadyExists."""
        if not _NAME.match(name):
            raise InvalidArgument(
                f"token name {name!r} is not valid",
                [Violation("name", "letters, digits, '.', '_' and '-', starting with a letter or digit; at most 255")],
            )
        now = time.time()
        values = {
            "name": name,
            "role": str(role),
            "token_sha256": token_digest(token),
            "created_at": now,
            "created_by": created_by,
            "revoked_at": None,
        }
        try:
            async with self._db.write() as conn:
                await conn.execute(api_tokens.insert().values(**values))
        except sa.exc.IntegrityError as err:
            if is_unique_violation(err):
                raise AlreadyExists(
                    f"a token named {name!r} already exists (names of revoked tokens stay taken)"
                ) from err
            raise
        return TokenRecord(name=name, role=role, created_at=now, created_by=created_by, revoked_at=None)

    async def list(self) -> list[TokenRecord]:
        """Every token, revoked ones included, by name."""
        async with self._db.read() as conn:
            rows = (await conn.execute(sa.select(api_tokens).order_by(api_tokens.c.name))).mappings().all()
        return [_record(row) for row in rows]

    async def revoke(self, name: str) -> TokenRecord:
        """Marks a token revoked (once: a second revoke keeps the first time); NotFound if unknown."""
        async with self._db.write() as conn:
            await conn.execute(
                api_tokens.update()
                .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            row = (await conn.execute(sa.select(api_tokens).where(api_tokens.c.name == name))).mappings().first()
        if row is None:
            raise NotFound(f"no token named {name!r}")
        return _record(row)

    async def find(self, token: str) -> TokenRecord | None:
        """The record of a token value, or None."""
        digest = token_digest(token)
        async with self._db.read() as conn:
            row = (
                (await conn.execute(sa.select(api_tokens).where(api_tokens.c.token_sha256 == digest)))
                .mappings()
                .first()
            )
        return None if row is None else _record(row)

    async def ensure_bootstrap(self, path: Path) -> None:
        """Makes the token in `path` the valid `admin` token with role admin (deployments and
        `attune up` start with it). An `admin` token with another value is replaced, so rotating
        the file rotates the token; a revoked one is restored only by a new value. Replicas may
        run it at the same moment."""
        token = read_token_file(path)
        digest = token_digest(token)
        values = {
            "role": str(Role.ADMIN),
            "token_sha256": digest,
            "created_at": time.time(),
            "created_by": "",
            "revoked_at": None,
        }
        async with self._db.write() as conn:
            for _ in range(3):
                row = (
                    (await conn.execute(sa.select(api_tokens).where(api_tokens.c.name == BOOTSTRAP_NAME)))
                    .mappings()
                    .first()
                )
                if row is not None and row["token_sha256"] == digest:
                    return
                if row is not None:
                    await conn.execute(api_tokens.update().where(api_tokens.c.name == BOOTSTRAP_NAME).values(**values))
                    return
                # Replicas starting together on a fresh database: one insert wins. DO NOTHING
                # without a target also covers the token_sha256 index (an upsert on the name alone
                # failed there when the same token was inserted twice at once); the loser reads
                # the winner's row on the next round.
                insert = dialect_insert(conn, api_tokens).values(name=BOOTSTRAP_NAME, **values)
                if (await conn.execute(insert.on_conflict_do_nothing())).rowcount == 1:
                    return
            raise RuntimeError("the bootstrap admin token could not be written (another replica kept replacing it)")


class TokenVerifier:
    """Answers the authorization check: a token's lookup, cached for at most `ttl`."""

    def __init__(self, store: TokenStore, *, ttl: float = 1.0) -> None:
        self._store = store
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Lookup]] = {}
        self._pending: dict[str, asyncio.Future[Lookup]] = {}

    def cached(self, token: str) -> Lookup | None:
        """The lookup of `token` while fresh (read less than `ttl` ago); None otherwise."""
        entry = self._cache.get(token)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    async def verify(self, token: str) -> Lookup:
        """The lookup of `token` (a revoked token's record included: the caller refuses it)."""
        fresh = self.cached(token)
        if fresh is not None:
            return fresh
        pending = self._pending.get(token)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Lookup] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        now = time.monotonic()
        try:
            lookup = Lookup(await self._store.find(token))
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # retrieved here, so an unshared failure is not reported as unhandled
            raise
        finally:
            del self._pending[token]
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = (now + self._ttl, lookup)
        future.set_result(lookup)
        return lookup

    def forget(self, name: str) -> None:
        """Drops the cached lookups of a token this replica just changed (the others expire)."""
        self._cache = {k: v for k, v in self._cache.items() if v[1].record is None or v[1].record.name != name}
