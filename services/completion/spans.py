"""Execution spans: each execution's `attune.execution` span, written once it has ended.

The completion service writes every terminal state, so it is where an execution's life ends and
its span can be written (`attune.telemetry.record_execution_span`, with the ids fixed when the
execution was requested). After a batch of results is durable, the ids of the executions it left
terminal are queued here; a background loop reads their rows (stored state, error, times, task)
and writes the spans, off the path that acks results. Only a service that exports spans makes an
`ExecutionSpans`: with tracing off nothing here runs.

A result re-sent for an execution that has already ended (its sender did not see the ack: the
service stopped between the commit and the ack) writes the span again from the same row: the
same ids and times, so a span the stop lost is written then, and a copy is only a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import sqlalchemy as sa

from attune.background import BackgroundTask
from attune.logs import ThrottledLog
from attune.states import TERMINAL
from attune.storage import Database
from attune.storage.database import log_failed_round
from attune.storage.schema import executions
from attune.telemetry import EndedExecution, record_execution_span

log = logging.getLogger(__name__)
_failures = ThrottledLog(log)

#: Ids read per query.
READ_BATCH = 500
#: Ids waiting at most; beyond it the oldest are dropped (spans are telemetry, not state).
MAX_PENDING = 100_000

_columns = (
    executions.c.id,
    executions.c.traceparent,
    executions.c.action_ref,
    executions.c.state,
    executions.c.error,
    executions.c.created_at,
    executions.c.finished_at,
    executions.c.workflow_execution_id,
    executions.c.task_name,
    executions.c.task_run,
    executions.c.item_index,
    executions.c.attempt,
)


def ended_execution(m: sa.RowMapping) -> EndedExecution:
    """The span-making part of an ended execution's row."""
    return EndedExecution(
        execution_id=m["id"],
        traceparent=m["traceparent"] or "",
        action_ref=m["action_ref"],
        state=m["state"],
        error=m["error"] or "",
        created_at=m["created_at"],
        finished_at=m["finished_at"] or m["created_at"],
        workflow_execution_id=m["workflow_execution_id"] or "",
        task_name=m["task_name"] or "",
        task_run=m["task_run"],
        item_index=m["item_index"],
        attempt=m["attempt"],
    )


class ExecutionSpans:
    """Writes the execution spans of the executions `ended` names, in the background."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: dict[str, None] = {}  # insertion-ordered set
        self._wake = asyncio.Event()
        self._closing = False
        self._loop = BackgroundTask("execution spans", self._run)

    def ended(self, execution_ids: Iterable[str]) -> None:
        """Queues executions that are now in a terminal state (their results are durable)."""
        for execution_id in execution_ids:
            self._pending[execution_id] = None
        while len(self._pending) > MAX_PENDING:
            del self._pending[next(iter(self._pending))]
        if self._pending:
            if not self._loop.started and not self._closing:
                self._loop.start()
            self._wake.set()

    async def drain(self, grace: float = 5.0) -> None:
        """Writes what is queued (for up to `grace` seconds), then stops."""
        self._closing = True
        self._wake.set()
        await self._loop.stop(grace=grace)

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            ids = list(self._pending)[:READ_BATCH]
            try:
                await self._write(ids)
            except Exception as err:
                log_failed_round(_failures, "writing execution spans", err)
                if self._closing:
                    return
                await asyncio.sleep(1.0)
                continue
            for execution_id in ids:
                self._pending.pop(execution_id, None)

    async def _write(self, ids: list[str]) -> None:
        async with self._db.read() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(*_columns).where(executions.c.id.in_(ids), executions.c.state.in_(sorted(TERMINAL)))
                    )
                )
                .mappings()
                .all()
            )
        for row in rows:
            record_execution_span(ended_execution(row))
