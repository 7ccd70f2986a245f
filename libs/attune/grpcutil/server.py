"""The one server bootstrap: grpc.aio server with reflection, health, TLS and graceful SIGTERM.

A service supplies a `ServiceApp`: it registers its servicers, starts its background loops and,
on shutdown, drains (finishes or hands back in-flight work) before the server stops. With TLS
configured the server presents the certificate of `settings.identity` and demands client
certificates as the app's `client_auth` says; without, it serves plaintext on loopback only
(`attune.security.tls`). Every handler is wrapped once, as services register it
(`attune.grpcutil.handlers`), in the authorization check (`attune.security.authz`, TLS on) and
inside it the request guard (`attune.grpcutil.request_guard`: safe decoding, the request limits,
the one error mapping); outside both, each call is counted by method and status code
(`attune.grpcutil.call_metrics`). With `settings.metrics_address` set, the server's process serves
its Prometheus metrics there (`attune.metrics`), started and stopped with the server.

Health tells the truth: SERVING only while the app is ready and, for an app with a database, while
that database is reachable and migrated to the code's revision — checked every
`settings.health_check_interval` (`attune.storage.readiness`); NOT_SERVING meanwhile, with the
reason in the log, and SERVING again by itself.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeAlias

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from attune.background import BackgroundTask
from attune.config import Settings
from attune.grpcutil.call_metrics import counted
from attune.grpcutil.channel import channel_options
from attune.grpcutil.handlers import Handler, WrapHandler, WrappingRegistrar
from attune.grpcutil.reflection import enable_reflection
from attune.grpcutil.request_guard import RequestGuard, RequestLimits
from attune.logs import ThrottledLog
from attune.metrics import MetricsEndpoint
from attune.security.authz import Authorization
from attune.security.tls import ClientAuth, check_plaintext_listen, load_material, server_credentials

log = logging.getLogger(__name__)
_unhealthy = ThrottledLog(log)

# The context a servicer method receives. Our servicers only abort, read metadata or check
# cancellation through it, never read() or write() messages, and mypy-protobuf's servicer bases
# give its (request, response) parameters differently for unary and streaming RPCs: both stay open.
RpcContext: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class ServiceApp(Protocol):
    """What a service plugs into the bootstrap.

    Optional attributes the bootstrap reads when present: `client_auth` (a `ClientAuth`, default
    REQUIRED: whether TLS clients must present a certificate), `wait_ready` (SERVING only once it
    returns), `drain_timeout` (overrides the shutdown grace for `drain`) and `db` (the app's
    `attune.storage.Database`: SERVING only while it is reachable and migrated).
    """

    #: Full names of the gRPC services it serves (for reflection and health).
    service_names: Sequence[str]
    # An app that accepts client bearer tokens (the scheduler) also has a `token_verifier`
    # (attune.security.authz.TokenVerifier); without one, only service certificates are accepted.

    def register(self, server: grpc.aio.Server) -> None:
        """Adds the servicers to the server."""

    async def start(self) -> None:
        """Starts background loops, once the server listens."""

    async def drain(self) -> None:
        """Stops taking new work and finishes or hands back what is in flight."""

    async def close(self) -> None:
        """Releases connections and pools."""


class ServerHandle:
    """A running server: its bound port, its health and a way to stop it."""

    def __init__(self, server: grpc.aio.Server, health: HealthServicer, port: int) -> None:
        self.server = server
        self.health = health
        self.port = port
        self.stopped = asyncio.Event()
        self.ready_task: asyncio.Task[None] | None = None
        self.database_watch: BackgroundTask | None = None
        # What health says is the conjunction of these (see `_publish_health`).
        self.ready = True
        self.database_problem: str | None = None
        self.stopping = False
        self.serving: int | None = None
        #: Serving GET /metrics when `settings.metrics_address` is set.
        self.metrics: MetricsEndpoint | None = None


# gRPC core cancels (status CANCELLED) calls that arrive while more than `max_pending_requests`
# (default 1,000) wait to be picked up by the asyncio server; a burst of a few thousand concurrent
# requests on one connection is ordinary here (docs/architecture.md, Performance goals), so they queue instead.
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.server.max_pending_requests", 20_000),
    ("grpc.server.max_pending_requests_hard_limit", 60_000),
    # gRPC sets SO_REUSEPORT by default, so a second process binding a port already in use
    # succeeds and the kernel splits the connections between the two (seen in CI: a test's
    # server on a port another process then also bound got "connection refused"). A service
    # whose port is taken now fails to start ("cannot listen on ...") instead.
    ("grpc.so_reuseport", 0),
]


async def start_server(app: ServiceApp, *, address: str, settings: Settings) -> ServerHandle:
    """Builds and starts the server on `address` (port 0 picks a free port).

    Raises TlsError when TLS is configured but its files are missing, InsecureListenError for
    plaintext on a non-loopback address without `settings.insecure`.
    """
    material = load_material(settings)
    if material is None:
        check_plaintext_listen(address, settings)
    # An app may receive larger messages than ATTUNE_MAX_MESSAGE_BYTES (the completion service:
    # a workflow's result, attune.results); it says so with `max_receive_bytes`.
    receive = getattr(app, "max_receive_bytes", None)
    options = [*channel_options(settings, max_receive_bytes=receive), *SERVER_OPTIONS, *metadata_options(settings)]
    server = grpc.aio.server(options=options)
    # Every handler registered (the app's, health's, reflection's) comes out wrapped: a
    # WrappingRegistrar is a grpc.aio.Server, so reflection picks its asyncio servicer.
    registrar = WrappingRegistrar(server, _handler_wrapping(app, settings, secure=material is not None))
    app.register(registrar)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, registrar)
    names = [*app.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    enable_reflection(names, registrar)  # v1 and v1alpha
    try:
        if material is None:
            port = server.add_insecure_port(address)
        else:
            client_auth = getattr(app, "client_auth", ClientAuth.REQUIRED)
            port = server.add_secure_port(address, server_credentials(material, client_auth))
    except RuntimeError as err:  # grpcio raises this when the bind fails (the port is taken)
        raise OSError(f"cannot listen on {address}: is another process using the port?") from err
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    await server.start()
    metrics = await _start_metrics(settings.metrics_address, server)
    await app.start()
    handle = ServerHandle(server, health, port)
    handle.metrics = metrics
    wait_ready = getattr(app, "wait_ready", None)
    db = getattr(app, "db", None)
    if db is not None:
        # Imported only by a service with a database: the worker does not load SQLAlchemy.
        from attune.storage.readiness import database_problem

        handle.database_problem = await database_problem(db)
        _log_database_problem(None, handle.database_problem)
        handle.database_watch = BackgroundTask(
            "database health", lambda: _watch_database(app, handle, db, settings.health_check_interval)
        )
        handle.database_watch.start()
    if wait_ready is not None:
        # SERVING only once the app can do its work (a worker: registered with the scheduler).
        handle.ready = False
        handle.ready_task = asyncio.create_task(_serve_when_ready(app, handle, wait_ready), name="ready")
    await _publish_health(app, handle)
    return handle


def _handler_wrapping(app: ServiceApp, settings: Settings, *, secure: bool) -> WrapHandler:
    """What each handler is wrapped in: the request guard, and outside it, when TLS is on, the
    authorization check, so a caller it refuses learns nothing about its request (plaintext is the
    unauthenticated mode, allowed on loopback only)."""
    guard = RequestGuard(RequestLimits.from_settings(settings))
    if not secure:
        return lambda method, handler: counted(method, guard.wrap(method, handler))
    authorization = Authorization(getattr(app, "token_verifier", None))

    def wrap(method: str, handler: Handler) -> Handler:
        return counted(method, authorization.wrap(method, guard.wrap(method, handler)))

    return wrap


async def _start_metrics(address: str, server: grpc.aio.Server) -> MetricsEndpoint | None:
    """The metrics endpoint on `address` (None when it is empty); when it cannot start, the gRPC
    server just started is stopped and the error raised."""
    if not address:
        return None
    endpoint = MetricsEndpoint()
    try:
        await endpoint.start(address)
    except BaseException:
        await server.stop(None)
        raise
    return endpoint


def metadata_options(settings: Settings) -> list[tuple[str, int]]:
    """The most metadata (headers) a server accepts with a request: a larger one is refused by
    gRPC with RESOURCE_EXHAUSTED. The soft limit equals the hard one, so the refusal is certain
    rather than random between the two."""
    return [
        ("grpc.max_metadata_size", settings.max_metadata_bytes),
        ("grpc.absolute_max_metadata_size", settings.max_metadata_bytes),
    ]


async def _publish_health(app: ServiceApp, handle: ServerHandle) -> None:
    serving = handle.ready and handle.database_problem is None and not handle.stopping
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    if status != handle.serving:
        handle.serving = status
        await _set_health(app, handle.health, status)


async def _set_health(app: ServiceApp, health: HealthServicer, status: int) -> None:
    for name in ["", *app.service_names]:
        await health.set(name, status)


async def _serve_when_ready(app: ServiceApp, handle: ServerHandle, wait_ready: Callable[[], Awaitable[None]]) -> None:
    await wait_ready()
    handle.ready = True
    await _publish_health(app, handle)


async def _watch_database(app: ServiceApp, handle: ServerHandle, db: Any, interval: float) -> None:
    """Checks the database every `interval` seconds; health follows what it finds."""
    from attune.storage.readiness import database_problem

    while True:
        await asyncio.sleep(interval)
        problem = await database_problem(db)
        _log_database_problem(handle.database_problem, problem)
        handle.database_problem = problem
        await _publish_health(app, handle)


def _log_database_problem(before: str | None, now: str | None) -> None:
    """Logs the turn to NOT_SERVING (or to another reason) and back at once; while the same
    reason lasts, one line per interval."""
    if now is None:
        if before is not None:
            log.info("SERVING again: the database is reachable and migrated")
    elif now != before:
        _unhealthy.warning("database problem", "NOT_SERVING: %s", now, force=True)
    else:
        _unhealthy.warning("database problem", "still NOT_SERVING: %s", now)


async def stop_server(app: ServiceApp, handle: ServerHandle, *, grace: float) -> None:
    """Graceful stop: health NOT_SERVING, drain in-flight work, then stop the server.

    Drain is bounded by `grace`, or by the app's own `drain_timeout` attribute when it has one
    (a worker lets its processes finish for the grace, then cancels and reports them).
    """
    if handle.ready_task is not None:
        handle.ready_task.cancel()
    if handle.database_watch is not None:
        await handle.database_watch.stop()
    handle.stopping = True
    await _publish_health(app, handle)
    drain_timeout = getattr(app, "drain_timeout", None) or grace
    try:
        await asyncio.wait_for(app.drain(), timeout=drain_timeout)
    except TimeoutError:
        log.warning("drain did not finish within %.1fs; in-flight work is handed back", drain_timeout)
    await handle.server.stop(grace=min(grace, 1.0))
    await app.close()
    if handle.metrics is not None:
        await handle.metrics.close()
    handle.stopped.set()


async def serve(app: ServiceApp, *, name: str, address: str, settings: Settings) -> None:
    """Runs a service until SIGTERM or SIGINT, then shuts down gracefully."""
    handle = await start_server(app, address=address, settings=settings)
    host = address.rsplit(":", 1)[0]
    log.info("serving", extra={"address": f"{host}:{handle.port}", "services": list(app.service_names)})
    if handle.metrics is not None:
        metrics_host = settings.metrics_address.rsplit(":", 1)[0]
        log.info("serving metrics", extra={"url": f"http://{metrics_host}:{handle.metrics.port}/metrics"})
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"service": name})
    await stop_server(app, handle, grace=settings.shutdown_grace)
    log.info("stopped", extra={"service": name})
