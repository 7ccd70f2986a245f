"""The periodic sweep: what the in-memory paths cannot see or must give up on.

- Recovery: rows in "scheduling" that are not waiting in memory (inserted before a restart or by
  another replica) are queued for dispatch or for the workflow hand-off.
- Schedule timeout: an execution whose runtime no connected worker offers is failed once it has
  waited `schedule_timeout`.
- Lost workers: executions of a worker whose stream ended (and that did not list them again in a
  new Hello) are abandoned after `worker_grace`.
- Cancels before dispatch whose CANCELLED result was not acknowledged are submitted again.
- Cancels of executions on a connected worker are sent to it again once they have stayed
  "canceling" for `worker_grace` (a cancel that overtook its assignment was ignored by the worker).
- The request log forgets responses older than `request_log_ttl` (one DELETE per sweep, through
  the index on created_at).

Every give-up goes to the completion service; until it acknowledges, the row keeps its state
and the next sweep tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from attune.background import BackgroundTask
from attune.config import Settings
from attune.logs import ThrottledLog
from attune.states import ExecutionState
from attune.storage import Database, log_failed_round
from attune.storage.schema import executions
from attune_services.scheduler.dispatch import Dispatcher
from attune_services.scheduler.giveups import GiveUp, ResultSubmitter
from attune_services.scheduler.request_log import RequestLog

log = logging.getLogger(__name__)
_failures = ThrottledLog(log)

SCAN_LIMIT = 5000


def sweep_interval(settings: Settings) -> float:
    """Often enough to honour the shortest of the timings it enforces."""
    return max(0.02, min(settings.heartbeat_interval, settings.schedule_timeout / 4, settings.worker_grace / 4))


class Sweeper:
    """Runs the sweep every `sweep_interval(settings)` seconds."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        dispatcher: Dispatcher,
        submitter: ResultSubmitter,
        enqueue_workflows: Callable[[Sequence[dict[str, Any]]], None],
        request_log: RequestLog,
    ) -> None:
        self._db = db
        self._request_log = request_log
        self._settings = settings
        self._dispatcher = dispatcher
        self._submitter = submitter
        self._enqueue_workflows = enqueue_workflows
        self._started_at = time.time()
        self._loop = BackgroundTask("sweep", self._run)

    def start(self) -> None:
        """Starts the periodic sweep (the first one runs at once: recovery after a restart)."""
        self._loop.start()

    async def stop(self) -> None:
        """Stops sweeping."""
        await self._loop.stop()

    async def _run(self) -> None:
        interval = sweep_interval(self._settings)
        while True:
            try:
                await self.sweep()
            except Exception as err:
                log_failed_round(_failures, "sweep", err)
            await asyncio.sleep(interval)

    async def sweep(self) -> None:
        """One pass of every check."""
        await self._recover_scheduling()
        await self._expire_unschedulable()
        await self._abandon_lost()
        await self._request_log.prune(older_than=time.time() - self._settings.request_log_ttl)

    async def _recover_scheduling(self) -> None:
        async with self._db.read() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(executions)
                        .where(executions.c.state == ExecutionState.SCHEDULING)
                        .order_by(executions.c.created_at)
                        .limit(SCAN_LIMIT)
                    )
                )
                .mappings()
                .all()
            )
        tasks = [dict(r) for r in rows if r["runner_type"] != "workflow" and not self._dispatcher.is_pending(r["id"])]
        workflows = [dict(r) for r in rows if r["runner_type"] == "workflow"]
        if tasks:
            self._dispatcher.enqueue(tasks)
        if workflows:
            self._enqueue_workflows(workflows)

    async def _expire_unschedulable(self) -> None:
        offered = self._dispatcher.offered_runtimes()
        available = ", ".join(sorted(offered)) or "none"
        deadline = time.time() - self._settings.schedule_timeout
        # Waiting counts from this process's start too: after a restart, workers need a moment
        # to reconnect before "no worker offers it" is true.
        expired = [
            p
            for p in self._dispatcher.waiting()
            if p.runtime not in offered and max(p.created_at, self._started_at) <= deadline
        ]
        if not expired:
            return
        give_ups = [
            GiveUp(
                p.id,
                ExecutionState.FAILED,
                f"no worker offers runtime {p.runtime!r} (available: {available})",
                p.traceparent,
            )
            for p in expired
        ]
        acked = await self._submitter.submit(give_ups)
        self._dispatcher.forget(acked)
        if acked:
            log.info("failed executions no worker can run", extra={"count": len(acked)})

    def _cancel_again(self, worker_id: str, rows: Sequence[Any], now: float) -> None:
        """Sends the cancel of each execution of a connected worker that has been `canceling` for
        `worker_grace` again. A worker ignores the cancel of an execution it does not hold yet, so
        a cancel that overtook its assignment would be lost; one that arrives twice is harmless
        (a run ends once)."""
        since = now - self._settings.worker_grace
        again = [
            r.id
            for r in rows
            if r.state == ExecutionState.CANCELING and r.updated_at < since and not self._dispatcher.is_pending(r.id)
        ]
        if again:
            self._dispatcher.send_cancellations(worker_id, again)

    async def _abandon_lost(self) -> None:
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        executions.c.id,
                        executions.c.worker_id,
                        executions.c.state,
                        executions.c.runner_type,
                        executions.c.traceparent,
                        executions.c.started_at,
                        executions.c.scheduled_at,
                        executions.c.updated_at,
                    )
                    .where(
                        executions.c.state.in_(
                            [ExecutionState.SCHEDULED, ExecutionState.RUNNING, ExecutionState.CANCELING]
                        )
                    )
                    # Only rows this sweep can act on: a running workflow has no worker, and
                    # 10,000 held workflows were read every sweep for nothing.
                    .where(sa.or_(executions.c.worker_id.is_not(None), executions.c.state == ExecutionState.CANCELING))
                )
            ).all()
        now = time.time()
        by_worker: dict[str, list[Any]] = defaultdict(list)
        give_ups: list[GiveUp] = []
        for row in rows:
            if row.worker_id:
                by_worker[row.worker_id].append(row)
            elif (
                row.state == ExecutionState.CANCELING
                and row.runner_type != "workflow"
                and not self._dispatcher.is_pending(row.id)
            ):
                give_ups.append(
                    GiveUp(
                        row.id, ExecutionState.CANCELLED, "cancelled before it was dispatched", row.traceparent or ""
                    )
                )
        for worker_id, held_rows in by_worker.items():
            session = self._dispatcher.sessions.get(worker_id)
            if session is not None:
                self._cancel_again(worker_id, held_rows, now)
                # A reconnected worker keeps what it listed in its Hello and whatever it was
                # assigned on its current stream (released slots are on their way to completion).
                held_rows = [
                    r for r in held_rows if r.id not in session.held and (r.scheduled_at or 0.0) < session.connected_at
                ]
                lost_at = self._dispatcher.lost_since.get(worker_id, session.connected_at)
            else:
                lost_at = self._dispatcher.lost_since.setdefault(worker_id, max(now, self._started_at))
            if held_rows and now - lost_at >= self._settings.worker_grace:
                give_ups += [
                    GiveUp(
                        r.id, ExecutionState.ABANDONED, f"worker {worker_id} lost", r.traceparent or "", r.started_at
                    )
                    for r in held_rows
                ]
        for worker_id in list(self._dispatcher.lost_since):
            if worker_id not in by_worker:
                del self._dispatcher.lost_since[worker_id]
        if give_ups:
            acked = await self._submitter.submit(give_ups)
            log.info("gave up on executions of lost workers", extra={"count": len(acked)})
