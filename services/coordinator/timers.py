"""Durable timers: retry delays, task delays and workflow timeouts live in `workflow_timers` and
fire from there, so they survive a restart.

The loop claims due timers by moving their `fire_at` forward by a short lease (on PostgreSQL with
`FOR UPDATE SKIP LOCKED`, so replicas claim disjoint timers; SQLite's BEGIN IMMEDIATE serialises
claims). Firing a timer deletes its row in the same transaction as the step it caused; a claim
lost to a crash simply fires again after the lease, and the engine ignores a timer it already
handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from attune import metrics
from attune.background import BackgroundTask
from attune.config import Settings
from attune.logs import ThrottledLog
from attune.storage import Database, is_unavailable, log_failed_round
from attune.storage.schema import workflow_timers

log = logging.getLogger(__name__)
# The loop looks every retry interval: while the database is away, one line per log interval.
_failures = ThrottledLog(log)

CLAIM_BATCH = 200


class TimerLoop:
    """Fires due timers through `fire(workflow_id, timer_id)`."""

    def __init__(self, *, db: Database, settings: Settings, fire: Callable[[str, str], Awaitable[object]]) -> None:
        self._db = db
        self._settings = settings
        self._fire = fire
        self._wake = asyncio.Event()
        self._next_at = 0.0  # the earliest fire_at known; 0 = look in the database
        self._loop = BackgroundTask("coordinator-timers", self._run)
        self._closed = False
        # A claimed timer not fired by then (a crash) becomes due again.
        self.lease = max(5 * settings.retry_interval, 1.0)

    def wake(self, fire_at: float) -> None:
        """A timer was set; wake the loop if it fires before the one it waits for."""
        if fire_at < self._next_at or self._next_at == 0.0:
            self._next_at = fire_at
            self._wake.set()

    def start(self) -> None:
        self._loop.start()

    async def close(self) -> None:
        self._closed = True
        await self._loop.stop()

    async def _run(self) -> None:
        while not self._closed:
            self._wake.clear()  # a wake-up from here on (a timer set meanwhile) is not lost
            try:
                due = await self._claim(time.time())
                if due:
                    await asyncio.gather(*(self._fire_one(w, t) for w, t in due))
                    if len(due) == CLAIM_BATCH:
                        continue
                self._next_at = await self._earliest()
            except Exception as err:
                log_failed_round(_failures, "timer loop", err)
                self._next_at = 0.0
            # Sleep until the next timer, but look again now and then: another replica (or a timer
            # claimed by a process that died) may add due timers this process was not told about.
            delay = self._settings.retry_interval
            if self._next_at:
                delay = min(delay, max(self._next_at - time.time(), 0.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _fire_one(self, workflow_id: str, timer_id: str) -> None:
        try:
            await self._fire(workflow_id, timer_id)
        except Exception as err:  # its claim runs out after the lease, and it fires again
            if is_unavailable(err):
                log_failed_round(_failures, "firing timers", err)
            else:
                log.error(
                    "timer %s of workflow %s failed to fire; retrying after %.1fs",
                    timer_id,
                    workflow_id,
                    self.lease,
                    exc_info=err,
                )

    async def _claim(self, now: float) -> list[tuple[str, str]]:
        t = workflow_timers
        query = (
            sa.select(t.c.workflow_id, t.c.timer_id).where(t.c.fire_at <= now).order_by(t.c.fire_at).limit(CLAIM_BATCH)
        )
        if not self._db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        async with self._db.read() as conn:
            # Cheap check first: most wake-ups find nothing due, and need no write lock.
            if (await conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.fire_at <= now))).scalar() == 0:
                return []
        async with self._db.write() as conn:
            due = [(r.workflow_id, r.timer_id) for r in await conn.execute(query)]
            if due:
                await conn.execute(
                    sa.update(t)
                    .where(t.c.workflow_id == sa.bindparam("w"), t.c.timer_id == sa.bindparam("k"))
                    .values(fire_at=now + self.lease),
                    [{"w": w, "k": k} for w, k in due],
                )
        return due

    async def _earliest(self) -> float:
        """The earliest fire_at (0: none); on the way, how many timers wait (a metric)."""
        t = workflow_timers
        async with self._db.read() as conn:
            earliest, count = (await conn.execute(sa.select(sa.func.min(t.c.fire_at), sa.func.count()))).one()
        metrics.WORKFLOW_TIMERS.set(count)
        return float(earliest) if earliest is not None else 0.0
