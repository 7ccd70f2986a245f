"""Domain errors and the one mapping of every failure to a gRPC status (google.rpc.Status with details).

Domain code raises `AttuneError`s; `status_for` turns any exception into the status the contract
names (docs/architecture.md, Interfaces):

- bad input → INVALID_ARGUMENT with a google.rpc.BadRequest field violation per bad field;
- a missing thing → NOT_FOUND; an illegal change → FAILED_PRECONDITION (PreconditionFailure);
- the database or another service unreachable → UNAVAILABLE, which clients retry; logged one line
  per kind per interval (`attune.logs.ThrottledLog`), since every request fails alike meanwhile;
- anything else is a bug → INTERNAL with a generic sentence and an error id; the log has the
  traceback under that id. No exception text, SQL or repr reaches the client.

`rpc_errors` applies it to a servicer method (unary or streaming); the server bootstrap's request
guard applies it to any handler that lacks it. Status messages and violations are cut to a few
KiB: they travel in trailers, which a client refuses beyond 8 KiB ("metadata size exceeds hard
limit"), so an error must never echo a large input whole — `quoted` shows the head of one.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from attune.logs import ThrottledLog

if TYPE_CHECKING:
    from attune.grpcutil.server import RpcContext

log = logging.getLogger(__name__)
_outages = ThrottledLog(log)

#: The longest status message sent (UTF-8 bytes); longer ones are cut.
MESSAGE_MAX_BYTES = 512
#: The most text (fields and descriptions, UTF-8 bytes) of the violations sent with one status.
VIOLATIONS_MAX_BYTES = 3 * 1024
_DESCRIPTION_MAX_BYTES = 512
_FIELD_MAX_BYTES = 256
#: How much of a client's value an error message shows (`quoted`).
ECHO_MAX_CHARS = 64

# Exceptions of these packages come from the database drivers: only a process with a database
# raises them, so only then is `attune.storage` (and SQLAlchemy) imported to classify them.
_DATABASE_PACKAGES = frozenset({"sqlalchemy", "asyncpg", "sqlite3", "aiosqlite"})
_DEPENDENCY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass(frozen=True)
class Violation:
    """One bad field of a request: its path and what is wrong with it."""

    field: str
    description: str


class AttuneError(Exception):
    """Base of every error that maps to a gRPC status."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, violations: Sequence[Violation] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.violations = list(violations)


class InvalidArgument(AttuneError):
    """The request is malformed; `violations` name each bad field."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(AttuneError):
    """The named thing does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(AttuneError):
    """The thing to create exists already (e.g. an action ref)."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(AttuneError):
    """The request is well formed but illegal in the current state."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(AttuneError):
    """The caller is known but not one the thing asked about allows (e.g. who may answer an ask)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(AttuneError):
    """A dependency is unreachable; the client may retry."""

    code = grpc.StatusCode.UNAVAILABLE


def invalid_field(field: str, description: str) -> InvalidArgument:
    """INVALID_ARGUMENT for one bad field, its message "<field>: <description>"."""
    return InvalidArgument(f"{field}: {description}", [Violation(field, description)])


def quoted(value: str, limit: int = ECHO_MAX_CHARS) -> str:
    """A client's value as an error message shows it: in double quotes, cut to its first `limit`
    characters (with its length) when longer."""
    if len(value) <= limit:
        return f'"{value}"'
    return f'"{value[:limit]}…" ({len(value)} characters)'


def _cut(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max_bytes - 3].decode(errors="ignore") + "…"


def _bounded(violations: Sequence[Violation]) -> list[Violation]:
    """The violations that fit in VIOLATIONS_MAX_BYTES, each cut, and a last one counting the rest."""
    kept: list[Violation] = []
    budget = VIOLATIONS_MAX_BYTES
    for i, v in enumerate(violations):
        cut = Violation(_cut(v.field, _FIELD_MAX_BYTES), _cut(v.description, _DESCRIPTION_MAX_BYTES))
        size = len(cut.field.encode()) + len(cut.description.encode())
        if size > budget:
            kept.append(Violation("", f"and {len(violations) - i} more violations not shown"))
            break
        kept.append(cut)
        budget -= size
    return kept


def to_status(err: AttuneError) -> grpc.Status:
    """The rich status of a domain error (violations packed as google.rpc.BadRequest or
    PreconditionFailure details), message and violations cut to fit in a client's trailers."""
    details: list[any_pb2.Any] = []
    violations = _bounded(err.violations)
    if violations:
        packed = any_pb2.Any()
        if err.code == grpc.StatusCode.FAILED_PRECONDITION:
            packed.Pack(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type="IMMUTABLE", subject=v.field, description=v.description
                        )
                        for v in violations
                    ]
                )
            )
        else:
            packed.Pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                        for v in violations
                    ]
                )
            )
        details.append(packed)
    message = _cut(err.message, MESSAGE_MAX_BYTES)
    status = status_pb2.Status(code=getattr(code_pb2, err.code.name), message=message, details=details)
    return rpc_status.to_status(status)


