"""The human output of ``attune bench faults``: one row per fault and the total."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attune_services.bench.faults.score import FIGURES
from attune_services.cli.output import table


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def faults_table(figures: Mapping[str, Any]) -> str:
    """FAULT and each figure; the total last; a line per skipped fault below."""
    rows = [[row["fault"], *(_cell(row[name]) for name in FIGURES)] for row in figures["faults"]]
    rows.append(["total", *(_cell(figures["total"][name]) for name in FIGURES)])
    text = table(("FAULT", *(name.upper() for name in FIGURES)), rows)
    for skip in figures.get("skipped", []):
        text += f"\nskipped {skip['fault']}: {skip['reason']}"
    for failure in figures.get("failed", []):
        text += f"\nFAILED {failure['fault']}: {failure['error']}"
    return text
