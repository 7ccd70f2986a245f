"""The CLI's one connection to Attune: the scheduler's address, typed stubs, readable errors.

Every command talks to the scheduler only (it forwards workflow-run queries to the
coordinator), so a user needs one address. gRPC failures become :class:`CliError` with one
readable line that includes the server's field violations. A call answered UNAVAILABLE (the
scheduler restarting, its database away for a moment) is tried again a few times with backoff
before it fails (gRPC's own retries, `open_channel(retry_unavailable=True)`): safe, since every
mutating request the CLI sends carries a `request_id`, and a retry of one returns the original
response.
"""

from __future__ import annotations

from types import TracebackType

import grpc

from attune.auth.v1 import auth_pb2_grpc
from attune.config import Settings
from attune.execution.v1 import execution_pb2_grpc
from attune.grpcutil.channel import open_channel
from attune.grpcutil.errors import violations_of
from attune.registry.v1 import registry_pb2_grpc
from attune.workflow.v1 import workflow_pb2_grpc
from attune_services.cli.errors import FAILED, CliError

__all__ = ["CliError", "Client", "error_from_rpc", "violation_lines"]


def violation_lines(error: grpc.RpcError) -> list[str]:
    """The field violations of a rich gRPC error as "field: description" lines."""
    return [_violation_text(field, description) for field, description in _violations(error)]


def _violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    try:
        return [(v.field, v.description) for v in violations_of(error)]
    except Exception:
        return []


def _violation_text(field: str, description: str) -> str:
    name = field.removeprefix("parameters.")
    if not name:
        return description
    if name != field or not any(sep in name for sep in "/.:"):
        return f"parameter {name!r}: {description}"
    return f"{field}: {description}"


def error_from_rpc(error: grpc.RpcError, address: str, what: str = "", subject: str = "") -> CliError:
    """A CliError naming what failed (``what``, unless the server's message already names the
    ``subject``), the server's message and each violation it does not already state."""
    code = error.code() if hasattr(error, "code") else None
    details = (error.details() if hasattr(error, "details") else "") or ""
    found = _violations(error)
    lines = [_violation_text(f, d) for f, d in found]
    if code == grpc.StatusCode.UNAVAILABLE:
        message = _unavailable(address, details)
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"attune at {address} did not answer in time"
    else:
        message = details or (code.name.lower() if code else "request failed")
        unstated = [line for line, (_, d) in zip(lines, found, strict=True) if d not in message]
        if unstated:
            message = f"{message}: {'; '.join(unstated)}"
    if what and not (subject and subject in message):
        message = f"{what}: {message}"
    return CliError(message, violations=lines, code=code.name if code else FAILED)


def _unavailable(address: str, details: str) -> str:
    # A TLS mismatch also ends as UNAVAILABLE: say which, rather than "is it running?".
    if "handshake failed" in details.lower():
        reason = details.rsplit(":", 1)[-1].strip()
        return (
            f"TLS handshake with attune at {address} failed ({reason}); "
            "does ATTUNE_TLS_DIR (or ATTUNE_TLS_CA) hold the CA that signed the server's certificate?"
        )
    if "socket closed" in details.lower():  # also what a TLS server does to a client it refuses
        return (
            f"attune at {address} closed the connection; if it runs with TLS, ATTUNE_TLS_DIR must name "
            "a folder from `attune tls init` holding its CA and a `cli` certificate that CA signed"
        )
    if details and not any(marker in details.lower() for marker in _TRANSPORT_FAILURES):
        # The scheduler answered, but cannot serve now (its database is away, it is shutting down).
        return f"attune at {address} is unavailable: {details}"
    return f"cannot reach attune at {address}; is `attune up` running?"


# What gRPC says when it found no server to talk to (as opposed to a server answering UNAVAILABLE).
_TRANSPORT_FAILURES = ("failed to connect", "connection refused", "backends failing", "dns resolution", "unreachable")


class Client:
    """Stubs of the scheduler's services over one channel; use as ``async with Client(...)``."""

    def __init__(self, address: str, settings: Settings | None = None, *, token: str | None = None) -> None:
        self.address = address
        self.settings = settings or Settings()
        # The bearer token goes on every call, only over TLS; UNAVAILABLE is retried (see open_channel).
        self.channel = open_channel(address, self.settings, token=token, retry_unavailable=True)
        self.executions = execution_pb2_grpc.ExecutionServiceStub(self.channel)
        self.registry = registry_pb2_grpc.RegistryServiceStub(self.channel)
        self.workflows = workflow_pb2_grpc.WorkflowServiceStub(self.channel)
        self.tokens = auth_pb2_grpc.TokenServiceStub(self.channel)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel."""
        await self.channel.close()

    def error(self, err: grpc.RpcError, what: str = "", subject: str = "") -> CliError:
        """The CliError for a failed call on this client; see :func:`error_from_rpc`."""
        return error_from_rpc(err, self.address, what, subject)