def is_outage(err: BaseException) -> bool:
    """True when `err` says the database or another service cannot serve right now (the same
    call may succeed shortly), not that the request or the code is wrong."""
    if isinstance(err, grpc.aio.AioRpcError):
        return err.code() in _DEPENDENCY_CODES
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    if type(err).__module__.partition(".")[0] in _DATABASE_PACKAGES:
        from attune.storage.database import is_unavailable  # a process with a database: loaded already

        return is_unavailable(err)
    return False


def status_for(err: BaseException, *, method: str) -> grpc.Status:
    """The status a call of `method` answers for `err`, logged as its kind needs: a domain error
    not at all, an outage once per kind per interval, a bug with its traceback and an error id."""
    if isinstance(err, AttuneError):
        return to_status(err)
    if is_outage(err):
        database = not isinstance(err, grpc.aio.AioRpcError)
        kind = "database unavailable" if database else "dependency unavailable"
        _outages.warning(kind, "%s: %s answers UNAVAILABLE", kind, method, extra={"reason": _reason(err)})
        what = "the database is" if database else "a service this call depends on is"
        return to_status(Unavailable(f"{what} unavailable; retry shortly"))
    error_id = os.urandom(6).hex()
    log.error("internal error %s in %s", error_id, method, exc_info=err, extra={"error_id": error_id})
    return to_status(AttuneError(f"internal error; the service logged it with error id {error_id}"))


def _reason(err: BaseException) -> str:
    """One line saying what failed, for the log (a driver's message, never to a client)."""
    if isinstance(err, grpc.aio.AioRpcError):
        return f"{err.code().name}: {err.details()}"
    cause = getattr(err, "orig", None) or err
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"[:300]


async def abort_for(context: RpcContext, err: BaseException, *, method: str) -> None:
    """Ends the call with `status_for(err)` (raises grpc.aio.AbortError)."""
    # grpc.aio's concrete context has abort_with_status; its abstract base and stubs omit it.
    await context.abort_with_status(status_for(err, method=method))  # type: ignore[attr-defined]


def violations_of(error: grpc.RpcError) -> list[Violation]:
    """The field violations carried by a rich error received by a client."""
    # A client's RpcError is also its grpc.Call (code, trailing metadata); the stubs keep them apart.
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    found: list[Violation] = []
    for detail in status.details if status else []:
        bad = error_details_pb2.BadRequest()
        pre = error_details_pb2.PreconditionFailure()
        if detail.Unpack(bad):
            found += [Violation(v.field, v.description) for v in bad.field_violations]
        elif detail.Unpack(pre):
            found += [Violation(v.subject, v.description) for v in pre.violations]
    return found


F = TypeVar("F", bound=Callable[..., Any])


def rpc_errors(method: F) -> F:
    """Decorates a servicer method, unary or streaming (an async generator): whatever it raises
    ends the call with `status_for`'s status, never a traceback or an exception's text."""
    where = method.__qualname__
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(self: Any, request: Any, context: RpcContext) -> AsyncIterator[Any]:
            try:
                async for response in method(self, request, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as err:
                await abort_for(context, err, method=where)

        return stream  # type: ignore[return-value]  # functools.wraps keeps the signature F names

    call: Callable[..., Awaitable[Any]] = method

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: RpcContext) -> Any:
        try:
            return await call(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as err:
            await abort_for(context, err, method=where)

    return unary  # type: ignore[return-value]  # functools.wraps keeps the signature F names
