"""Each task's state at a glance, computed from a workflow's task runs for the graph's nodes.

A task's summary is that of its latest run (the highest run number: a task on a cycle runs
again): the state of that run's last attempt, or for a `with_items` task the state of its items
together (running while any item is, else the worst ending), how many items have ended and how
many are known. `runs` counts its distinct runs, shown on the node of a cycle.

Items a task has not started yet (under `concurrency`) have no task run: `items_total` is the
count GetWorkflowRun gives for a run not yet ended (WorkflowRun.items), else the items started
(the highest index seen plus one); a run with items still to start is running.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def summarize(
    task_runs: Iterable[dict[str, Any]], item_counts: Mapping[tuple[str, int], int] | None = None
) -> dict[str, dict[str, Any]]:
    """{task name: {"state", "runs", "items_done", "items_total"}} from task-run views
    (`views.task_run_view`) and the item counts of the with_items runs not yet ended, by (task, run)."""
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
    counts = item_counts or {}
    return {name: _summary(entry, counts.get((name, entry.latest_run), 0)) for name, entry in tasks.items()}


def _summary(entry: _TaskRuns, count: int) -> dict[str, Any]:
    states = [state for _, state in entry.items.values()]
    with_items = any(item >= 0 for item in entry.items)
    done = sum(1 for state in states if state in TERMINAL)
    total = max(max(entry.items) + 1, count) if with_items else 0
    state = _combined(states)
    if with_items and done < total and state in TERMINAL and state == ExecutionState.SUCCEEDED:
        state = ExecutionState.RUNNING  # items still to start under `concurrency`
    return {
        "state": state,
        "runs": len(entry.runs),
        "items_done": done if with_items else 0,
        "items_total": total,
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
