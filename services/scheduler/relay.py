"""What reaches this scheduler replica only through the database: cancels of the workers
connected here, and rows waiting for a runtime its workers have room for.

CancelExecution may arrive at any replica; the one that moves the row to `canceling` tells the
worker at once when it holds the worker's stream (cancel.py). Otherwise the row is all there is:
each round reads the `canceling` rows of the workers connected here and sends the cancels not
sent down their streams yet (a cancel that arrives twice is harmless: a run ends once).

Likewise a request may land on a replica with no worker that can take it: the row waits in
`scheduling`. Each round a replica whose workers have room for a runtime (and nothing of it
waiting here) takes the oldest such rows that waited longer than a round, and dispatches them as
its own; the compare-and-set of the claim settles a race with their first replica. The sweep
would find them too, but only every heartbeat interval.

Both reads go through the index that `state` leads (ids are time-ordered: the oldest waiting
rows are the first in it) and find few rows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

import sqlalchemy as sa

from attune.background import BackgroundTask
from attune.logs import ThrottledLog
from attune.states import ExecutionState
from attune.storage import Database, log_failed_round
from attune.storage.schema import executions
from attune_services.scheduler.dispatch import Dispatcher

log = logging.getLogger(__name__)
_failures = ThrottledLog(log)

#: The longest a cancel or a waiting row written by another replica waits for this one.
MAX_RELAY_INTERVAL = 0.5
#: Waiting rows taken per round.
TAKE_LIMIT = 100


class ReplicaRelay:
    """Polls every `interval` seconds (at most MAX_RELAY_INTERVAL) while workers are connected here."""

    def __init__(self, *, db: Database, dispatcher: Dispatcher, interval: float) -> None:
        self._db = db
        self._dispatcher = dispatcher
        self._interval = min(interval, MAX_RELAY_INTERVAL)
        self._loop = BackgroundTask("replica-relay", self._run)

    def start(self) -> None:
        """Starts polling."""
        self._loop.start()

    async def stop(self) -> None:
        """Stops polling."""
        await self._loop.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self.relay_cancels()
                await self.take_waiting()
            except Exception as err:
                log_failed_round(_failures, "replica relay", err)
            await asyncio.sleep(self._interval)

    async def relay_cancels(self) -> None:
        """Sends every cancel of a worker connected here that its stream has not carried."""
        sessions = {w: s for w, s in self._dispatcher.sessions.items() if not s.closed}
        if not sessions:
            return
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(executions.c.id, executions.c.worker_id).where(
                        executions.c.state == ExecutionState.CANCELING, executions.c.worker_id.in_(list(sessions))
                    )
                )
            ).all()
        canceling: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            canceling[row.worker_id].add(row.id)
        for worker_id, ids in canceling.items():
            session = sessions[worker_id]
            # One still being assigned waits: its cancel must not overtake its Assignment.
            new = sorted(e for e in ids - session.cancels_sent if not self._dispatcher.is_pending(e))
            if new:
                log.info("relaying cancels", extra={"worker_id": worker_id, "count": len(new)})
                self._dispatcher.send_cancellations(worker_id, new)

    async def take_waiting(self) -> None:
        """Queues here the oldest rows that wait for a runtime this replica's workers have room for."""
        # Workflows go to the coordinator (the hand-off), whatever a worker claims to run.
        runtimes = self._dispatcher.runtimes_with_room() - {"workflow"}
        if not runtimes:
            return
        async with self._db.read() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(executions)
                        .where(
                            executions.c.state == ExecutionState.SCHEDULING,
                            executions.c.created_at < time.time() - self._interval,
                            executions.c.runner_type.in_(sorted(runtimes)),
                        )
                        .order_by(executions.c.id)
                        .limit(TAKE_LIMIT)
                    )
                )
                .mappings()
                .all()
            )
        taken = [dict(r) for r in rows if not self._dispatcher.is_pending(r["id"])]
        if taken:
            self._dispatcher.enqueue(taken)
