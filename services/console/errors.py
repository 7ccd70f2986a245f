"""The API's one error shape and the mapping of every failure to it.

A failed request answers an HTTP status and ``{"error": {"code", "message", "violations"}}``,
where ``code`` is a gRPC status name (docs/console.md, HTTP API). The scheduler's own statuses
pass through with their message and field violations; anything unexpected is logged with an id
and answered with a generic sentence naming that id: no traceback or exception text reaches a
browser.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from aiohttp import web

from attune.grpcutil.errors import violations_of

log = logging.getLogger(__name__)

#: HTTP status of each gRPC code the API answers with; any other code is a 500.
HTTP_STATUS: dict[str, int] = {
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "FAILED_PRECONDITION": 412,
    "UNAVAILABLE": 503,
}
#: Codes whose server message is safe and useful to show; others get a generic sentence.
_SHOWN = frozenset(HTTP_STATUS) | {"DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "OUT_OF_RANGE"}
_MESSAGE_MAX_CHARS = 1000


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: its path (``parameters.x``) and what is wrong with it."""

    field: str
    description: str


@dataclass
class ApiError(Exception):
    """A failure answered as the API's JSON error; `code` is a gRPC status name."""

    code: str
    message: str
    violations: Sequence[FieldViolation] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def status(self) -> int:
        """The HTTP status of `code`."""
        return HTTP_STATUS.get(self.code, 500)

    def body(self) -> dict[str, object]:
        """The JSON error object."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "violations": [{"field": v.field, "description": v.description} for v in self.violations],
            }
        }

    def response(self) -> web.Response:
        """The JSON error response."""
        return web.json_response(self.body(), status=self.status)


def invalid(field_name: str, description: str) -> ApiError:
    """INVALID_ARGUMENT naming one field of the request."""
    return ApiError("INVALID_ARGUMENT", f"{field_name}: {description}", [FieldViolation(field_name, description)])


def unauthenticated(message: str = "sign in with a token") -> ApiError:
    """UNAUTHENTICATED: no credential, or one the platform refused."""
    return ApiError("UNAUTHENTICATED", message)


def forbidden(message: str) -> ApiError:
    """PERMISSION_DENIED with `message`."""
    return ApiError("PERMISSION_DENIED", message)


def from_rpc(error: grpc.RpcError) -> ApiError:
    """The API error of a failed gRPC call: its code, message and field violations."""
    code = error.code() if hasattr(error, "code") else None
    name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    details = (error.details() if hasattr(error, "details") else "") or ""
    if name == "UNAVAILABLE":
        return ApiError(name, "the scheduler is not reachable right now; try again in a moment")
    if name == "DEADLINE_EXCEEDED":
        return ApiError(name, "the scheduler did not answer in time")
    if name not in _SHOWN:
        return internal(error)
    try:
        found = [FieldViolation(v.field, v.description) for v in violations_of(error)]
    except Exception:  # a status without readable details still has its code and message
        found = []
    return ApiError(name, details[:_MESSAGE_MAX_CHARS] or name.lower().replace("_", " "), found)


def internal(error: BaseException) -> ApiError:
    """A failure nobody planned for: logged with its traceback under an id the answer names."""
    error_id = uuid.uuid4().hex[:12]
    log.error("internal error %s", error_id, exc_info=error)
    return ApiError("INTERNAL", f"internal error (id {error_id}; the console's log has the details)")
