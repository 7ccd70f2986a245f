"""Entry-point helper for the service console scripts: logging, tracing, event loop, serve."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from attune import eventloop
from attune.config import ConfigError, Settings
from attune.grpcutil.gil import shorten_gil_switch_interval
from attune.grpcutil.server import ServiceApp, serve
from attune.logs import configure_logging
from attune.telemetry import configure_tracing, shutdown_tracing


def run_service_main(
    name: str,
    build: Callable[[Settings], ServiceApp],
    address_of: Callable[[Settings], str],
    *,
    use_uvloop: bool = True,
) -> None:
    """Configures the process and serves `build(settings)` until SIGTERM. Exits 2 on bad config."""
    try:
        # The service presents its own certificate (`<name>.pem` in ATTUNE_TLS_DIR) to its peers.
        settings = Settings.from_env().replace(identity=name)
    except ConfigError as err:
        print(f"attune-{name}: {err}", file=sys.stderr)
        sys.exit(2)
    configure_logging(
        name, level=settings.log_level, fmt=settings.log_format, repeat_interval=settings.log_repeat_interval
    )
    configure_tracing(name, trace_file=settings.trace_file)
    shorten_gil_switch_interval()
    address = settings.listen_address or address_of(settings)

    async def build_and_serve() -> None:
        # Built inside the running loop: grpc.aio channels opened by an app's constructor bind to
        # the loop current at creation, and a channel bound to another loop fails every call.
        await serve(build(settings), name=name, address=address, settings=settings)

    try:
        eventloop.run(build_and_serve(), use_uvloop=use_uvloop)
    except OSError as err:
        logging.getLogger(name).error("cannot start: %s", err)
        sys.exit(1)
    except ConfigError as err:  # TLS files missing, or plaintext asked for beyond loopback
        logging.getLogger(name).error("cannot start: %s", err)
        sys.exit(2)
    finally:
        shutdown_tracing()
    # A clean stop: the app has closed its servers, channels and database, and tracing is
    # flushed. Skip the interpreter's exit handlers: gRPC's wait ~2 s for its poller threads,
    # which would hold every stop (and `attune up`'s) for nothing.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
