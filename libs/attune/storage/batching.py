"""Group commit: many concurrent callers, one transaction per batch.

Per-message Python overhead, not the database, is the limit (docs/architecture.md, Performance
goals), so hot-path writers hand their rows to a `GroupCommitter`: while one batch is being
written the next one accumulates, and each caller's `submit` returns once its row is durable.
Each batch's size and the time its flush took (its write and commit) are observed in
`attune_db_commit_batch_size` and `attune_db_commit_seconds`, labelled by writer (attune.metrics).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from attune import metrics
from attune.background import BackgroundTask

#: While the batches keep holding more than one item, the next is taken this long after its first
#: item arrives: in a burst of 2,000 no-op requests the scheduler's inserts came ~10 rows at a
#: time and every stage downstream (assignments, results, acks) inherited those small batches;
#: waiting 2 ms made them larger and the burst ~7-13 % faster (interleaved A/B), with no change
#: to a sequential request (a batch of one never waits) or to a 1,000-wide fan-out.
BUSY_LINGER_S = 0.002

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class GroupCommitter(Generic[T, R]):
    """Batches `submit(item)` calls into `flush(items) -> results` (one result per item, in order).

    `linger` (seconds) waits that long after the first item of a batch before writing it: for
    bookkeeping nobody waits on (deleting acknowledged outbox rows, recording dispatched
    children), so that a sequence of single items (a workflow chain's steps) shares a statement
    instead of costing one each. Without it, a batch waits `busy_linger` only while the previous
    one held several items (a burst), never after a batch of one (a sequential caller).

    `writer` names it in the metrics (default: the flush's qualified name, e.g.
    `ResultStore._flush_with_retry`)."""

    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 1000,
        linger: float = 0.0,
        busy_linger: float = BUSY_LINGER_S,
        writer: str = "",
    ) -> None:
        self._flush = flush
        writer = writer or getattr(flush, "__qualname__", "") or "unnamed"
        self._commit_seconds = metrics.DB_COMMIT.labels(writer)
        self._batch_size = metrics.DB_BATCH.labels(writer)
        self._max_batch = max_batch
        self._linger = linger
        self._busy_linger = busy_linger
        self._last_size = 0
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._wakeup = asyncio.Event()
        self._loop = BackgroundTask("group-commit", self._run)
        self._closed = False

    async def submit(self, item: T) -> R:
        """Queues one item and waits until the batch holding it is committed."""
        (future,) = self._enqueue([item])
        return await future

    async def submit_many(self, items: Sequence[T]) -> list[R]:
        """Queues several items (they may share a batch) and waits for all of them; the first
        failure is raised once every item's batch is done."""
        futures = self._enqueue(items)
        if not futures:
            return []
        try:
            await asyncio.wait(futures)
        except asyncio.CancelledError:
            for future in futures:
                future.cancel()
            raise
        failures = [error for error in (f.exception() for f in futures) if error is not None]  # all retrieved
        if failures:
            raise failures[0]
        return [future.result() for future in futures]

    def _enqueue(self, items: Sequence[T]) -> list[asyncio.Future[R]]:
        # Futures, not a task per item: a 1,000-result batch made 1,000 tasks to wait on.
        if self._closed:
            raise RuntimeError("group committer is closed")
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = [loop.create_future() for _ in items]
        self._pending.extend(zip(items, futures, strict=True))
        self._wakeup.set()
        if not self._loop.started:
            self._loop.start()
        return futures

    async def _run(self) -> None:
        while not (self._closed and not self._pending):
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._closed and len(self._pending) < self._max_batch:
                if self._linger > 0:
                    await asyncio.sleep(self._linger)
                elif self._busy_linger > 0 and self._last_size > 1:
                    await asyncio.sleep(self._busy_linger)
            while self._pending:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                self._last_size = len(batch)
                began = time.perf_counter()
                try:
                    results = await self._flush([item for item, _ in batch])
                    self._commit_seconds.observe(time.perf_counter() - began)
                    self._batch_size.observe(len(batch))
                except BaseException as err:  # the callers see the failure, the loop goes on
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(err if isinstance(err, Exception) else RuntimeError(str(err)))
                    if not isinstance(err, Exception):
                        raise
                    continue
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)

    async def close(self) -> None:
        """Writes what is queued, then stops."""
        self._closed = True
        self._wakeup.set()
        await self._loop.stop(grace=None)  # it writes what is queued, then returns
