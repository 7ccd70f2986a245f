"""Console script `attune-completion`."""

from __future__ import annotations

from attune.service_main import run_service_main
from attune_services.completion.app import CompletionApp


def main() -> None:
    """Serves CompletionService on ATTUNE_COMPLETION_ADDRESS until SIGTERM."""
    run_service_main("completion", CompletionApp, lambda s: s.completion_address)
