"""Each task's state at a glance, computed from a workflow's task runs for the graph's nodes.

A task's summary is that of its latest run (the highest run number: a task on a cycle runs
again): the state of that run's last attempt, or for a `with_items` task the state of its items
together (running while any item is, else the worst ending), how many items have ended and how
many are known. `runs` counts its distinct runs, shown on the node of a cycle.

Items a task has not started yet (under `concurrency`) have no task run, so `items_total` counts
the items started so far: the highest index seen plus one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from attune.states import TERMINAL, ExecutionState

#: Which ending wins when the items of one run ended differently: the first in this order.
_WORST_FIRST = (
    ExecutionState.FAILED,
    ExecutionState.TIMEOUT,
    ExecutionState.ABANDONED,
    ExecutionState.CANCELLED,
    ExecutionState.SUCCEEDED,
)


@dataclass
class _TaskRuns:
    runs: set[int] = field(default_factory=set)
    latest_run: int = 0
    #: Of the latest run: each item's (attempt, state); item -1 for a task without items.
    items: dict[int, tuple[int, str]] = field(default_factory=dict)


def summarize(task_runs: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{task name: {"state", "runs", "items_done", "items_total"}} from task-run views
    (`views.task_run_view`)."""
    tasks: dict[str, _TaskRuns] = {}
    for run in task_runs:
        entry = tasks.setdefault(run["task_name"], _TaskRuns())
        number = int(run["run"])
        entry.runs.add(number)
        if number > entry.latest_run:
            entry.latest_run, entry.items = number, {}
        if number == entry.latest_run:
            item, attempt = int(run["item_index"]), int(run["attempt"])
            known = entry.items.get(item)
            if known is None or attempt >= known[0]:
                entry.items[item] = (attempt, run["state"])
    return {name: _summary(entry) for name, entry in tasks.items()}


def _summary(entry: _TaskRuns) -> dict[str, Any]:
    states = [state for _, state in entry.items.values()]
    with_items = any(item >= 0 for item in entry.items)
    done = sum(1 for state in states if state in TERMINAL)
    return {
        "state": _combined(states),
        "runs": len(entry.runs),
        "items_done": done if with_items else 0,
        "items_total": max(entry.items) + 1 if with_items else 0,
    }


def _combined(states: list[str]) -> str:
    """One state for the items of a run: the first that has not ended, else the worst ending."""
    active = [state for state in states if state not in TERMINAL]
    if active:
        return ExecutionState.RUNNING if ExecutionState.RUNNING in active else active[0]
    for state in _WORST_FIRST:
        if state in states:
            return state
    return states[0] if states else ExecutionState.REQUESTED
