"""Console script `attune-worker`."""

from __future__ import annotations

from attune.service_main import run_service_main
from attune_services.worker.app import WorkerApp


def main() -> None:
    """Runs a worker until SIGTERM; its own server (health, reflection) listens on
    ATTUNE_WORKER_ADDRESS (a free port by default). asyncio's own loop: it spawns child
    processes several times faster than uvloop (see service_main)."""
    run_service_main("worker", WorkerApp, lambda s: s.worker_address, use_uvloop=False)
