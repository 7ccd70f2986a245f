"""Live output arriving from the workers: stored in batches, acknowledged, watches woken
(docs/operations.md, Live output).

Each worker stream's Logs messages are queued here in the order they arrive; one loop writes
everything queued in one transaction (`INSERT … ON CONFLICT DO NOTHING` on (execution_id, seq):
a chunk a worker sends again after a reconnect is stored once), then tells each worker, per
execution, the highest seq stored. The queue is written in order and a failed write is retried
until it succeeds, so "stored up to seq" holds for every chunk received before it. When writing
fails for another reason than an outage, the streams of that batch are closed: their workers
reconnect and send again what was not acknowledged.

Bounded: while more than `max_pending_bytes` wait to be written, a worker's reader waits too, so
gRPC's flow control holds the worker back (and the worker, past its own buffer, its actions).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from attune.background import BackgroundTask
from attune.internal.worker.v1 import worker_pb2
from attune.storage import Database
from attune.storage.database import dialect_insert, retry_while_unavailable
from attune.storage.schema import execution_logs
from attune_services.scheduler.sessions import WorkerSession

log = logging.getLogger(__name__)

#: Bytes of output queued for writing beyond which the workers' readers wait.
MAX_PENDING_BYTES = 32 * 1024 * 1024
#: The last chunk of a run's output, empty: the output is complete (services/worker/logs.py).
END_STREAM = "end"
#: The streams a chunk may come from.
STREAMS = ("stdout", "stderr", END_STREAM)
#: The largest seq the column holds (a 32-bit integer).
MAX_SEQ = 2**31 - 1
#: Rows per INSERT statement.
_ROWS_PER_STATEMENT = 500
#: Bytes per transaction, about.
_BYTES_PER_BATCH = 4 * 1024 * 1024


@dataclass(frozen=True, eq=False)
class _Received:
    session: WorkerSession
    chunks: Sequence[worker_pb2.LogChunk]
    size: int


def storable(chunk: worker_pb2.LogChunk) -> bool:
    """Whether the columns can hold the chunk."""
    return (
        0 < len(chunk.execution_id) <= 32
        and "\x00" not in chunk.execution_id
        and chunk.stream in STREAMS
        and 0 < chunk.seq <= MAX_SEQ
        and math.isfinite(chunk.written_at)
    )


class LogWakes:
    """Events of the log watches, by execution id: set when that execution's output was stored."""

    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = {}

    def add(self, execution_ids: Iterable[str], event: asyncio.Event) -> None:
        """Wakes `event` when output of any of these executions is stored."""
        for execution_id in execution_ids:
            self._events.setdefault(execution_id, set()).add(event)

    def remove(self, execution_ids: Iterable[str], event: asyncio.Event) -> None:
        """Undoes `add`."""
        for execution_id in execution_ids:
            events = self._events.get(execution_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._events[execution_id]

    def wake(self, execution_ids: Iterable[str]) -> None:
        """Output of these executions was stored."""
        if not self._events:
            return
        for execution_id in execution_ids:
            for event in self._events.get(execution_id, ()):
                event.set()


class LogWriter:
    """Writes the chunks the workers send; see the module docstring."""

    def __init__(self, db: Database, wakes: LogWakes, *, max_pending_bytes: int = MAX_PENDING_BYTES) -> None:
        self._db = db
        self._wakes = wakes
        self._max_pending = max_pending_bytes
        self._queue: list[_Received] = []
        self._pending_bytes = 0
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._loop = BackgroundTask("log-writer", self._run)
        self.on_failed: Callable[[WorkerSession], None] = lambda session: session.close()

    async def add(self, session: WorkerSession, chunks: Sequence[worker_pb2.LogChunk]) -> None:
        """Queues one Logs message of a worker; waits first while the queue is full. A chunk that
        cannot be stored (a worker's bug) is dropped with a warning and acknowledged like the
        others, so that the worker does not send it again and again."""
        while self._pending_bytes > self._max_pending:
            self._room.clear()
            await self._room.wait()
        bad = [c for c in chunks if not storable(c)]
        if bad:
            log.warning(
                "worker %s sent %d log chunks that cannot be stored (first: execution %r, seq %d, stream %r)",
                session.worker_id,
                len(bad),
                bad[0].execution_id[:64],
                bad[0].seq,
                bad[0].stream[:16],
            )
        size = sum(len(c.data) for c in chunks)
        self._queue.append(_Received(session, chunks, size))
        self._pending_bytes += size
        self._wakeup.set()
        if not self._loop.started:
            self._loop.start()

    async def stop(self) -> None:
        """Stops writing (what is queued and not acknowledged, the workers send again)."""
        await self._loop.stop()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._take()
                try:
                    await retry_while_unavailable(functools.partial(self._store, batch), what="storing log chunks")
                except Exception:
                    log.exception("storing log chunks failed; their workers reconnect and send them again")
                    for received in batch:
                        self.on_failed(received.session)
                else:
                    self._acknowledge(batch)
                self._pending_bytes -= sum(r.size for r in batch)
                self._room.set()

    def _take(self) -> list[_Received]:
        """The oldest messages queued, about `_BYTES_PER_BATCH` of output at most (one at least)."""
        count, size = 0, 0
        while count < len(self._queue) and (count == 0 or size + self._queue[count].size <= _BYTES_PER_BATCH):
            size += self._queue[count].size
            count += 1
        batch, self._queue = self._queue[:count], self._queue[count:]
        return batch

    async def _store(self, batch: Sequence[_Received]) -> None:
        rows = [
            {
                "execution_id": c.execution_id,
                "seq": c.seq,
                "stream": c.stream,
                "written_at": c.written_at,
                "data": c.data,
            }
            for received in batch
            for c in received.chunks
            if storable(c)
        ]
        if not rows:
            return
        async with self._db.write() as conn:
            stmt = dialect_insert(conn, execution_logs).on_conflict_do_nothing(index_elements=["execution_id", "seq"])
            for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                await conn.execute(stmt, rows[start : start + _ROWS_PER_STATEMENT])

    def _acknowledge(self, batch: Sequence[_Received]) -> None:
        stored: dict[WorkerSession, dict[str, int]] = {}
        for received in batch:
            highest = stored.setdefault(received.session, {})
            for chunk in received.chunks:
                highest[chunk.execution_id] = max(highest.get(chunk.execution_id, 0), chunk.seq)
        for session, highest in stored.items():
            acks = [worker_pb2.LogAck(execution_id=i, seq=seq) for i, seq in highest.items()]
            session.send(worker_pb2.ConnectResponse(log_acks=worker_pb2.LogAcks(acks=acks)))
        self._wakes.wake({i for highest in stored.values() for i in highest})
