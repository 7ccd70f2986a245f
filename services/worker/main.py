"""Console script `attune-worker`."""

from __future__ import annotations

import sys

from attune.config import ConfigError, Settings
from attune.service_main import run_service_main
from attune_services.worker.app import WorkerApp
from attune_services.worker.runtimes import action_user, containment_mode


def main() -> None:
    """Runs a worker until SIGTERM; its own server (health, reflection) listens on
    ATTUNE_WORKER_ADDRESS (a free port by default). asyncio's own loop: it spawns child
    processes several times faster than uvloop (see service_main)."""
    try:
        settings = Settings.from_env()
        action_user(settings.action_user)  # a bad ATTUNE_ACTION_USER stops us here, like any setting
        containment_mode(settings.worker_containment)
    except ConfigError as err:
        print(f"attune-worker: {err}", file=sys.stderr)
        sys.exit(2)
    run_service_main("worker", WorkerApp, lambda s: s.worker_address, use_uvloop=False)
