"""The console's one channel to the scheduler and how each call carries the user's token.

The channel presents the client (`cli`) certificate under TLS, like the CLI; it carries no token
of its own. Each call sends the token of the request being served as bearer metadata, so the
scheduler authorizes the user, not the console. With TLS off the platform checks no token, and
a token must not cross the network in the clear, so none is sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import TypeVar

import grpc

from attune.auth.v1 import auth_pb2, auth_pb2_grpc
from attune.execution.v1 import execution_pb2_grpc
from attune.grpcutil.channel import open_channel
from attune.registry.v1 import registry_pb2_grpc
from attune.security.tls import load_material
from attune.security.tokens import bearer_metadata
from attune.workflow.v1 import workflow_pb2_grpc
from attune_services.console.errors import from_rpc
from attune_services.console.sessions import Identity
from attune_services.console.settings import ConsoleSettings

#: Deadline of a unary call, in seconds (streams have none: they end with their execution).
CALL_TIMEOUT = 30.0

T = TypeVar("T")

Metadata = tuple[tuple[str, str], ...]

_ROLE_NAMES = {auth_pb2.ROLE_VIEWER: "viewer", auth_pb2.ROLE_OPERATOR: "operator", auth_pb2.ROLE_ADMIN: "admin"}


class Scheduler:
    """Typed stubs over the one channel, and the metadata a user's call carries."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self._secure = load_material(settings.client) is not None
        self.channel = open_channel(settings.scheduler_address, settings.client, retry_unavailable=True)
        self.registry = registry_pb2_grpc.RegistryServiceStub(self.channel)
        self.executions = execution_pb2_grpc.ExecutionServiceStub(self.channel)
        self.workflows = workflow_pb2_grpc.WorkflowServiceStub(self.channel)
        self.tokens = auth_pb2_grpc.TokenServiceStub(self.channel)

    def metadata(self, token: str | None) -> Metadata:
        """What a call on behalf of `token` carries: its bearer entry under TLS, else nothing."""
        return bearer_metadata(token) if token and self._secure else ()

    async def whoami(self, token: str | None) -> Identity:
        """Who `token` is (with authentication off: an admin without a name); ApiError
        UNAUTHENTICATED for a token the platform refuses."""
        reply = await call(self.tokens.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=self.metadata(token), timeout=10))
        return Identity(
            name=reply.name, role=_ROLE_NAMES.get(reply.role, "viewer"), auth_enabled=bool(reply.auth_enabled)
        )

    async def close(self) -> None:
        """Closes the channel (and every stream on it)."""
        await self.channel.close()


def new_request_id() -> str:
    """A fresh request_id for a mutating call: one the channel retries after UNAVAILABLE is
    carried out once (the scheduler answers a retried request_id with the original response)."""
    return "console-" + uuid.uuid4().hex


async def call(pending: Awaitable[T]) -> T:
    """Awaits a unary call; a gRPC failure becomes the API's error (`errors.from_rpc`)."""
    try:
        return await pending
    except grpc.RpcError as err:
        raise from_rpc(err) from err
