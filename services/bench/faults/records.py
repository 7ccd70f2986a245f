"""What the database holds about one fault's load: each execution the load asked for with every
descendant, and the workflows' task runs. Read straight from the tables (the benchmark knows the
database URL), so the figures do not depend on the services' API under fault."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from attune.states import TERMINAL
from attune.storage.database import Database
from attune.storage.schema import executions, task_runs

#: Ids per IN (...) list.
_CHUNK = 500


@dataclass(frozen=True)
class ExecutionRecord:
    """One executions row, as the benchmark scores it."""

    id: str
    parent_id: str | None
    action_ref: str
    runner_type: str
    state: str
    result: dict[str, Any] | None
    error: str | None
    worker_id: str | None
    task_name: str | None
    task_run: int | None
    item_index: int | None
    attempt: int | None
    created_at: float
    finished_at: float | None  # the worker's clock: when the action ended
    updated_at: float  # the database's last write; for an ended execution, when its end was recorded

    @property
    def terminal(self) -> bool:
        """Whether it has ended."""
        return self.state in TERMINAL

    @property
    def task_key(self) -> tuple[Any, ...]:
        """The task run a workflow child carries out: the same key twice is a duplicate."""
        return (self.parent_id, self.task_name, self.task_run, self.item_index, self.attempt)


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _record(row: Any) -> ExecutionRecord:
    result = None
    if row.result:
        try:
            loaded = json.loads(row.result)
            result = loaded if isinstance(loaded, dict) else {"value": loaded}
        except ValueError:
            result = None
    return ExecutionRecord(
        id=row.id,
        parent_id=row.parent_id,
        action_ref=row.action_ref,
        runner_type=row.runner_type,
        state=row.state,
        result=result,
        error=row.error,
        worker_id=row.worker_id,
        task_name=row.task_name,
        task_run=row.task_run,
        item_index=row.item_index,
        attempt=row.attempt,
        created_at=row.created_at,
        finished_at=row.finished_at,
        updated_at=row.updated_at,
    )


_COLUMNS = [
    executions.c.id,
    executions.c.parent_id,
    executions.c.action_ref,
    executions.c.runner_type,
    executions.c.state,
    executions.c.result,
    executions.c.error,
    executions.c.worker_id,
    executions.c.task_name,
    executions.c.task_run,
    executions.c.item_index,
    executions.c.attempt,
    executions.c.created_at,
    executions.c.finished_at,
    executions.c.updated_at,
]


async def ids_of_requests(db: Database, request_ids: Iterable[str]) -> dict[str, str]:
    """request_id → execution id, for the requests the database holds an execution of."""
    found: dict[str, str] = {}
    async with db.read() as conn:
        for chunk in _chunks(sorted(request_ids)):
            query = sa.select(executions.c.request_id, executions.c.id).where(executions.c.request_id.in_(chunk))
            found.update({row.request_id: row.id for row in await conn.execute(query)})
    return found


async def unfinished(db: Database, ids: Iterable[str]) -> int:
    """How many of `ids` are in the database and not terminal yet."""
    count = 0
    async with db.read() as conn:
        for chunk in _chunks(sorted(ids)):
            query = sa.select(sa.func.count()).where(
                executions.c.id.in_(chunk), executions.c.state.not_in(sorted(TERMINAL))
            )
            count += int((await conn.execute(query)).scalar_one())
    return count


async def execution_trees(db: Database, root_ids: Iterable[str]) -> dict[str, ExecutionRecord]:
    """The rows of `root_ids` and of all their descendants (children, grandchildren, ...)."""
    records: dict[str, ExecutionRecord] = {}
    async with db.read() as conn:
        frontier = sorted(root_ids)
        column = executions.c.id
        while frontier:
            found: list[ExecutionRecord] = []
            for chunk in _chunks(frontier):
                rows = await conn.execute(sa.select(*_COLUMNS).where(column.in_(chunk)))
                found += [_record(row) for row in rows]
            new = [record for record in found if record.id not in records]
            records.update({record.id: record for record in new})
            frontier = sorted(record.id for record in new if record.runner_type == "workflow")
            column = executions.c.parent_id
    return records


async def task_run_counts(db: Database, workflow_ids: Iterable[str]) -> dict[tuple[Any, ...], int]:
    """How many task_runs rows each (workflow, task, run, item, attempt) of `workflow_ids` has."""
    counts: dict[tuple[Any, ...], int] = {}
    key = (task_runs.c.workflow_id, task_runs.c.task_name, task_runs.c.run, task_runs.c.item_index, task_runs.c.attempt)
    async with db.read() as conn:
        for chunk in _chunks(sorted(workflow_ids)):
            query = sa.select(*key, sa.func.count()).where(task_runs.c.workflow_id.in_(chunk)).group_by(*key)
            for row in await conn.execute(query):
                counts[tuple(row[:5])] = int(row[5])
    return counts
