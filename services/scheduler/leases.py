"""Worker leases: worker liveness every scheduler replica agrees on (table `worker_leases`).

A worker holds one stream, to one replica. That replica renews the worker's lease while the
stream is open (heartbeats and gRPC keepalive end a dead worker's stream): one upsert of all its
workers per sweep (and one when a worker connects), each row naming the replica and pushing
`expires_at` to now + `worker_grace`. Every replica decides that a worker is lost from the lease
alone — expired means lost — never from whether it holds the worker's stream itself: replica B
must not abandon the work of a worker connected to replica A.

When a worker connects, its replica takes the lease (`take`): the row names that replica and its
`generation` goes up by one; the session keeps the generation it got. A renewal only renews a
row still at the replica's own generation, so the most recent connection holds the lease, with
no clock compared. A replica whose renewal missed a row holds a stale stream (its worker has
connected again since, to another replica or to this one) and closes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from attune.storage import Database, dialect_insert
from attune.storage.schema import worker_leases
from attune_services.scheduler.sessions import WorkerSession


@dataclass(frozen=True, kw_only=True)
class WorkerLease:
    """One row of `worker_leases`."""

    worker_id: str
    scheduler_id: str
    runtimes: frozenset[str]
    connected_at: float
    expires_at: float

    def alive(self, now: float) -> bool:
        """The worker renewed its lease within the grace period."""
        return now < self.expires_at


class WorkerLeases:
    """The lease table as one scheduler replica (`scheduler_id`) uses it."""

    def __init__(self, db: Database, *, scheduler_id: str, grace: float) -> None:
        self._db = db
        self._scheduler_id = scheduler_id
        self._grace = grace

    async def take(self, session: WorkerSession) -> None:
        """Takes the lease of a worker that has just connected here, whoever held it, and records
        its generation in `session.lease_generation`."""
        now = time.time()
        async with self._db.write() as conn:
            insert = dialect_insert(conn, worker_leases).values(**self._row(session, now, generation=1))
            statement = insert.on_conflict_do_update(
                index_elements=[worker_leases.c.worker_id],
                set_={**self._renewal(insert), "generation": worker_leases.c.generation + 1},
            ).returning(worker_leases.c.generation)
            session.lease_generation = (await conn.execute(statement)).scalar_one()

    async def renew(self, sessions: Sequence[WorkerSession]) -> set[str]:
        """Renews the leases of `sessions` (one statement); returns the worker ids whose lease this
        replica still holds. A worker missing from it has connected again since, elsewhere or here."""
        if not sessions:
            return set()
        now = time.time()
        async with self._db.write() as conn:
            insert = dialect_insert(conn, worker_leases)
            statement = insert.on_conflict_do_update(
                index_elements=[worker_leases.c.worker_id],
                set_=self._renewal(insert),
                where=sa.and_(
                    worker_leases.c.scheduler_id == insert.excluded.scheduler_id,
                    worker_leases.c.generation == insert.excluded.generation,
                ),
            ).returning(worker_leases.c.worker_id)
            rows = [self._row(s, now, generation=s.lease_generation) for s in sessions]
            return set((await conn.execute(statement, rows)).scalars())

    def _row(self, session: WorkerSession, now: float, *, generation: int) -> dict[str, object]:
        return {
            "worker_id": session.worker_id,
            "scheduler_id": self._scheduler_id,
            "generation": generation,
            "runtimes": json.dumps(sorted(session.runtimes)),
            "connected_at": session.connected_at,
            "renewed_at": now,
            "expires_at": now + self._grace,
        }

    @staticmethod
    def _renewal(insert: Any) -> dict[str, Any]:
        """The columns an upsert sets from the row it proposes (`excluded`)."""
        return {
            name: getattr(insert.excluded, name)
            for name in ("scheduler_id", "runtimes", "connected_at", "renewed_at", "expires_at")
        }

    async def read(self) -> dict[str, WorkerLease]:
        """Every lease, by worker id (one row per worker ever seen, until `forget`)."""
        async with self._db.read() as conn:
            rows = (await conn.execute(sa.select(worker_leases))).mappings().all()
        return {
            row["worker_id"]: WorkerLease(
                worker_id=row["worker_id"],
                scheduler_id=row["scheduler_id"],
                runtimes=frozenset(json.loads(row["runtimes"] or "[]")),
                connected_at=row["connected_at"],
                expires_at=row["expires_at"],
            )
            for row in rows
        }

    async def forget(self, worker_ids: Iterable[str], *, expired_before: float) -> None:
        """Deletes the leases of `worker_ids` that expired before `expired_before` (workers gone
        with nothing left to abandon; one that comes back gets a new lease)."""
        ids = list(worker_ids)
        if not ids:
            return
        async with self._db.write() as conn:
            await conn.execute(
                worker_leases.delete().where(
                    worker_leases.c.worker_id.in_(ids), worker_leases.c.expires_at < expired_before
                )
            )
