"""Child requests to the scheduler on one long-lived StreamChildExecutions stream.

Each batch is one message; the scheduler answers it with one message carrying the same batch_id.
On a 200-step chain the unary RequestChildExecutions call cost ~0.85 ms from send to the
scheduler's handler, against ~0.35 ms for a message on an open stream (measured here). The
stream is opened on first use and again after it breaks; a batch that gets no answer (broken
stream, deadline, the scheduler refusing the batch as a whole) raises, and the caller sends it
again later: children are idempotent on their request_id. A scheduler without the stream method
(an older version during a rolling upgrade) is asked with the unary call instead.

A stream's status ends every batch in flight on it, whichever batch caused it; `request_one`
asks for one child in a unary call of its own, whose status is that child's alone (the caller
uses it to tell which child of a failed batch the scheduler cannot take).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from attune.internal.execution.v1 import execution_pb2 as child_pb2
from attune.internal.execution.v1 import execution_pb2_grpc as child_pb2_grpc
from attune.logs import ThrottledLog

log = logging.getLogger(__name__)
# A scheduler that is down breaks every stream opened while it is: one line per interval.
_breaks = ThrottledLog(log)

Answers = list[child_pb2.ChildExecutionResponse]


def _unavailable(details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@dataclass(eq=False)
class _Stream:
    """One open stream and the batches sent on it that are not answered yet."""

    call: grpc.aio.StreamStreamCall[child_pb2.StreamChildExecutionsRequest, child_pb2.StreamChildExecutionsResponse]
    waiting: dict[int, asyncio.Future[Answers]] = field(default_factory=dict)
    # One write at a time: grpc.aio does not support concurrent writes on a call (two batches
    # written at once could leave a write waiting forever on a fan-out's first stream).
    writing: asyncio.Lock = field(default_factory=asyncio.Lock)
    receiver: asyncio.Task[None] | None = None
    broken: grpc.aio.AioRpcError | None = None


class ChildRequester:
    """`await request(children)` → one answer per child, in order."""

    def __init__(self, scheduler: child_pb2_grpc.ChildExecutionServiceStub, *, deadline: float) -> None:
        self._scheduler = scheduler
        self._deadline = deadline
        self._stream: _Stream | None = None
        self._batch_ids = itertools.count(1)
        self._unary = False

    async def request(self, children: Sequence[child_pb2.ChildExecutionRequest]) -> Answers:
        """Asks for the children; raises grpc.aio.AioRpcError when the batch was not answered."""
        if self._unary:
            return await self._request_unary(children)
        stream = self._open()
        batch_id = next(self._batch_ids)
        answered: asyncio.Future[Answers] = asyncio.get_running_loop().create_future()
        stream.waiting[batch_id] = answered
        message = child_pb2.StreamChildExecutionsRequest(batch_id=batch_id, children=children)
        try:
            try:
                async with asyncio.timeout(self._deadline):
                    async with stream.writing:
                        await stream.call.write(message)
                    return await answered
            except asyncio.InvalidStateError as err:  # the call had ended (its status is not an error)
                raise _unavailable("the child request stream had ended") from err
            except TimeoutError as err:
                if not answered.done():  # not even written, or no answer: the stream is suspect
                    stream.call.cancel()
                raise grpc.aio.AioRpcError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.aio.Metadata(),
                    grpc.aio.Metadata(),
                    f"no answer to {len(children)} child requests within {self._deadline:g}s",
                ) from err
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            log.info("the scheduler has no StreamChildExecutions; using RequestChildExecutions")
            self._unary = True
            return await self._request_unary(children)
        finally:
            stream.waiting.pop(batch_id, None)

    async def request_one(self, child: child_pb2.ChildExecutionRequest) -> child_pb2.ChildExecutionResponse:
        """Asks for one child in a unary call of its own: an error it raises is about this child
        (or the scheduler's state), never another batch's."""
        (answer,) = await self._request_unary([child])
        return answer

    async def close(self) -> None:
        """Ends the stream; unanswered batches raise."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.call.cancel()
            if stream.receiver is not None:
                stream.receiver.cancel()
                await asyncio.gather(stream.receiver, return_exceptions=True)
            self._fail(stream, _unavailable("the coordinator is stopping"))

    async def _request_unary(self, children: Sequence[child_pb2.ChildExecutionRequest]) -> Answers:
        response = await self._scheduler.RequestChildExecutions(
            child_pb2.RequestChildExecutionsRequest(children=children), timeout=self._deadline
        )
        return list(response.children)

    def _open(self) -> _Stream:
        if self._stream is None or self._stream.broken is not None:
            stream = _Stream(self._scheduler.StreamChildExecutions())
            stream.receiver = asyncio.create_task(self._receive(stream), name="coordinator-child-answers")
            self._stream = stream
        return self._stream

    async def _receive(self, stream: _Stream) -> None:
        try:
            async for response in stream.call:
                answered = stream.waiting.get(response.batch_id)
                if answered is not None and not answered.done():
                    answered.set_result(list(response.children))
            error = _unavailable("the scheduler ended the child request stream")
        except grpc.aio.AioRpcError as err:
            error = err
        if error.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNIMPLEMENTED):
            _breaks.warning(
                "child request stream ended", "child request stream ended: %s %s", error.code().name, error.details()
            )
        self._fail(stream, error)

    def _fail(self, stream: _Stream, error: grpc.aio.AioRpcError) -> None:
        stream.broken = error
        if self._stream is stream:
            self._stream = None
        for answered in stream.waiting.values():
            if not answered.done():
                answered.set_exception(error)
