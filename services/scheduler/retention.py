"""Retention: ended executions older than ATTUNE_RETENTION are deleted, in small batches.

What is purged is a *tree*: a top-level execution that was created and has ended before the
cutoff, and whose every descendant has ended too, together with all those descendants and
everything stored for them — the workflow rows, task runs, state entries and timers of each
workflow in it, any outcome still in the completion outbox, and their output (execution_logs). A
child is never purged on its own, so a running workflow's children stay, whatever their age.
(The request log holds no execution ids: it expires by ATTUNE_REQUEST_LOG_TTL.)

The purge is the one writer that deletes rows of every service's tables: it only touches rows of
executions that have ended, which no service writes any more.

Bounded work, so the hot path keeps its latency on both databases: candidates are read BATCH
rows at a time along the primary key (ids are time-ordered, so "created before the cutoff" is an
id range, read oldest first with a cursor that only moves forward); each transaction deletes at
most BATCH rows of one table; and the purge pauses PAUSE_S between transactions. The trees of
a batch of roots are deleted level by level, leaves first and roots last, so a purge interrupted
half-way is finished by the next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import sqlalchemy as sa

from attune.background import BackgroundTask
from attune.config import Settings
from attune.logs import ThrottledLog
from attune.states import TERMINAL
from attune.storage import Database, log_failed_round
from attune.storage.schema import (
    execution_logs,
    executions,
    outcome_outbox,
    task_runs,
    workflow_executions,
    workflow_state_entries,
    workflow_timers,
)
from attune_services.scheduler.history import ID_CLOCK_SLACK_S, id_bound

log = logging.getLogger(__name__)
_failures = ThrottledLog(log)

BATCH = 500
PAUSE_S = 0.02
_TERMINAL = sorted(TERMINAL)

#: A workflow's own rows, keyed by (workflow_id, the second column): deleted BATCH at a time.
_WORKFLOW_ROWS: tuple[tuple[sa.Table, sa.Column[str]], ...] = (
    (task_runs, task_runs.c.run_key),
    (workflow_state_entries, workflow_state_entries.c.key),
    (workflow_timers, workflow_timers.c.timer_id),
)


class Purger:
    """Deletes ended execution trees created before a cutoff (see the module docstring)."""

    def __init__(self, db: Database, *, batch: int = BATCH, pause: float = PAUSE_S) -> None:
        self._db = db
        self._batch = batch
        self._pause = pause

    async def purge(self, *, cutoff: float) -> int:
        """Purges every ended tree whose root was created and ended before `cutoff` (Unix
        seconds); returns how many executions were deleted."""
        purged = 0
        cursor = ""
        while roots := await self._roots(cutoff, after=cursor):
            cursor = roots[-1]
            levels, workflows = await self._ended_trees(roots)
            await self._delete_workflow_rows(workflows)
            for level in reversed(levels):  # leaves first, the roots last
                for chunk in _chunks(level, self._batch):
                    purged += await self._delete_executions(chunk)
        return purged

    async def _roots(self, cutoff: float, *, after: str) -> list[str]:
        """The next BATCH top-level executions created and ended before the cutoff, oldest first."""
        e = executions
        query = (
            sa.select(e.c.id)
            .where(
                e.c.id > after,
                e.c.id < id_bound(cutoff + ID_CLOCK_SLACK_S),
                e.c.created_at < cutoff,
                e.c.parent_id.is_(None),
                e.c.state.in_(_TERMINAL),
                sa.func.coalesce(e.c.finished_at, e.c.created_at) < cutoff,
            )
            .order_by(e.c.id)
            .limit(self._batch)
        )
        async with self._db.read() as conn:
            return list((await conn.execute(query)).scalars())

    async def _ended_trees(self, roots: list[str]) -> tuple[list[list[str]], list[str]]:
        """The executions of the trees of `roots` whose every execution has ended, level by level
        (the roots first), and the workflows among them. A tree with one execution not ended is
        left out whole."""
        root_of = {root: root for root in roots}
        levels: list[list[str]] = [list(roots)]
        workflows: list[str] = list(roots)  # a plain action has no workflow rows: deletes find none
        unfinished: set[str] = set()
        while levels[-1]:
            below: list[str] = []
            for chunk in _chunks(levels[-1], self._batch):
                query = sa.select(
                    executions.c.id, executions.c.parent_id, executions.c.state, executions.c.runner_type
                ).where(executions.c.parent_id.in_(chunk))
                async with self._db.read() as conn:
                    rows = (await conn.execute(query)).all()
                for row in rows:
                    root_of[row.id] = root_of[row.parent_id]
                    if row.state not in TERMINAL:
                        unfinished.add(root_of[row.id])  # still running somewhere below: it waits
                    below.append(row.id)
                    if row.runner_type == "workflow":
                        workflows.append(row.id)
            levels.append(below)
        keep = [[i for i in level if root_of[i] not in unfinished] for level in levels]
        return [level for level in keep if level], [w for w in workflows if root_of[w] not in unfinished]

    async def _delete_workflow_rows(self, workflow_ids: Sequence[str]) -> None:
        """Each workflow's task runs, state entries and timers, BATCH rows per transaction (one
        wide workflow alone may have 100,000 task runs)."""
        for chunk in _chunks(workflow_ids, self._batch):
            for table, key in _WORKFLOW_ROWS:
                owned = table.c.workflow_id.in_(chunk)
                page = sa.select(table.c.workflow_id, key).where(owned).limit(self._batch)
                while True:
                    async with self._db.write() as conn:
                        deleted = (
                            await conn.execute(table.delete().where(sa.tuple_(table.c.workflow_id, key).in_(page)))
                        ).rowcount
                    if not deleted:
                        break
                    await asyncio.sleep(self._pause)
                    if deleted < self._batch:
                        break

    async def _delete_executions(self, ids: Sequence[str]) -> int:
        async with self._db.write() as conn:
            await conn.execute(outcome_outbox.delete().where(outcome_outbox.c.execution_id.in_(ids)))
            await conn.execute(execution_logs.delete().where(execution_logs.c.execution_id.in_(ids)))
            await conn.execute(workflow_executions.delete().where(workflow_executions.c.id.in_(ids)))
            deleted = (await conn.execute(executions.delete().where(executions.c.id.in_(ids)))).rowcount
        await asyncio.sleep(self._pause)
        return int(deleted or 0)


def _chunks(ids: Sequence[str], size: int) -> list[Sequence[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


class Retention:
    """Purges, every ATTUNE_RETENTION_INTERVAL seconds, the trees created and ended more than
    ATTUNE_RETENTION ago (nothing with ATTUNE_RETENTION=0). Several scheduler replicas may purge at once: each delete
    finds what another has not deleted yet."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._keep = settings.retention_seconds  # ConfigError at start-up for a bad value
        self._interval = max(0.05, settings.retention_interval)
        self._purger = Purger(db)
        self._loop = BackgroundTask("retention", self._run)

    def start(self) -> None:
        """Starts purging (not at all when retention is 0)."""
        if self._keep > 0:
            self._loop.start()

    async def stop(self) -> None:
        """Stops at once: an unfinished tree is finished by the next purge."""
        await self._loop.stop()

    async def _run(self) -> None:
        while True:
            try:
                purged = await self._purger.purge(cutoff=time.time() - self._keep)
                if purged:
                    log.info("retention: purged %d executions", purged)
            except Exception as err:
                log_failed_round(_failures, "retention purge", err)
            await asyncio.sleep(self._interval)
