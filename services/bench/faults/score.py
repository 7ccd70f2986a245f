"""The figures of one fault, from what the load asked for and what the database holds. Pure:
no I/O, so each rule is testable on its own.

- lost: a request the scheduler never took (retried through the fault and after), or one it took
  whose execution is not in the database.
- stuck: an execution not terminal by the deadline.
- wrong: one that ended other than its request expects (state and result), an abandoned one
  that was not on a killed worker included.
- abandoned: one abandoned on a killed worker, or a workflow that failed because a descendant
  was (allowed: nothing could finish that work).
- duplicate_task_runs: for each task run of every workflow (workflow, task, run, item,
  attempt), the child executions or task_runs rows beyond the first.
- duplicate_process_starts: starts logged by the logging action beyond the first per execution.
- recovery_s: from the dependency being back (restarted and SERVING, the database accepting
  connections; for a killed replica, the kill) until all work in flight then moved again: a
  top-level action's end was recorded, and every workflow in flight advanced (it or a workflow
  nested in it had a child requested, or its end was recorded). Queueing behind the load counts
  too: a workflow waits for a free worker slot for its next step even without a fault.
- recovery_p50_s: the same with the median workflow instead of the last.
  Both None when nothing was in flight, or something never moved again.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from attune.states import ExecutionState
from attune_services.bench.faults.load import Request
from attune_services.bench.faults.records import ExecutionRecord

INF = float("inf")
#: The figures of each fault and of the total, in this order.
FIGURES = (
    "lost",
    "stuck",
    "wrong",
    "duplicate_task_runs",
    "duplicate_process_starts",
    "recovery_s",
    "recovery_p50_s",
    str(ExecutionState.ABANDONED),  # the figure is the count of executions that ended so
)


@dataclass(frozen=True)
class FaultFigures:
    """One row of the benchmark's table."""

    fault: str
    lost: int
    stuck: int
    wrong: int
    duplicate_task_runs: int
    duplicate_process_starts: int
    recovery_s: float | None
    recovery_p50_s: float | None
    abandoned: int

    def as_json(self) -> dict[str, Any]:
        """The row as the JSON output carries it."""
        return asdict(self)


@dataclass(frozen=True)
class Observation:
    """Everything scored for one fault."""

    requests: Sequence[Request]
    ids: Mapping[str, str]  # request_id → execution id, for those the database holds
    records: Mapping[str, ExecutionRecord]  # the requested executions and their descendants
    task_run_rows: Mapping[tuple[Any, ...], int]  # rows per (workflow, task, run, item, attempt)
    starts: Counter[str]  # logged process starts per execution id
    killed_workers: Collection[str]  # worker ids SIGKILLed by this fault
    back_at: float  # Unix time the dependency was available again


def _descendants(records: Mapping[str, ExecutionRecord], root: str) -> list[ExecutionRecord]:
    children: dict[str, list[ExecutionRecord]] = {}
    for record in records.values():
        if record.parent_id:
            children.setdefault(record.parent_id, []).append(record)
    found: list[ExecutionRecord] = []
    frontier = [root]
    while frontier:
        below = [child for parent in frontier for child in children.get(parent, [])]
        found += below
        frontier = [child.id for child in below]
    return found


def _abandoned_on_killed(record: ExecutionRecord, below: Sequence[ExecutionRecord], killed: Collection[str]) -> bool:
    """Whether the execution ended because work on a killed worker was abandoned."""
    if record.state == ExecutionState.ABANDONED:
        return record.worker_id in killed
    lost_below = [child for child in below if child.state == ExecutionState.ABANDONED]
    return (
        record.state == ExecutionState.FAILED
        and bool(lost_below)
        and all(child.worker_id in killed for child in lost_below)
    )


def duplicate_task_runs(records: Mapping[str, ExecutionRecord], task_run_rows: Mapping[tuple[Any, ...], int]) -> int:
    """Per task run key, the larger of its child executions and its task_runs rows, less one."""
    children = Counter(record.task_key for record in records.values() if record.parent_id and record.task_name)
    keys = set(children) | set(task_run_rows)
    return sum(max(children.get(key, 0), task_run_rows.get(key, 0)) - 1 for key in keys)


def _ended_at(record: ExecutionRecord) -> float | None:
    """When its end was recorded: finished_at is the worker's clock, so an action that ended while
    the completion service was down carries a time from before the outage was over."""
    return record.updated_at if record.terminal else None


