"""Live views: /api/executions/{id}/events (snapshots) and /api/executions/{id}/logs (output).

`events` follows WatchExecution: each change of the execution or of a child marks the view
stale, and a writer sends a `snapshot` (the same JSON as GET, the workflow run read again) at
most every `SNAPSHOT_INTERVAL`, so a 1,000-task workflow whose tasks change hundreds of times a
second costs a few GetWorkflowRun calls a second, not one per change. The first snapshot goes at
once; a final one when the execution has ended, then `end`, and the stream closes.

`logs` relays WatchExecutionLogs (the tasks' output included) as `log` events
{task, stream, text} and ends with `end` once the execution has ended and its output is sent.

Either stream ends when the browser goes away: the handler is cancelled (or its next write
fails), which cancels its gRPC stream.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
from collections.abc import AsyncIterable
from typing import Any

import grpc
from aiohttp import web

from attune.execution.v1 import execution_pb2
from attune.states import TERMINAL
from attune_services.console.appkeys import GRAPHS, SCHEDULER, STREAMS
from attune_services.console.auth import caller_metadata
from attune_services.console.bodies import path_part
from attune_services.console.errors import ApiError, from_rpc
from attune_services.console.routes_executions import snapshot
from attune_services.console.streams import HEARTBEAT_SECONDS, EventStream
from attune_services.console.views import state_name

routes = web.RouteTableDef()

#: The least time between two snapshots of one stream, in seconds (at most 4 a second).
SNAPSHOT_INTERVAL = 0.25
_STREAM_NAMES = {execution_pb2.LOG_STREAM_STDOUT: "stdout", execution_pb2.LOG_STREAM_STDERR: "stderr"}


class _Latest:
    """What the watch has seen: the execution as of its last message, and whether it is newer
    than the last snapshot sent."""

    def __init__(self) -> None:
        self.execution: execution_pb2.Execution | None = None
        self.changed = asyncio.Event()
        self.ended = False
        self.error: BaseException | None = None


async def _follow(watch: AsyncIterable[execution_pb2.WatchExecutionResponse], latest: _Latest) -> None:
    """Reads the watch into `latest` until it ends (the execution ended) or fails."""
    try:
        async for message in watch:
            latest.execution = message.execution
            latest.changed.set()
    except grpc.RpcError as err:
        latest.error = err
    finally:
        latest.ended = True
        latest.changed.set()


@routes.get("/api/executions/{id}/events")
async def execution_events(request: web.Request) -> web.StreamResponse:
    """`snapshot` events of the execution as it changes, a final one when it has ended, then `end`."""
    execution_id = path_part(request, "id")
    scheduler = request.app[SCHEDULER]
    metadata = caller_metadata(request)
    watch = scheduler.executions.WatchExecution(
        execution_pb2.WatchExecutionRequest(id=execution_id, page_size=1), metadata=metadata
    )
    latest = _Latest()
    reader = asyncio.create_task(_follow(watch, latest))
    try:
        await latest.changed.wait()
        if latest.execution is None:  # refused or unknown: answer as the API, before any event
            raise (
                from_rpc(latest.error)
                if isinstance(latest.error, grpc.RpcError)
                else ConnectionError("the watch ended at once")
            )
        request.app[STREAMS].add_current()
        stream = EventStream(request)
        await stream.open()
        try:
            graph = None
            if latest.execution.runner_type == "workflow":
                graph = await request.app[GRAPHS].of_action(scheduler, metadata, latest.execution.action_ref)
            while True:
                latest.changed.clear()
                execution = latest.execution
                await stream.send("snapshot", await snapshot(scheduler, metadata, execution, graph))
                if state_name(execution.state) in TERMINAL:
                    break
                if latest.ended and not latest.changed.is_set():
                    if isinstance(latest.error, grpc.RpcError):
                        raise from_rpc(latest.error)
                    break
                await asyncio.sleep(SNAPSHOT_INTERVAL)
                await _wait_or_heartbeat(latest.changed, stream)
        except ApiError as err:  # the headers are sent: the failure travels as an event
            await stream.send("error", err.body())
        await stream.end()
        return stream.response
    finally:
        watch.cancel()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def _wait_or_heartbeat(changed: asyncio.Event, stream: EventStream) -> None:
    """Waits for `changed`, writing a heartbeat each HEARTBEAT_SECONDS meanwhile."""
    while not changed.is_set():
        try:
            await asyncio.wait_for(changed.wait(), HEARTBEAT_SECONDS)
        except TimeoutError:
            await stream.heartbeat()


#: How long the logs stream waits for the scheduler's first answer before it opens anyway: an
#: unknown id or a refusal is answered as the API's error, a quiet execution opens at once.
FIRST_ANSWER_SECONDS = 1.0

_LogItem = execution_pb2.WatchExecutionLogsResponse | grpc.RpcError | None


async def _read_logs(
    chunks: AsyncIterable[execution_pb2.WatchExecutionLogsResponse], into: asyncio.Queue[_LogItem]
) -> None:
    """Reads the log stream into a queue: each chunk, then the failure if any, then None (not
    when cancelled: the handler has gone)."""
    try:
        async for chunk in chunks:
            await into.put(chunk)
    except grpc.RpcError as err:
        await into.put(err)
    await into.put(None)


@routes.get("/api/executions/{id}/logs")
async def execution_logs(request: web.Request) -> web.StreamResponse:
    """`log` events {task, stream, text} of the execution and its tasks, then `end`; a comment
    every HEARTBEAT_SECONDS while the execution is quiet, so idle proxies keep the stream open."""
    execution_id = path_part(request, "id")
    scheduler = request.app[SCHEDULER]
    logs = scheduler.executions.WatchExecutionLogs(
        execution_pb2.WatchExecutionLogsRequest(id=execution_id, include_children=True),
        metadata=caller_metadata(request),
    )
    queue: asyncio.Queue[_LogItem] = asyncio.Queue(maxsize=64)
    reader = asyncio.create_task(_read_logs(logs, queue))
    try:
        quiet = False
        first: _LogItem = None
        try:
            first = await asyncio.wait_for(queue.get(), FIRST_ANSWER_SECONDS)
        except TimeoutError:
            quiet = True  # nothing yet: open, and wait for output below
        if isinstance(first, grpc.RpcError):
            raise from_rpc(first)
        request.app[STREAMS].add_current()
        stream = EventStream(request)
        await stream.open()
        decoders: dict[tuple[str, int], Any] = {}
        try:
            item = await _next_or_heartbeat(queue, stream) if quiet else first
            while item is not None:
                if isinstance(item, grpc.RpcError):
                    raise from_rpc(item)
                key = (item.execution_id, item.stream)
                decoder = decoders.setdefault(key, codecs.getincrementaldecoder("utf-8")(errors="replace"))
                text = decoder.decode(item.data)
                if text:
                    stream_name = _STREAM_NAMES.get(item.stream, "")
                    await stream.send("log", {"task": item.task_name or None, "stream": stream_name, "text": text})
                item = await _next_or_heartbeat(queue, stream)
        except ApiError as err:  # the headers are sent: the failure travels as an event
            await stream.send("error", err.body())
        await stream.end()
        return stream.response
    finally:
        logs.cancel()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def _next_or_heartbeat(queue: asyncio.Queue[_LogItem], stream: EventStream) -> _LogItem:
    """The next item of the queue, writing a heartbeat each HEARTBEAT_SECONDS meanwhile."""
    while True:
        try:
            return await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
        except TimeoutError:
            await stream.heartbeat()
