"""The console's HTTP application: its middlewares, routes and static files, and how it runs.

Every response carries the security headers (a Content-Security-Policy allowing only the
console's own scripts and styles, no framing, no MIME sniffing); every failure becomes the API's
JSON error (`errors.py`); every /api/ request is authenticated (`auth.py`). `/` is the single
page (`static/index.html`), `/static/` its files, `/healthz` answers 200 while the process serves
(it does not call the scheduler: the console is up even while the platform is not).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web

from attune_services.console import appkeys
from attune_services.console.auth import Handler, auth_middleware
from attune_services.console.errors import ApiError, internal
from attune_services.console.events import routes as event_routes
from attune_services.console.graphs import GraphCache
from attune_services.console.routes_executions import routes as execution_routes
from attune_services.console.routes_registry import routes as registry_routes
from attune_services.console.routes_session import routes as session_routes
from attune_services.console.scheduler import Scheduler
from attune_services.console.sessions import SessionStore
from attune_services.console.settings import ConsoleSettings
from attune_services.console.streams import OpenStreams

log = logging.getLogger("console")

STATIC = Path(__file__).resolve().parent / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Adds the security headers to every response (errors included); API answers are not cached."""
    try:
        response = await handler(request)
    except web.HTTPException as err:
        _secure(request, err)
        raise
    _secure(request, response)
    return response


def _secure(request: web.Request, response: web.StreamResponse) -> None:
    if response.prepared:  # an event stream sent its headers already (it set its own)
        return
    response.headers.update(SECURITY_HEADERS)
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"
    elif request.path.startswith("/static/"):
        # Revalidated on each load (a 304 when unchanged): pages never mix modules of two releases.
        response.headers.setdefault("Cache-Control", "no-cache")


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answers every failure of an /api/ request as the API's JSON error, never a traceback."""
    try:
        return await handler(request)
    except ApiError as err:
        return err.response()
    except web.HTTPException as err:
        if not request.path.startswith("/api/") or err.status < 400:
            raise
        return _http_error(err).response()
    except asyncio.CancelledError:
        raise
    except Exception as err:
        return internal(err).response()


def _http_error(err: web.HTTPException) -> ApiError:
    """An aiohttp refusal (no such route, method not allowed, body too large) as the API's error."""
    if err.status == 404:
        return ApiError("NOT_FOUND", "no such API path")
    if err.status == 405:
        allowed = err.headers.get("Allow", "")
        return ApiError("INVALID_ARGUMENT", f"method not allowed on this path (allowed: {allowed})")
    if err.status == 413:
        return ApiError("INVALID_ARGUMENT", "the request body is too large")
    return ApiError("INVALID_ARGUMENT", err.reason)


async def index(request: web.Request) -> web.FileResponse:
    """The single page; the pages route by the URL's hash."""
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def healthz(request: web.Request) -> web.Response:
    """200 while the process serves (readiness of `attune up`, Kubernetes probes), with how many
    event streams are open (each holds one gRPC stream to the scheduler)."""
    return web.json_response({"status": "serving", "open_streams": len(request.app[appkeys.STREAMS])})


def build_app(settings: ConsoleSettings, scheduler: Scheduler) -> web.Application:
    """The application; `scheduler` is the channel its handlers call (closed by the caller)."""
    app = web.Application(
        middlewares=[security_headers, json_errors, auth_middleware], client_max_size=settings.max_body_bytes
    )
    app[appkeys.SETTINGS] = settings
    app[appkeys.SCHEDULER] = scheduler
    app[appkeys.SESSIONS] = SessionStore(ttl=settings.session_ttl, max_sessions=settings.max_sessions)
    app[appkeys.GRAPHS] = GraphCache()
    app[appkeys.STREAMS] = OpenStreams()
    app.add_routes(session_routes)
    app.add_routes(registry_routes)
    app.add_routes(execution_routes)
    app.add_routes(event_routes)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    app.on_shutdown.append(_close_streams)
    return app


async def _close_streams(app: web.Application) -> None:
    await app[appkeys.STREAMS].close_all()


async def serve(settings: ConsoleSettings) -> None:
    """Serves the console until SIGTERM or SIGINT, then stops: open event streams end at once."""
    scheduler = Scheduler(settings)
    runner = web.AppRunner(build_app(settings, scheduler), handler_cancellation=True, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, shutdown_timeout=2.0)
        try:
            await site.start()
        except OSError as err:
            raise OSError(
                f"cannot listen on {settings.host}:{settings.port} ({err.strerror or err}); choose another "
                "address with ATTUNE_CONSOLE_ADDRESS (attune up --console-port)"
            ) from err
        log.info("serving", extra={"url": f"http://{settings.host}:{settings.port}/"})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down", extra={"service": "console"})
    finally:
        await runner.cleanup()
        await scheduler.close()
    log.info("stopped", extra={"service": "console"})
