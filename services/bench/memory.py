"""Idle memory of each service process (docs/architecture.md, Performance goals: under 100 MB RSS)."""

from __future__ import annotations

from collections.abc import Mapping

import psutil


def rss_mb(pids: Mapping[str, int]) -> dict[str, float]:
    """Resident set size in MB of each named process (its own pages, not its children's)."""
    figures: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            figures[name] = round(psutil.Process(pid).memory_info().rss / (1024 * 1024), 1)
        except psutil.Error as err:
            raise RuntimeError(f"cannot read the memory of {name} (pid {pid}): {err}") from err
    return figures
