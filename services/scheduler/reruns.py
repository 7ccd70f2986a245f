"""Re-runs (RerunExecution): a new execution of an ended one's action and parameters, linked to it.

The scheduler checks what it can see in the executions table (the original has ended; each task
to re-run from has a child execution in the original, so it ran) and stores the new execution
with `rerun_of` and, for a workflow re-run from some tasks, `rerun_from`. The hand-off passes
those to the coordinator, which seeds the new workflow run from the original's state (the engine's
`start_from`). Idempotent through the request_id of the stored execution, as RequestExecution.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct
from attune.grpcutil.errors import FailedPrecondition, InvalidArgument, Violation, invalid_field, quoted
from attune.states import TERMINAL
from attune.storage import Database
from attune.storage.schema import executions
from attune_services.scheduler.execution_rows import execution_row
from attune_services.scheduler.requests import ExecutionRequests, RerunLink, Row

#: At most this many tasks to re-run from (and task inputs) in one request.
MAX_FROM_TASKS = 100
#: A task name longer than this cannot be one (task names are stored in a 255-wide column).
MAX_TASK_NAME = 255


class Reruns:
    """Checks and stores re-runs."""

    def __init__(self, db: Database, requests: ExecutionRequests) -> None:
        self._db = db
        self._requests = requests

    async def rerun(self, request: execution_pb2.RerunExecutionRequest) -> Row:
        """The new execution; raises NotFound / FailedPrecondition / InvalidArgument naming why."""
        if not request.id:
            raise invalid_field("id", "required")
        from_tasks = _checked_tasks(request.from_tasks)
        inputs = _checked_inputs(request.task_inputs, from_tasks)
        overrides = dict_from_struct(request.parameters, field="parameters")
        original = await self._original(request.id)
        if from_tasks:
            await self._check_tasks_ran(original, from_tasks)
        params = {**self._requests.opened_parameters(original), **overrides}
        spec = json.dumps({"tasks": from_tasks, "inputs": inputs}) if from_tasks else None
        return await self._requests.request(
            original["action_ref"],
            params,
            request_id=request.request_id,
            timeout=original["timeout"] or 0.0,
            rerun=RerunLink(original["id"], spec),
        )

    async def _original(self, execution_id: str) -> Row:
        row = await execution_row(self._db, execution_id)
        if row["state"] not in TERMINAL:
            raise FailedPrecondition(
                f"execution {row['id']} is {row['state']}: only an execution that has ended can be re-run"
            )
        return row

    async def _check_tasks_ran(self, original: Row, from_tasks: Sequence[str]) -> None:
        if original["runner_type"] != "workflow":
            raise invalid_field("from_tasks", f"{original['action_ref']} is not a workflow: it has no tasks")
        c = executions.c
        async with self._db.read() as conn:
            ran = set(
                (
                    await conn.execute(
                        sa.select(c.task_name)
                        .where(c.parent_id == original["id"], c.task_name.in_(from_tasks))
                        .distinct()
                    )
                ).scalars()
            )
        never = [name for name in from_tasks if name not in ran]
        if never:
            raise InvalidArgument(
                f"cannot re-run execution {original['id']} from {', '.join(map(quoted, never))}: never ran in it",
                [
                    Violation(f"from_tasks[{from_tasks.index(name)}]", "this task never ran in the original")
                    for name in never
                ],
            )


def _checked_tasks(names: Sequence[str]) -> list[str]:
    if len(names) > MAX_FROM_TASKS:
        raise invalid_field("from_tasks", f"{len(names)} tasks, more than the limit of {MAX_FROM_TASKS}")
    for i, name in enumerate(names):
        if not name or len(name) > MAX_TASK_NAME or "\0" in name:
            raise invalid_field(f"from_tasks[{i}]", f"not a task name (1 to {MAX_TASK_NAME} characters, no NUL)")
    return list(dict.fromkeys(names))


def _checked_inputs(inputs: Sequence[execution_pb2.TaskInput], from_tasks: Sequence[str]) -> dict[str, dict[str, Any]]:
    if len(inputs) > MAX_FROM_TASKS:
        raise invalid_field("task_inputs", f"{len(inputs)} entries, more than the limit of {MAX_FROM_TASKS}")
    merged: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(inputs):
        if entry.task not in from_tasks:
            raise invalid_field(
                f"task_inputs[{i}].task", f"{quoted(entry.task)} is not one of from_tasks: only those run again"
            )
        merged.setdefault(entry.task, {}).update(dict_from_struct(entry.input, field=f"task_inputs[{i}].input"))
    return merged


def rerun_spec(row: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The tasks and new inputs a stored re-run starts the workflow from (empty: from the start)."""
    text = row.get("rerun_from")
    if not text:
        return [], {}
    spec = json.loads(text)
    return list(spec.get("tasks", [])), dict(spec.get("inputs", {}))
