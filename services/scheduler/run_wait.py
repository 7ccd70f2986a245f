"""RunExecution and RunExecutions: request an execution and answer once it has ended, in one call.

A client that runs and waits otherwise makes two calls (RequestExecution, then WatchExecution,
which also reads a snapshot the client never needed). Here the watch is registered under the
new execution's id before its row is stored, so the completion feed's terminal fields, which
arrive with the wake, answer without reading the database again; a wake without them (another
replica's change, the feed away) re-reads the row.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from attune.config import Settings
from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct, duration_seconds, timeout_of
from attune.grpcutil.errors import AttuneError, invalid_field, status_for
from attune.ids import new_id
from attune.states import TERMINAL
from attune.storage import Database
from attune_services.scheduler.requests import ExecutionRequests
from attune_services.scheduler.views import execution_view, main_result_inline_bytes, with_terminal_fields
from attune_services.scheduler.watch_stream import read_watched
from attune_services.scheduler.watchers import ExecutionWatchers

Row = Mapping[str, Any]

_METHOD = "/attune.execution.v1.ExecutionService/RunExecutions"


class RunAndWait:
    """Requests executions and waits for them to end (the scheduler's ExecutionService uses it)."""

    def __init__(
        self, *, db: Database, settings: Settings, requests: ExecutionRequests, watchers: ExecutionWatchers
    ) -> None:
        self._db = db
        self._settings = settings
        self._requests = requests
        self._watchers = watchers
        self._inline = main_result_inline_bytes(settings.max_message_bytes)

    async def run(
        self, request: execution_pb2.RunExecutionRequest | execution_pb2.RunExecutionsRequest
    ) -> execution_pb2.RunExecutionResponse:
        """One execution: requested as RequestExecution requests it, answered once it has ended
        (or once `wait` has passed)."""
        asked = request.request
        if not math.isfinite(asked.timeout_seconds) or asked.timeout_seconds < 0:
            raise invalid_field("request.timeout_seconds", "must be a finite number of seconds, not negative")
        wait = duration_seconds(request.wait, field="wait") if request.HasField("wait") else None
        deadline = None if wait is None else time.monotonic() + wait
        parameters = dict_from_struct(asked.parameters, field="request.parameters")
        execution_id = new_id()
        # Watched before it is stored: its end cannot come before the watch that waits for it.
        with self._watchers.watching(execution_id) as changed:
            row = await self._requests.request(
                asked.action_ref,
                parameters,
                request_id=asked.request_id,
                timeout=timeout_of(asked, prefix="request."),
                execution_id=execution_id,
                method="RunExecution",
            )
            if row["id"] == execution_id:
                return await self._until_ended(row, changed, deadline)
        # A retried request_id: the original execution, which may have ended long ago.
        with self._watchers.watching(row["id"]) as changed:
            fresh, _ = await read_watched(self._db, row["id"], self._settings)
            return await self._until_ended(fresh, changed, deadline)

    async def run_many(
        self, requests: AsyncIterator[execution_pb2.RunExecutionsRequest]
    ) -> AsyncIterator[execution_pb2.RunExecutionsResponse]:
        """RunExecutions: each request runs as RunExecution does; answers as they end."""
        answers: asyncio.Queue[execution_pb2.RunExecutionsResponse | None] = asyncio.Queue()
        room = asyncio.Semaphore(self._settings.max_runs_in_flight)
        running: set[asyncio.Task[None]] = set()

        async def one(index: int, request: execution_pb2.RunExecutionsRequest) -> None:
            try:
                ran = await self.run(request)
                answer = execution_pb2.RunExecutionsResponse(execution=ran.execution, ended=ran.ended, index=index)
            except Exception as err:  # refused as RunExecution would be; a bug is logged with an id
                answer = execution_pb2.RunExecutionsResponse(error=_refusal(err), index=index)
            finally:
                room.release()
            answers.put_nowait(answer)

        async def read() -> None:
            index = 0
            async for request in requests:
                await room.acquire()
                task = asyncio.create_task(one(index, request), name="run-execution")
                running.add(task)
                task.add_done_callback(running.discard)
                index += 1
            while running:  # the client is done sending: answer what is still running
                await asyncio.wait(set(running))
            answers.put_nowait(None)

        reader = asyncio.create_task(read(), name="run-executions-reader")
        try:
            while (answer := await answers.get()) is not None:
                yield answer
            await reader  # a broken request stream ends the call with its error
        finally:
            reader.cancel()
            for task in list(running):
                task.cancel()  # the executions go on: only the waits end

    async def _until_ended(
        self, row: Row, changed: asyncio.Event, deadline: float | None
    ) -> execution_pb2.RunExecutionResponse:
        execution_id = row["id"]
        while True:
            final = self._watchers.final_of(execution_id)
            if final is not None:
                view = execution_view(with_terminal_fields(dict(row), final), inline_bytes=self._inline)
                return execution_pb2.RunExecutionResponse(execution=view, ended=True)
            if row["state"] in TERMINAL:
                return execution_pb2.RunExecutionResponse(
                    execution=execution_view(row, inline_bytes=self._inline), ended=True
                )
            timeout = self._watchers.recheck_interval
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    return execution_pb2.RunExecutionResponse(execution=execution_view(row, inline_bytes=self._inline))
            try:
                async with asyncio.timeout(timeout):
                    await changed.wait()
            except TimeoutError:
                pass
            changed.clear()  # before the read: a change committed after it wakes the wait again
            if self._watchers.final_of(execution_id) is None:
                row, _ = await read_watched(self._db, execution_id, self._settings)


def _refusal(err: Exception) -> execution_pb2.RunError:
    """What RunExecution's status would have said, as a message on the stream."""
    status = status_for(err, method=_METHOD)
    violations = err.violations if isinstance(err, AttuneError) else []
    return execution_pb2.RunError(
        code=status.code.name,
        message=status.details,
        violations=[execution_pb2.FieldViolation(field=v.field, description=v.description) for v in violations],
    )
