"""The goals of docs/architecture.md (Performance goals) and the table of measured figures against them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from attune_services.cli.output import table


@dataclass(frozen=True)
class Goal:
    """A target: ``lower`` means smaller is better (a latency), else larger (a rate)."""

    value: float
    unit: str
    lower: bool


GOALS: dict[str, Goal] = {
    "noop_latency_ms_p50": Goal(5.0, "ms", lower=True),
    "noop_latency_ms_p99": Goal(5.0, "ms", lower=True),
    "noop_executions_per_s": Goal(2000.0, "/s", lower=False),
    "shell_overhead_ms": Goal(2.0, "ms", lower=True),
    "idle_rss_mb": Goal(100.0, "MB", lower=True),
    "fanout_1000_tasks_per_s": Goal(2000.0, "/s", lower=False),
    "chain_200_step_ms": Goal(5.0, "ms", lower=True),
    "engine_chain_10000_s": Goal(1.0, "s", lower=True),
    "engine_fanout_5000_s": Goal(1.0, "s", lower=True),
    "coordinator_rss_10000_workflows_mb": Goal(1024.0, "MB", lower=True),
    # attune bench history (services/bench/history.py), with 1,000,000 executions stored.
    "list_first_page_ms_p50": Goal(20.0, "ms", lower=True),
    "get_execution_ms_p50": Goal(5.0, "ms", lower=True),
    "noop_history_ratio": Goal(1.1, "x", lower=True),
    # attune bench cli (services/bench/cli_startup.py): spawning `attune …` to its first output.
    "cli_first_output_ms": Goal(150.0, "ms", lower=True),
    # attune bench logs (services/bench/logs.py): what live output costs.
    "one_line_cost_ms": Goal(2.0, "ms", lower=True),
    "noisy_latency_ratio": Goal(1.2, "x", lower=True),
    "noisy_throughput_ratio": Goal(1.2, "x", lower=True),
    "noisy_cpu_ratio": Goal(1.2, "x", lower=True),
}


def _rows_of(name: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):  # e.g. idle_rss_mb per service
        return [(f"{name}[{key}]", inner) for key, inner in value.items()]
    return [(name, value)]


def _goal_of(name: str) -> Goal | None:
    base = name.split("[", 1)[0]
    if base.startswith("fanout_") and base.endswith("_tasks_per_s"):
        base = "fanout_1000_tasks_per_s"  # the same per-task goal at any width
    elif base.startswith("chain_") and base.endswith("_step_ms"):
        base = "chain_200_step_ms"
    elif base.startswith("coordinator_rss_") and base.endswith("_workflows_mb"):
        base = "coordinator_rss_10000_workflows_mb"  # the same ceiling at any count
    elif base.startswith("cli_") and "_first_output_ms_" in base and not base.startswith("cli_python_bare"):
        base = "cli_first_output_ms"  # attune bench cli: every command, p50 and p95
    return GOALS.get(base)


def figures_table(figures: Mapping[str, Any]) -> str:
    """Each figure, its goal, the ratio value/goal and whether the goal is met."""
    rows: list[tuple[str, str, str, str, str]] = []
    for name, value in figures.items():
        for label, number in _rows_of(name, value):
            goal = _goal_of(label)
            if not isinstance(number, (int, float)) or isinstance(number, bool):
                rows.append((label, str(number), "", "", ""))
                continue
            if goal is None:
                rows.append((label, f"{number:,.3g}", "", "", ""))
                continue
            ratio = number / goal.value if goal.value else 0.0
            met = number <= goal.value if goal.lower else number >= goal.value
            goal_text = f"{'<=' if goal.lower else '>='} {goal.value:,g} {goal.unit}"
            rows.append((label, f"{number:,.2f} {goal.unit}", goal_text, f"{ratio:.2f}x", "yes" if met else "NO"))
    return table(("FIGURE", "MEASURED", "GOAL", "RATIO", "MET"), rows)
