"""The completed-executions feed: which executions this replica just moved to a terminal state.

The result store publishes each commit's applied results here; every WatchCompleted stream (the
scheduler's, to wake its watchers) gets them as one message: the ids, and the stored terminal
fields of those whose result is small, so a watch of a plain execution sends its final view
without reading the database again (the last hop of every `attune run --wait`). It is a hint,
never a record: a subscriber that is slow or away misses nothing durable, since the database
holds every state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from attune.grpcutil.convert import execution_state_to_proto
from attune.internal.completion.v1 import completion_pb2
from attune_services.completion.store import TerminalResult

# A subscriber this far behind is dropped (it reconnects and re-reads what it watches).
MAX_QUEUED = 10_000
#: A result (plus error) larger than this goes by id only; so does any beyond MAX_MESSAGE_RESULTS
#: bytes in one message (the watcher reads those from the database).
MAX_RESULT_BYTES = 16 * 1024
MAX_MESSAGE_RESULTS = 1024 * 1024


class CompletionFeed:
    """Fans each commit's terminal states out to the live subscribers."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[completion_pb2.WatchCompletedResponse | None]] = set()
        self._closed = False

    @property
    def subscriber_count(self) -> int:
        """How many WatchCompleted streams are live."""
        return len(self._subscribers)

    def publish(self, results: Sequence[TerminalResult], parent_ids: Sequence[str]) -> None:
        """Called right after a commit applied `results` (moved their executions to a terminal
        state)."""
        if not results or not self._subscribers:
            return
        message = completion_pb2.WatchCompletedResponse(
            execution_ids=[r.execution_id for r in results], parent_ids=parent_ids, results=_small(results)
        )
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


def _small(results: Sequence[TerminalResult]) -> list[completion_pb2.ExecutionResult]:
    """The terminal fields of the results that fit (MAX_RESULT_BYTES each, MAX_MESSAGE_RESULTS
    in all), as stored."""
    fields: list[completion_pb2.ExecutionResult] = []
    total = 0
    for r in results:
        size = len(r.result or "") + len(r.error or "")
        if size > MAX_RESULT_BYTES or total + size > MAX_MESSAGE_RESULTS:
            continue
        total += size
        fields.append(
            completion_pb2.ExecutionResult(
                execution_id=r.execution_id,
                state=execution_state_to_proto(r.state),
                result_json=(r.result or "").encode(),
                error=r.error or "",
                started_at=r.started_at or 0.0,
                finished_at=r.finished_at,
                reporter=r.reporter,
            )
        )
    return fields