def _root_of(records: Mapping[str, ExecutionRecord]) -> dict[str, str]:
    """Each execution's top-level ancestor (itself for a top-level one)."""
    roots: dict[str, str] = {}
    for record in records.values():
        chain = [record]
        while chain[-1].parent_id and chain[-1].parent_id in records and chain[-1].id not in roots:
            chain.append(records[chain[-1].parent_id])
        top = roots.get(chain[-1].id, chain[-1].id)
        roots.update({link.id: top for link in chain})
    return roots


def workflow_waits(
    roots: Sequence[ExecutionRecord], records: Mapping[str, ExecutionRecord], back_at: float
) -> list[float]:
    """For each workflow in flight at `back_at`, seconds until it (or a workflow nested in it)
    first advanced after it, sorted; inf for one that never did."""
    root_of = _root_of(records)
    first: dict[str, float] = {}
    for record in records.values():
        if record.parent_id and record.created_at > back_at:
            top = root_of.get(record.id, record.id)
            first[top] = min(first.get(top, INF), record.created_at)
    waits: list[float] = []
    for root in roots:
        ended = _ended_at(root)
        if root.runner_type != "workflow" or root.created_at > back_at or (ended is not None and ended <= back_at):
            continue
        waits.append(min(first.get(root.id, INF), ended if ended is not None else INF) - back_at)
    return sorted(waits)


def _action_wait(roots: Sequence[ExecutionRecord], back_at: float) -> float | None:
    """Seconds from `back_at` until the first top-level action's end was recorded, when one was in
    flight then (inf when none ended after it)."""
    actions = [r for r in roots if r.runner_type != "workflow"]
    ends = [_ended_at(r) for r in actions]
    if not any(
        r.created_at <= back_at and (end is None or end > back_at) for r, end in zip(actions, ends, strict=True)
    ):
        return None
    later = [end for end in ends if end is not None and end > back_at]
    return min(later) - back_at if later else INF


def recovery(
    roots: Sequence[ExecutionRecord], records: Mapping[str, ExecutionRecord], back_at: float
) -> tuple[float | None, float | None]:
    """(recovery_s, recovery_p50_s): see the module docstring. None when nothing was in flight,
    or something never moved again."""
    action = _action_wait(roots, back_at)
    workflows = workflow_waits(roots, records, back_at)
    first = [] if action is None else [action]
    if not first and not workflows:
        return None, None
    worst = max([*first, *workflows])
    middle = max([*first, *([statistics.median(workflows)] if workflows else [])])

    def shown(value: float) -> float | None:
        return None if value == INF else round(value, 2)

    return shown(worst), shown(middle)


def score(fault: str, seen: Observation) -> FaultFigures:
    """The figures of `fault` from what was `seen`."""
    lost = stuck = wrong = abandoned = 0
    roots: list[ExecutionRecord] = []
    for request in seen.requests:
        execution_id = seen.ids.get(request.request_id)
        record = seen.records.get(execution_id) if execution_id else None
        if record is None:
            lost += 1
            continue
        roots.append(record)
        if not record.terminal:
            stuck += 1
        elif request.matches(record.id, record.state, record.result):
            continue
        elif _abandoned_on_killed(record, _descendants(seen.records, record.id), seen.killed_workers):
            abandoned += 1
        else:
            wrong += 1
    starts = sum(count - 1 for count in seen.starts.values() if count > 1)
    worst, middle = recovery(roots, seen.records, seen.back_at)
    return FaultFigures(
        fault=fault,
        lost=lost,
        stuck=stuck,
        wrong=wrong,
        duplicate_task_runs=duplicate_task_runs(seen.records, seen.task_run_rows),
        duplicate_process_starts=starts,
        recovery_s=worst,
        recovery_p50_s=middle,
        abandoned=abandoned,
    )


def total(rows: Sequence[FaultFigures]) -> dict[str, Any]:
    """Counts summed over the faults; recovery_s their worst, recovery_p50_s the median of theirs
    (None when no fault measured one)."""
    worst = [row.recovery_s for row in rows if row.recovery_s is not None]
    middle = [row.recovery_p50_s for row in rows if row.recovery_p50_s is not None]
    recoveries = {
        "recovery_s": max(worst) if worst else None,
        "recovery_p50_s": round(statistics.median(middle), 2) if middle else None,
    }
    return {name: recoveries[name] if name in recoveries else sum(getattr(r, name) for r in rows) for name in FIGURES}
