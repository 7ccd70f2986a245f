"""The completed-executions feed: which executions this replica just moved to a terminal state.

The result store publishes each commit's applied ids here; every WatchCompleted stream (the
scheduler's, to wake its watchers) gets them as one message. It is a hint, never a record: a
subscriber that is slow or away misses nothing durable, since the database holds every state.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Sequence

from attune.completion.v1 import completion_pb2

# A subscriber this far behind is dropped (it reconnects and re-reads what it watches).
MAX_QUEUED = 10_000


class CompletionFeed:
    """Fans each commit's terminal states out to the live subscribers."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[completion_pb2.WatchCompletedResponse | None]] = set()
        self._closed = False

    def publish(self, execution_ids: Sequence[str], parent_ids: Sequence[str]) -> None:
        """Called right after a commit moved `execution_ids` to a terminal state."""
        if not execution_ids or not self._subscribers:
            return
        message = completion_pb2.WatchCompletedResponse(execution_ids=execution_ids, parent_ids=parent_ids)
        for queue in list(self._subscribers):
            if queue.qsize() >= MAX_QUEUED:
                self._subscribers.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(message)

    async def subscribe(self) -> AsyncIterator[completion_pb2.WatchCompletedResponse]:
        """Messages from now on, until `close` (or until this subscriber falls too far behind)."""
        if self._closed:
            return
        queue: asyncio.Queue[completion_pb2.WatchCompletedResponse | None] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            while True:
                message = await queue.get()
                if message is None:
                    return
                yield message
        finally:
            self._subscribers.discard(queue)

    def close(self) -> None:
        """Ends every subscription (at drain: subscribers move to another replica)."""
        self._closed = True
        for queue in self._subscribers:
            queue.put_nowait(None)
        self._subscribers.clear()
