"""Server-sent events: the response that carries them, and the set of open ones.

An event stream is a long response; `EventStream` writes ``event:``/``data:`` records to it and
a comment every `HEARTBEAT_SECONDS`, so that a browser that went away is noticed even while
nothing changes (a write to a closed connection fails), and the handler's gRPC stream is
cancelled with it. `OpenStreams` holds the task of every open stream so that shutdown ends them
at once instead of waiting for their executions to end.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

#: A comment line is sent when nothing else was for this long (seconds).
HEARTBEAT_SECONDS = 15.0


class OpenStreams:
    """The handler tasks of the open event streams."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def add_current(self) -> None:
        """Registers the calling handler's task until it ends."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def __len__(self) -> int:
        return len(self._tasks)

    async def close_all(self) -> None:
        """Cancels every open stream and waits for their handlers to finish."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class EventStream:
    """A text/event-stream response being written."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # a proxy in front must not hold events back
            }
        )

    async def open(self) -> None:
        """Sends the headers: the browser's EventSource is open from here on."""
        await self.response.prepare(self._request)

    async def send(self, event: str, data: Any) -> None:
        """One event with `data` as JSON (one line: JSON text has no raw newline)."""
        record = f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
        await self.response.write(record.encode())

    async def heartbeat(self) -> None:
        """A comment, which EventSource ignores: proves the connection still stands."""
        await self.response.write(b": keep-alive\n\n")

    async def end(self) -> None:
        """The last event, `end`: the client closes its EventSource instead of reconnecting."""
        await self.send("end", {})
        await self.response.write_eof()
