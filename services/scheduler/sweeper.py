"""The periodic sweep: what the in-memory paths cannot see or must give up on.

- Recovery: rows in "scheduling" that are not waiting in memory (inserted before a restart or by
  another replica) are queued for dispatch or for the workflow hand-off; rows waiting in memory
  that another replica has dispatched since are dropped.
- Schedule timeout: an execution whose runtime no live worker offers (on any replica: the
  leases list their runtimes) is failed once it has waited `schedule_timeout`.
- Worker leases (leases.py): the leases of the workers connected here are renewed (one upsert);
  a stream whose worker has since connected to another replica is closed.
- Lost workers: executions of a worker whose lease has expired are abandoned, whichever replica
  it was connected to; so are those that a worker connected here neither listed in its Hello nor
  was assigned on its stream, once seen so for `worker_grace`. A worker connected to another
  replica is never lost to this one.
- Asks (`core.ask`) still pending past their timeout end `timeout` (asks.py).
- Workflows whose run the coordinator has paused or resumed since follow it: `pausing` → `paused`,
  nested workflows paused and resumed with their parent (pauses.py).
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
from collections.abc import Callable, Collection, Sequence
from typing import Any

import sqlalchemy as sa

from attune.background import BackgroundTask
from attune.config import Settings
from attune.logs import ThrottledLog
from attune.states import ExecutionState
from attune.storage import Database, log_failed_round
from attune.storage.schema import executions
from attune_services.scheduler.asks import Answers
from attune_services.scheduler.dispatch import Dispatcher
from attune_services.scheduler.giveups import GiveUp, ResultSubmitter
from attune_services.scheduler.leases import WorkerLease, WorkerLeases
from attune_services.scheduler.pauses import follow_pauses
from attune_services.scheduler.request_log import RequestLog

log = logging.getLogger(__name__)
_failures = ThrottledLog(log)

SCAN_LIMIT = 5000
#: Rows younger than this may be committed after a scan that missed them: a scan forgets none
#: (one forgotten too early waits for the next sweep's recovery, no more).
RECENT_S = 1.0


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
        leases: WorkerLeases,
        scheduler_id: str,
    ) -> None:
        self._db = db
        self._answers = Answers(db=db, submitter=submitter)
        self._leases = leases
        self._scheduler_id = scheduler_id
        self._request_log = request_log
        self._settings = settings
        self._dispatcher = dispatcher
        self._submitter = submitter
        self._enqueue_workflows = enqueue_workflows
        self._started_at = time.time()
        # Since when this replica has renewed its workers' leases without a lapse: after a
        # database outage every lease looks expired until their replicas renew them again.
        self._steady_since = self._started_at
        # Rows naming a worker connected here that it neither listed nor was assigned on its
        # stream, and since when: abandoned after the grace.
        self._unknown_since: dict[str, float] = {}
        self._renewed_at = self._started_at
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
        leases = await self._renew_leases()
        await self._recover_scheduling()
        await self._expire_unschedulable(leases)
        await self._abandon_lost(leases)
        await self._answers.expire()  # asks past their timeout (asks.py)
        await follow_pauses(self._db)  # workflows the coordinator has paused or resumed since (pauses.py)
        await self._request_log.prune(older_than=time.time() - self._settings.request_log_ttl)

    async def _renew_leases(self) -> dict[str, WorkerLease]:
        """Renews the leases of the workers whose stream is open here (gRPC keepalive ends the
        stream of a worker that stopped answering), closes the streams of workers that have
        connected to another replica since; returns every lease."""
        live = [s for s in self._dispatcher.sessions.values() if not s.closed]
        held = await self._leases.renew(live)
        now = time.time()
        if now - self._renewed_at > self._settings.worker_grace:
            self._steady_since = now  # our own leases lapsed: so may everyone's have
        self._renewed_at = now
        for session in live:
            if session.worker_id not in held:
                log.info(
                    "worker connected to another scheduler; closing its old stream",
                    extra={"worker_id": session.worker_id},
                )
                session.close()
        return await self._leases.read()

    async def _recover_scheduling(self) -> None:
        scanned_at = time.time()
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
        if len(rows) < SCAN_LIMIT:
            self._forget_taken(scanned_at, {r["id"] for r in rows})
        tasks = [dict(r) for r in rows if r["runner_type"] != "workflow" and not self._dispatcher.is_pending(r["id"])]
        workflows = [dict(r) for r in rows if r["runner_type"] == "workflow"]
        if tasks:
            self._dispatcher.enqueue(tasks)
        if workflows:
            self._enqueue_workflows(workflows)

    def _forget_taken(self, scanned_at: float, scheduling: set[str]) -> None:
        """Drops waiting rows that are no longer "scheduling": another replica dispatched them
        (or gave up on them). A replica with no worker for them would otherwise keep them."""
        settled = scanned_at - RECENT_S  # a younger row may have committed after the scan
        gone = [p.id for p in self._dispatcher.waiting() if p.created_at < settled and p.id not in scheduling]
        if gone:
            self._dispatcher.forget(gone)

    async def _expire_unschedulable(self, leases: dict[str, WorkerLease]) -> None:
        now = time.time()
        offered = self._dispatcher.offered_runtimes().union(
            *(lease.runtimes for lease in leases.values() if lease.alive(now))
        )
        available = ", ".join(sorted(offered)) or "none"
        deadline = now - self._settings.schedule_timeout
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

    def _lost_rows(
        self, worker_id: str, rows: list[Any], lease: WorkerLease | None, now: float, unknown_since: dict[str, float]
    ) -> list[Any]:
        """The rows of `worker_id` to abandon now (`unknown_since` collects this sweep's unknown rows).

        - Its stream is here and its lease ours (or not taken yet): what it neither listed in its
          Hello nor was assigned on this stream (lost with an earlier stream, or sent by another
          replica down a stale one), once seen so for `worker_grace`. Ours even if this replica was
          too slow to renew the lease in time: it knows.
        - It has a lease: nothing while the lease is alive, wherever the worker is connected; all
          once it has expired — and this replica has renewed leases without a lapse for the grace:
          after a restart of the only scheduler, or a database outage, every lease looks expired
          until the replicas holding the workers have renewed them.
        - No lease (the row predates leases): all, `worker_grace` after this replica noticed.
        """
        grace = self._settings.worker_grace
        session = self._dispatcher.sessions.get(worker_id)
        if session is not None and (lease is None or lease.scheduler_id == self._scheduler_id):
            self._cancel_again(worker_id, rows, now)
            # A released one is on its way to a terminal state, and one being assigned is about to
            # be sent: the grace lets both settle.
            unknown = [r for r in rows if r.id not in session.held and r.id not in session.assigned]
            for row in unknown:
                unknown_since[row.id] = self._unknown_since.get(row.id, now)
            return [r for r in unknown if now - unknown_since[r.id] >= grace]
        if lease is not None:
            return rows if not lease.alive(now) and now - self._steady_since >= grace else []
        lost_at = self._dispatcher.lost_since.setdefault(worker_id, max(now, self._started_at))
        return rows if now - lost_at >= grace else []

    async def _forget_leases(self, leases: dict[str, WorkerLease], busy: Collection[str], now: float) -> None:
        """Deletes the leases of workers that expired a grace period ago and hold nothing."""
        since = now - self._settings.worker_grace
        gone = [w for w, lease in leases.items() if lease.expires_at < since and w not in busy]
        await self._leases.forget(gone, expired_before=since)

    async def _abandon_lost(self, leases: dict[str, WorkerLease]) -> None:
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
        unknown_since: dict[str, float] = {}  # this sweep's, replacing the last one's
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
            lost = self._lost_rows(worker_id, held_rows, leases.get(worker_id), now, unknown_since)
            give_ups += [
                GiveUp(r.id, ExecutionState.ABANDONED, f"worker {worker_id} lost", r.traceparent or "", r.started_at)
                for r in lost
            ]
        self._unknown_since = unknown_since
        for worker_id in list(self._dispatcher.lost_since):
            if worker_id not in by_worker:
                del self._dispatcher.lost_since[worker_id]
        await self._forget_leases(leases, by_worker, now)
        if give_ups:
            acked = await self._submitter.submit(give_ups)
            log.info("gave up on executions of lost workers", extra={"count": len(acked)})
