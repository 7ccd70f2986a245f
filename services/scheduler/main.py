"""Console script `attune-scheduler`."""

from __future__ import annotations

from attune.service_main import run_service_main
from attune_services.scheduler.app import SchedulerApp


def main() -> None:
    """Runs the scheduler until SIGTERM."""
    run_service_main("scheduler", SchedulerApp, lambda s: s.scheduler_address)
