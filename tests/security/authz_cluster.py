"""Real services with TLS and authorization, in process, for the authorization tests.

The scheduler, the coordinator and the completion service are started with the one bootstrap
(`start_server`) on free loopback ports, each presenting its own certificate from a `tls_dir` made
by `attune.security.certificates`; the scheduler keeps the bootstrap admin token of
`admin_token_file`. `channel(identity, token)` opens what a caller with that certificate and token
would open, and `call()` makes any RPC by full name with an empty request, whatever its kind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool

from attune.config import Settings
from attune.grpcutil.channel import open_channel
from attune.grpcutil.server import start_server, stop_server
from attune_services.completion.app import CompletionApp
from attune_services.coordinator.app import CoordinatorApp
from attune_services.scheduler.app import SchedulerApp

TIMINGS: dict[str, Any] = {"heartbeat_interval": 0.1, "poll_interval": 0.02, "retry_interval": 0.05}
ADMIN_TOKEN = "attune_bootstrap-admin-token-for-tests"

#: Which service serves a method, by its service's package.
_SERVER_OF_PACKAGE = {
    "attune.internal.completion.v1": "completion",
    "attune.internal.workflow.v1": "coordinator",
}


def denied_codes() -> set[grpc.StatusCode]:
    """The codes that mean authorization refused a call."""
    return {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}


@dataclass
class SecureCluster:
    """The three services with TLS; addresses by service name."""

    settings: Settings
    addresses: dict[str, str]
    schedulers: list[SchedulerApp]
    _stops: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _channels: list[grpc.aio.Channel] = field(default_factory=list)

    def server_of(self, method: str) -> str:
        """The service that serves a full method name ("/pkg.Service/Method")."""
        package = method.strip("/").split("/")[0].rsplit(".", 1)[0]
        return _SERVER_OF_PACKAGE.get(package, "scheduler")

    def channel(self, server: str, *, identity: str = "cli", token: str | None = None) -> grpc.aio.Channel:
        """A channel to `server` presenting `identity`'s certificate and sending `token`."""
        settings = self.settings.replace(identity=identity)
        channel = open_channel(self.addresses[server], settings, token=token)
        self._channels.append(channel)
        return channel

    async def call(self, method: str, *, identity: str = "cli", token: str | None = None) -> grpc.StatusCode:
        """Calls `method` with an empty request; the status it ended with. A stream the server
        keeps open for 0.5 s was accepted (OK); a refusal arrives before any message."""
        channel = self.channel(self.server_of(method), identity=identity, token=token)
        # The generated modules are imported by the servers, so their methods are in the default pool.
        pool = descriptor_pool.Default()  # type: ignore[no-untyped-call]
        kind = pool.FindMethodByName(method.strip("/").replace("/", "."))
        try:
            if not kind.client_streaming and not kind.server_streaming:
                await channel.unary_unary(method, request_serializer=_raw, response_deserializer=_raw)(b"", timeout=5)
            elif not kind.client_streaming:
                await _first(
                    channel.unary_stream(method, request_serializer=_raw, response_deserializer=_raw)(b"", timeout=5)
                )
            else:
                gate = asyncio.Event()  # the request stream stays open, sending nothing

                async def requests() -> Any:
                    await gate.wait()
                    yield b""

                if kind.server_streaming:
                    await _first(
                        channel.stream_stream(method, request_serializer=_raw, response_deserializer=_raw)(
                            requests(), timeout=5
                        )
                    )
                else:
                    try:
                        await asyncio.wait_for(
                            channel.stream_unary(method, request_serializer=_raw, response_deserializer=_raw)(
                                requests(), timeout=5
                            ),
                            0.5,
                        )
                    except TimeoutError:
                        return grpc.StatusCode.OK
        except grpc.aio.AioRpcError as err:
            return err.code()
        return grpc.StatusCode.OK

    async def error(self, method: str, *, identity: str = "cli", token: str | None = None) -> grpc.aio.AioRpcError:
        """The error a unary `method` ends with (fails when it succeeds)."""
        channel = self.channel(self.server_of(method), identity=identity, token=token)
        try:
            await channel.unary_unary(method, request_serializer=_raw, response_deserializer=_raw)(b"", timeout=5)
        except grpc.aio.AioRpcError as err:
            return err
        raise AssertionError(f"{method} succeeded for {identity} with token {token!r}")

    async def add_scheduler(self) -> str:
        """Another scheduler replica on the same database; returns its address."""
        app = SchedulerApp(self.settings.replace(identity="scheduler"))
        handle = await start_server(app, address="127.0.0.1:0", settings=app.settings)
        self._stops.append(lambda: stop_server(app, handle, grace=0.5))
        self.schedulers.append(app)
        return f"127.0.0.1:{handle.port}"

    async def stop(self) -> None:
        """Closes the channels, then stops the servers, the scheduler first."""
        for channel in self._channels:
            await channel.close()
        for stop in reversed(self._stops):
            await asyncio.wait_for(stop(), timeout=15)


def _raw(message: bytes) -> bytes:
    return message  # requests go as the bytes given (b"": an empty message); responses are not read


async def _first(call: Any) -> None:
    try:
        await asyncio.wait_for(call.read(), 0.5)
    except TimeoutError:
        call.cancel()


async def start_secure_cluster(database_url: str, tls_dir: Path, tmp_path: Path) -> SecureCluster:
    """The coordinator, the completion service and a scheduler, with TLS and the admin token."""
    token_file = tmp_path / "admin.token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    base = Settings(database_url=database_url, tls_dir=str(tls_dir), admin_token_file=str(token_file), **TIMINGS)
    cluster = SecureCluster(settings=base, addresses={}, schedulers=[])

    async def serve(name: str, app: Any, settings: Settings) -> None:
        handle = await start_server(app, address="127.0.0.1:0", settings=settings)
        cluster._stops.append(lambda: stop_server(app, handle, grace=0.5))
        cluster.addresses[name] = f"127.0.0.1:{handle.port}"

    # Ports are known only once a server listens: the scheduler's address is fixed up front.
    completion = base.replace(identity="completion")
    await serve("completion", CompletionApp(completion), completion)
    coordinator = base.replace(identity="coordinator", completion_address=cluster.addresses["completion"])
    await serve("coordinator", CoordinatorApp(coordinator), coordinator)
    base = base.replace(
        completion_address=cluster.addresses["completion"], coordinator_address=cluster.addresses["coordinator"]
    )
    cluster.settings = base
    scheduler = SchedulerApp(base.replace(identity="scheduler"))
    await serve("scheduler", scheduler, scheduler.settings)
    cluster.schedulers.append(scheduler)
    return cluster
