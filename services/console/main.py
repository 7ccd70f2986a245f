"""Entry point of `python -m attune_services.console` (`attune up` starts it with the services)."""

from __future__ import annotations

import logging
import os
import sys

from attune import eventloop
from attune.config import ConfigError, Settings
from attune.logs import configure_logging
from attune_services.console.app import serve
from attune_services.console.settings import ConsoleSettings


def main() -> None:
    """Reads the settings, serves until SIGTERM; exits 2 on a bad setting, 1 when it cannot listen."""
    try:
        # A client of the scheduler like the CLI: it presents the `cli` certificate under TLS.
        settings = ConsoleSettings.from_settings(Settings.from_env().replace(identity="cli"))
    except ConfigError as err:
        print(f"attune-console: {err}", file=sys.stderr)
        sys.exit(2)
    client = settings.client
    configure_logging(
        "console", level=client.log_level, fmt=client.log_format, repeat_interval=client.log_repeat_interval
    )
    try:
        eventloop.run(serve(settings))
    except OSError as err:
        logging.getLogger("console").error("cannot start: %s", err)
        sys.exit(1)
    except ConfigError as err:  # TLS files missing
        logging.getLogger("console").error("cannot start: %s", err)
        sys.exit(2)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's exit handlers: gRPC's wait ~2 s for its poller threads.
    os._exit(0)
