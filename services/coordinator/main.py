"""Console script `attune-coordinator`."""

from __future__ import annotations

from attune.service_main import run_service_main
from attune_services.coordinator.app import CoordinatorApp


def main() -> None:
    """Serves the workflow-coordinator until SIGTERM."""
    run_service_main("coordinator", CoordinatorApp, lambda s: s.coordinator_address)
