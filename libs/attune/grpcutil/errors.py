"""Domain errors and their mapping to rich gRPC statuses (google.rpc.Status with details).

Domain code raises these; `rpc_errors` turns them into the status code the contract names
(docs/architecture.md, Interfaces): INVALID_ARGUMENT with field violations, NOT_FOUND, FAILED_PRECONDITION.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from attune.grpcutil.server import RpcContext

log = logging.getLogger(__name__)


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


class Unavailable(AttuneError):
    """A dependency is unreachable; the client may retry."""

    code = grpc.StatusCode.UNAVAILABLE


def to_status(err: AttuneError) -> grpc.Status:
    """The rich status of a domain error (violations packed as google.rpc.BadRequest or
    PreconditionFailure details)."""
    details: list[any_pb2.Any] = []
    if err.violations:
        packed = any_pb2.Any()
        if err.code == grpc.StatusCode.FAILED_PRECONDITION:
            packed.Pack(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type="IMMUTABLE", subject=v.field, description=v.description
                        )
                        for v in err.violations
                    ]
                )
            )
        else:
            packed.Pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                        for v in err.violations
                    ]
                )
            )
        details.append(packed)
    status = status_pb2.Status(code=getattr(code_pb2, err.code.name), message=err.message, details=details)
    return rpc_status.to_status(status)


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


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def rpc_errors(method: F) -> F:
    """Decorates a unary servicer method: domain errors become rich statuses, anything else is
    logged and reported as INTERNAL without a traceback reaching the client."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: RpcContext) -> Any:
        try:
            return await method(self, request, context)
        except AttuneError as err:
            # grpc.aio's concrete context has abort_with_status; its abstract base and stubs omit it.
            await context.abort_with_status(to_status(err))  # type: ignore[attr-defined]
        except grpc.aio.AbortError:
            raise
        except Exception as err:
            log.exception("unhandled error in %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__}: {err}")

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps the signature F names
