"""The request log: a retried mutating request returns its original response (docs/architecture.md, Interfaces).

A request carrying a client `request_id` is looked up in `request_log` before anything is done.
Found for the same RPC and the same request (the sha256 of the request serialized with its
request_id cleared): the stored response is returned and nothing is done again. Found for
another RPC or other fields: FAILED_PRECONDITION naming `request_id`. Not found: the request is
performed and its response stored, in the same transaction as the change wherever the change is
one transaction (`RequestLog.write`), else once the change is durable (`RequestLog.record`).
A refused request stores nothing, so a corrected retry with the same request_id is performed.
Rows older than `request_log_ttl` are pruned by the sweeper; a retry after that is a new request.

RequestExecution and CreateAction follow the same rule without this log: the row they create keeps
the request_id (unique `executions.request_id` / `actions.request_id`, never pruned), and a request
finding it is compared with that row — a retry gets the original, a different request is refused
with the same FAILED_PRECONDITION (`requests.py`, `registry.py`). That keeps the execution hot path
at one statement per batch.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from attune.grpcutil.errors import FailedPrecondition, Unavailable, Violation
from attune.storage import Database, dialect_insert
from attune.storage.schema import request_log

R = TypeVar("R", bound=Message)


@dataclass(frozen=True)
class LoggedRequest(Generic[R]):
    """A request with a request_id: the key of its log row and what a retry must match."""

    request_id: str
    method: str  # the RPC's full name, e.g. "attune.registry.v1.RegistryService.RegisterPack"
    digest: str
    response_type: type[R]


def logged_request(method: MethodDescriptor, request: Message, response_type: type[R]) -> LoggedRequest[R] | None:
    """The log entry `request` of RPC `method` would have; None when it carries no request_id."""
    if method.output_type.full_name != response_type.DESCRIPTOR.full_name:
        raise TypeError(f"{method.full_name} answers {method.output_type.full_name}, not {response_type.__name__}")
    # Only requests with a request_id field come here; Message does not name its fields.
    request_id: str = request.request_id  # type: ignore[attr-defined]
    if not request_id:
        return None
    unkeyed = type(request)()
    unkeyed.CopyFrom(request)
    unkeyed.ClearField("request_id")
    # Deterministic: a Struct's map entries are serialized in key order, whatever order they came in.
    digest = hashlib.sha256(unkeyed.SerializeToString(deterministic=True)).hexdigest()
    return LoggedRequest(request_id, method.full_name, digest, response_type)


def reused_request_id(request_id: str, *, method: str = "", fields: Sequence[str] = ()) -> FailedPrecondition:
    """The refusal of a request whose `request_id` was used for a different request: of another
    RPC (`method`, its full name), or of the same RPC with other `fields` (names only, never
    values: parameters may hold secrets). Neither given: the same RPC with fields unnamed (the
    request log keeps only a digest of the request)."""
    if method:
        other = method
    elif fields:
        other = f"other {', '.join(fields)}"
    else:
        other = "the same RPC with other fields"
    return FailedPrecondition(
        f"request_id {request_id!r} was used for a different request ({other})",
        [Violation("request_id", f"was used for a different request ({other}); choose a new one")],
    )


class _AnsweredMeanwhile(Exception):
    """A concurrent request with the same request_id stored its response first."""


class RequestLog:
    """Reads and writes `request_log` (owned by the scheduler)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def original(self, logged: LoggedRequest[R] | None) -> R | None:
        """The stored response of an earlier request with this request_id, None if there is none.
        Raises FailedPrecondition when the request_id was used for another RPC or request."""
        if logged is None:
            return None
        async with self._db.read() as conn:
            row = (
                await conn.execute(sa.select(request_log).where(request_log.c.request_id == logged.request_id))
            ).first()
        if row is None:
            return None
        if (row.method, row.request_digest) != (logged.method, logged.digest):
            raise reused_request_id(logged.request_id, method=row.method if row.method != logged.method else "")
        return logged.response_type.FromString(row.response)

    async def write(self, logged: LoggedRequest[R] | None, change: Callable[[AsyncConnection], Awaitable[R]]) -> R:
        """Runs `change` in one write transaction and stores the response it returns in the same
        transaction: the change and its log row commit together or not at all.

        The row is inserted first, so a concurrent request with the same request_id waits for
        this transaction (PostgreSQL: on the row; SQLite: on the write lock) and then returns
        this response instead of making the change a second time. A failed change rolls the row
        back with it: nothing is logged."""
        try:
            async with self._db.write() as conn:
                if logged is not None and not await _insert(conn, logged, b""):
                    raise _AnsweredMeanwhile()
                response = await change(conn)
                if logged is not None:
                    await conn.execute(
                        request_log.update()
                        .where(request_log.c.request_id == logged.request_id)
                        .values(response=response.SerializeToString())
                    )
        except _AnsweredMeanwhile:
            assert logged is not None
            return await self._stored(logged)
        return response

    async def record(self, logged: LoggedRequest[R] | None, response: R) -> R:
        """Stores the response of a request whose change is already durable (in its own
        transaction); returns the response a retry will get: the first one stored wins."""
        if logged is None:
            return response
        async with self._db.write() as conn:
            inserted = await _insert(conn, logged, response.SerializeToString())
        return response if inserted else await self._stored(logged)

    async def prune(self, *, older_than: float) -> int:
        """Deletes, in one statement, the entries stored before `older_than` (Unix seconds)."""
        async with self._db.write() as conn:
            result = await conn.execute(request_log.delete().where(request_log.c.created_at < older_than))
        return int(result.rowcount or 0)

    async def _stored(self, logged: LoggedRequest[R]) -> R:
        stored = await self.original(logged)
        if stored is None:  # stored a moment ago: only a prune racing this read removes it
            raise Unavailable(f"request_id {logged.request_id!r}: the original response was pruned meanwhile; retry")
        return stored


async def _insert(conn: AsyncConnection, logged: LoggedRequest[Any], response: bytes) -> bool:
    """Inserts the log row in the caller's transaction; False if the request_id has one already
    (ON CONFLICT DO NOTHING: on PostgreSQL it waits for a concurrent insert of it to end)."""
    statement = (
        dialect_insert(conn, request_log)
        .values(
            request_id=logged.request_id,
            method=logged.method,
            request_digest=logged.digest,
            response=response,
            created_at=time.time(),
        )
        .on_conflict_do_nothing(index_elements=["request_id"])
    )
    return bool((await conn.execute(statement)).rowcount)
