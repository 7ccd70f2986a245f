"""Reading workflow runs for GetWorkflowRun / ListWorkflowRuns: rows to `WorkflowRun` messages."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from attune.engine import ITEM_RUN_PREFIX, item_counts
from attune.grpcutil.convert import execution_state_to_proto, struct_from_dict, timestamp, workflow_state_to_proto
from attune.storage.schema import task_runs, workflow_executions, workflow_state_entries
from attune.workflow.v1 import workflow_pb2

#: Runs in a page when the request names no page_size; ATTUNE_MAX_PAGE_SIZE caps the page.
DEFAULT_PAGE_SIZE = 50

_RUN_COLUMNS = (
    workflow_executions.c.id,
    workflow_executions.c.action_ref,
    workflow_executions.c.status,
    workflow_executions.c.result,
    workflow_executions.c.error,
    workflow_executions.c.created_at,
    workflow_executions.c.finished_at,
)


def _run_message(row: Any) -> workflow_pb2.WorkflowRun:
    result = json.loads(row.result) if row.result else None
    return workflow_pb2.WorkflowRun(
        execution_id=row.id,
        action_ref=row.action_ref,
        state=workflow_state_to_proto(row.status),
        result=struct_from_dict(result) if isinstance(result, dict) else None,
        error=row.error or "",
        created_at=timestamp(row.created_at),
        finished_at=timestamp(row.finished_at),
    )


def _task_run_message(row: Any) -> workflow_pb2.TaskRun:
    return workflow_pb2.TaskRun(
        task_name=row.task_name,
        run=row.run,
        item_index=-1 if row.item_index is None else row.item_index,
        attempt=row.attempt,
        state=execution_state_to_proto(row.state),
        child_execution_id=row.child_execution_id or "",
        started_at=timestamp(row.started_at),
        finished_at=timestamp(row.finished_at),
        action_ref=row.action_ref,
    )


async def get_run(conn: AsyncConnection, workflow_id: str) -> workflow_pb2.WorkflowRun | None:
    """A workflow run with its task runs in the order they were started; None when unknown."""
    row = (await conn.execute(sa.select(*_RUN_COLUMNS).where(workflow_executions.c.id == workflow_id))).first()
    if row is None:
        return None
    run = _run_message(row)
    tr = task_runs
    rows = await conn.execute(
        sa.select(
            tr.c.task_name,
            tr.c.run,
            tr.c.item_index,
            tr.c.attempt,
            tr.c.state,
            tr.c.child_execution_id,
            tr.c.started_at,
            tr.c.finished_at,
            tr.c.action_ref,
        )
        .where(tr.c.workflow_id == workflow_id)
        .order_by(tr.c.seq)
    )
    run.task_runs.extend(_task_run_message(r) for r in rows)
    e = workflow_state_entries
    progress = await conn.execute(
        sa.select(e.c.key, e.c.value).where(e.c.workflow_id == workflow_id, e.c.key.startswith(ITEM_RUN_PREFIX))
    )
    counts = item_counts({row.key: json.loads(row.value) for row in progress})
    run.items.extend(
        workflow_pb2.TaskItems(task_name=task, run=number, count=count)
        for (task, number), count in sorted(counts.items())
    )
    return run


async def list_runs(
    conn: AsyncConnection, *, status: str, page_size: int, page_token: str, max_page_size: int
) -> tuple[list[workflow_pb2.WorkflowRun], str]:
    """Runs newest first (ids are time-ordered), without task runs; the token is the last id seen
    (the scheduler wraps it in its opaque page token, `attune_services.scheduler.pages`). A page
    holds `page_size` runs (DEFAULT_PAGE_SIZE for 0), at most `max_page_size`
    (ATTUNE_MAX_PAGE_SIZE, which the request guard holds page_size to as well)."""
    size = min(page_size or DEFAULT_PAGE_SIZE, max_page_size)
    we = workflow_executions
    query = sa.select(*_RUN_COLUMNS).order_by(we.c.id.desc()).limit(size + 1)
    if status:
        query = query.where(we.c.status == status)
    if page_token:
        query = query.where(we.c.id < page_token)
    rows = (await conn.execute(query)).all()
    token = rows[size - 1].id if len(rows) > size else ""
    return [_run_message(r) for r in rows[:size]], token
