"""Replica leases: which replicas of a service are alive, decided from the database (`service_leases`).

A replica that carries out durable work (the coordinator's outbox, the completion service's
outcome outbox) stamps each row it commits with its replica id and holds a lease: a row of
`service_leases` it renews every third of ATTUNE_LEASE_TIME and deletes at a clean stop. Another
replica takes a row over only when the lease of the row's owner has expired or is gone: a slow
replica that is still alive keeps its work, so nothing is sent twice, and a killed one's work is
taken over within about one lease time.

Two guards keep a database outage from passing for a death. A replica whose own lease lapsed
(no renewal for a whole lease time) takes nothing over until it has held its lease again for a
lease time (`steady`): after an outage every lease looks expired, and its peers need a moment to
renew theirs. And it stops carrying out its own work while its lease is not `valid`, since a
peer may take it over meanwhile; `on_regained` tells it to re-read what it still owns.
Times are wall-clock seconds (`time.time()`): replicas sharing a database need synchronised clocks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from attune.background import BackgroundTask
from attune.config import Settings
from attune.logs import ThrottledLog
from attune.storage.database import Database, dialect_insert, log_failed_round
from attune.storage.schema import service_leases

log = logging.getLogger(__name__)
_failures = ThrottledLog(log)


def new_replica_id() -> str:
    """A replica id readable in logs and unique per process start: host, pid and a random tail."""
    return f"{socket.gethostname()[:32]}-{os.getpid()}-{os.urandom(4).hex()}"


def live_replicas(kind: str, now: float) -> sa.Select[tuple[str]]:
    """The ids of the replicas of `kind` whose lease has not expired at `now` (a subquery)."""
    t = service_leases
    return sa.select(t.c.replica_id).where(t.c.kind == kind, t.c.expires_at > now)


def owned_by_dead_replica(owner: sa.ColumnElement[str | None], kind: str, now: float) -> sa.ColumnElement[bool]:
    """True for a row whose `owner` is a replica of `kind` without a live lease (NULL owners,
    rows from before leases, are not matched: callers decide about those)."""
    return sa.and_(owner.is_not(None), owner.not_in(live_replicas(kind, now).scalar_subquery()))


class ReplicaLease:
    """This process's lease as one replica of `kind`; `start()` renews it in the background."""

    def __init__(self, db: Database, *, kind: str, ttl: float, retry: float, replica_id: str | None = None) -> None:
        self._db = db
        self.kind = kind
        self.id = replica_id or new_replica_id()
        self.ttl = ttl
        self._retry = retry  # a failed renewal is tried again this soon, not a third of ttl later
        self._renewed: float | None = None  # monotonic start of the last successful renewal
        self._steady_since: float | None = None  # ... of the first renewal after the last lapse
        self._lapsed = False
        self._regain_pending = False  # on_regained still to run (it failed, or is running)
        self._loop = BackgroundTask(f"{kind}-lease", self._run)
        self._stopping = False
        #: Awaited after a renewal that followed a lapse: the work this replica held may have been
        #: taken over meanwhile; it re-reads what it still owns.
        self.on_regained: Callable[[], Awaitable[None]] | None = None

    @classmethod
    def of_replica(cls, db: Database, kind: str, settings: Settings) -> ReplicaLease:
        """The lease of this process as configured: ATTUNE_LEASE_TIME, ATTUNE_REPLICA_ID (a new
        id when unset), renewals retried every ATTUNE_RETRY_INTERVAL."""
        replica_id = settings.replica_id or None
        return cls(db, kind=kind, ttl=settings.lease_time, retry=settings.retry_interval, replica_id=replica_id)

    @property
    def valid(self) -> bool:
        """True while the last renewal is younger than the lease time (less a tenth, for the
        peers' clocks): nobody takes over this replica's work before then."""
        return self._renewed is not None and time.monotonic() - self._renewed < 0.9 * self.ttl

    @property
    def steady(self) -> bool:
        """True when this replica may take over others' work: its lease is valid and never
        lapsed, or has been renewed without a lapse for a whole lease time since."""
        if not self.valid or self._steady_since is None:
            return False
        return not self._lapsed or time.monotonic() - self._steady_since >= self.ttl

    async def renew(self) -> None:
        """Pushes this replica's lease to now + ttl (one upsert) and drops leases long expired."""
        started = time.monotonic()
        now = time.time()
        t = service_leases
        async with self._db.write() as conn:
            insert = dialect_insert(conn, t).values(
                kind=self.kind, replica_id=self.id, started_at=now, expires_at=now + self.ttl
            )
            await conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["kind", "replica_id"], set_={"expires_at": insert.excluded.expires_at}
                )
            )
            # A missing lease counts as expired: pruning rows of replicas gone for good changes nothing.
            await conn.execute(sa.delete(t).where(t.c.kind == self.kind, t.c.expires_at < now - 10 * self.ttl))
        lapsed = self._renewed is not None and started - self._renewed >= self.ttl
        self._renewed = started
        if self._steady_since is None or lapsed:
            self._steady_since = started
        if lapsed:
            self._lapsed = self._regain_pending = True
            log.warning("%s lease %s renewed after it had lapsed; re-reading the work it owns", self.kind, self.id)
        if self._regain_pending and self.on_regained is not None:
            await self.on_regained()  # if it fails, the next renewal runs it again
        self._regain_pending = False

    async def release(self) -> None:
        """Deletes the lease (a clean stop): another replica, or this one restarted, takes over
        what it still owned at once instead of after the lease time."""
        t = service_leases
        async with self._db.write() as conn:
            await conn.execute(sa.delete(t).where(t.c.kind == self.kind, t.c.replica_id == self.id))
        self._renewed = None

    def start(self) -> None:
        """Starts renewing: at once, then every third of the lease time (sooner after a failure)."""
        self._loop.start()

    async def close(self, *, release: bool = True) -> None:
        """Stops renewing and releases the lease (if the database answers); once. Without
        `release` the lease is left to expire, as a killed process leaves it."""
        if self._stopping:
            return
        self._stopping = True
        await self._loop.stop()
        if not release:
            return
        try:
            await asyncio.wait_for(self.release(), timeout=max(self._retry, 1.0))
        except Exception as err:  # it expires by itself
            log.info("%s lease %s not released: %s", self.kind, self.id, err)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.renew()
                delay = self.ttl / 3
            except Exception as err:
                log_failed_round(_failures, f"renewing the {self.kind} lease", err)
                delay = min(self._retry, self.ttl / 3)
            await asyncio.sleep(delay)
