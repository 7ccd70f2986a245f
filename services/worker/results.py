"""Results on their way to the completion service: buffered until acked, re-sent until then.

One long-lived CompletionService.SubmitResults stream carries batches: every result added during
one loop tick goes in one message. A result leaves the buffer only when its id comes back acked;
if the stream breaks (the completion service restarts, say), the sender opens a new one and sends
every unacked result again — the completion service ignores duplicates. The new stream waits for
the channel to connect (`wait_for_ready`) instead of failing and sleeping a backoff of its own:
results go again as soon as the completion service is reachable, not a backoff later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import grpc

from attune.background import BackgroundTask
from attune.config import Settings
from attune.grpcutil.reconnect import keep_session
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.results import clip_error, fit_result, result_limit

log = logging.getLogger(__name__)

# Space kept in each message for what is not a result's body.
_MESSAGE_MARGIN = 64 * 1024


class ResultSender:
    """`add(result)`; `on_acked(ids)` is called once results are durable at the completion service."""

    def __init__(
        self,
        stub: completion_pb2_grpc.CompletionServiceStub,
        settings: Settings,
        *,
        on_acked: Callable[[list[str]], None],
    ) -> None:
        self._stub = stub
        self._settings = settings
        self._on_acked = on_acked
        self._buffer: dict[str, completion_pb2.ExecutionResult] = {}  # every unacked result
        self._unsent: dict[str, None] = {}  # not yet written on the current stream, in order
        self._wake = asyncio.Event()
        self._all_acked = asyncio.Event()
        self._all_acked.set()
        self._loop = BackgroundTask("result-sender", self._run)
        self._stopping = False

    def add(self, result: completion_pb2.ExecutionResult) -> None:
        """Buffers a result for sending (cut down first if it would not fit in a message)."""
        limit = result_limit(self._settings.max_message_bytes)
        if len(result.result_json) > limit:
            result.result_json = fit_result(result.result_json, limit)
        result.error = clip_error(result.error, self._settings.max_message_bytes)
        self._buffer[result.execution_id] = result
        self._unsent[result.execution_id] = None
        self._all_acked.clear()
        self._wake.set()

    def unacked_ids(self) -> Iterable[str]:
        """Executions whose result is not yet acked."""
        return self._buffer.keys()

    def start(self) -> None:
        """Starts the stream loop."""
        self._loop.start()

    async def wait_all_acked(self) -> None:
        """Returns once nothing is waiting for an ack."""
        await self._all_acked.wait()

    async def close(self) -> None:
        """Stops the stream loop (unacked results are dropped; call `wait_all_acked` first)."""
        self._stopping = True
        await self._loop.stop()

    async def _run(self) -> None:
        await keep_session(
            self._session,
            retry=self._settings.retry_interval,
            stopping=lambda: self._stopping,
            describe_end=lambda err: (
                f"completion stream at {self._settings.completion_address} ended: "
                f"{err.code().name} {err.details()}; {len(self._buffer)} results to re-send"
            ),
            log=log,
            stream="SubmitResults",
        )

    async def _session(self) -> None:
        call = self._stub.SubmitResults(wait_for_ready=True)
        self._unsent = dict.fromkeys(self._buffer)  # a new stream: everything unacked goes again
        self._wake.set()
        receiver = asyncio.create_task(self._receive(call))
        sender = asyncio.create_task(self._send(call))
        try:
            done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in (receiver, sender):
                task.cancel()
            await asyncio.gather(receiver, sender, return_exceptions=True)
            call.cancel()

    async def _send(
        self, call: grpc.aio.StreamStreamCall[completion_pb2.SubmitResultsRequest, completion_pb2.SubmitResultsResponse]
    ) -> None:
        max_bytes = self._settings.max_message_bytes - _MESSAGE_MARGIN
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._unsent:
                batch: list[completion_pb2.ExecutionResult] = []
                size = 0
                for execution_id in list(self._unsent):
                    result = self._buffer.get(execution_id)
                    del self._unsent[execution_id]
                    if result is None:
                        continue  # acked meanwhile
                    item = result.ByteSize() + 8
                    if batch and size + item > max_bytes:
                        self._unsent = {execution_id: None, **self._unsent}
                        break
                    batch.append(result)
                    size += item
                if batch:
                    await call.write(completion_pb2.SubmitResultsRequest(results=batch))

    async def _receive(
        self, call: grpc.aio.StreamStreamCall[completion_pb2.SubmitResultsRequest, completion_pb2.SubmitResultsResponse]
    ) -> None:
        async for response in call:
            acked = [i for i in response.acked_execution_ids if self._buffer.pop(i, None) is not None]
            if not self._buffer:
                self._all_acked.set()
            if acked:
                self._on_acked(acked)
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "completion closed the stream"
        )
