"""Per-workflow ordering: a lock per workflow, and mailboxes that apply a workflow's events in batches.

Events of one workflow must be applied one after another (each sees the state the previous one
left), but committing each on its own would cap a 1,000-wide fan-out at one commit per task. A
mailbox queues a workflow's events while its previous batch is being committed; the next batch
takes everything queued and is committed as one step. Events of different workflows run
concurrently and meet again in the group commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class WorkflowLocks:
    """One asyncio lock per workflow id, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, workflow_id: str) -> AsyncIterator[None]:
        """Holds the workflow's lock for the block."""
        lock, users = self._locks.get(workflow_id, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[workflow_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[workflow_id]
            if users <= 1:
                del self._locks[workflow_id]
            else:
                self._locks[workflow_id] = (lock, users - 1)


class Mailboxes(Generic[T, R]):
    """`submit(workflow_id, event)` → the result `process(workflow_id, batch)` gave for it."""

    def __init__(self, process: Callable[[str, list[T]], Awaitable[Sequence[R]]]) -> None:
        self._process = process
        self._boxes: dict[str, list[tuple[T, asyncio.Future[R]]]] = {}
        self._drainers: set[asyncio.Task[None]] = set()

    async def submit(self, workflow_id: str, event: T) -> R:
        """Queues an event and waits until the batch holding it is applied."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        box = self._boxes.get(workflow_id)
        if box is not None:
            box.append((event, future))
        else:
            self._boxes[workflow_id] = [(event, future)]
            drainer = asyncio.create_task(self._drain(workflow_id), name=f"mailbox-{workflow_id}")
            self._drainers.add(drainer)
            drainer.add_done_callback(self._drainers.discard)
        return await future

    async def _drain(self, workflow_id: str) -> None:
        while True:
            batch = self._boxes[workflow_id]
            if not batch:
                del self._boxes[workflow_id]
                return
            self._boxes[workflow_id] = []
            try:
                results = await self._process(workflow_id, [event for event, _ in batch])
            except BaseException as err:
                failure = err if isinstance(err, Exception) else RuntimeError(f"event not applied: {err!r}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(failure)
                if not isinstance(err, Exception):  # cancelled: fail what is still queued, stop
                    for _, future in self._boxes.pop(workflow_id, []):
                        if not future.done():
                            future.set_exception(failure)
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
