"""CompletionService: results arrive (as stream batches or one at a time), are stored, then acked.

Everything in a batch is acknowledged once the batch is durable: new results, duplicates, results
for executions that had already ended, and ones that cannot be stored at all (unknown execution,
non-terminal state) — re-sending those would never change anything. If storing fails, the stream
is ended with UNAVAILABLE so the sender reconnects and re-sends what was not acked.

Acks are gathered (`attune.grpcutil.acks`): a worker finishing one execution at a time gets one
response per ACK_LINGER_S, not one per result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from attune.config import Settings
from attune.grpcutil.acks import gathered_acks
from attune.grpcutil.convert import execution_state_from_proto, execution_state_to_proto
from attune.grpcutil.errors import InvalidArgument, NotFound, Violation, rpc_errors, status_for
from attune.grpcutil.server import RpcContext
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.logs import ThrottledLog
from attune.results import clip_error, fit_result, result_limit
from attune.states import TERMINAL
from attune.telemetry import exporting, messaging_attributes, rpc_attributes, sampled, start_span, tracer
from attune_services.completion.feed import CompletionFeed
from attune_services.completion.spans import ExecutionSpans
from attune_services.completion.store import ResultStore, StoreOutcome, TerminalResult

log = logging.getLogger(__name__)
_truncations = ThrottledLog(log)
_tracer = tracer(__name__)
_SERVICE = completion_pb2.DESCRIPTOR.services_by_name["CompletionService"].full_name
_RESULTS_STREAM = f"{_SERVICE}/SubmitResults"


def result_bytes_limit(settings: Settings) -> int:
    """The largest result stored whole: ATTUNE_MAX_RESULT_BYTES, and no more than fits in a
    message. Its default leaves room for a shell action's stdout and stderr, each up to
    ATTUNE_OUTPUT_LIMIT_BYTES."""
    return min(settings.max_result_bytes, result_limit(settings.max_message_bytes))


class NotTerminal(ValueError):
    """A result whose state is not a terminal state."""


def terminal_result_of(message: completion_pb2.ExecutionResult, settings: Settings) -> TerminalResult:
    """Validates and normalises one result; raises NotTerminal for a state that is not terminal
    (or not a state at all). A result beyond the limit is cut down and marked "truncated"."""
    try:
        state = execution_state_from_proto(message.state)
    except ValueError:
        state = ""
    if state not in TERMINAL:
        shown = state or ("unspecified" if not message.state else str(message.state))
        raise NotTerminal(f'result for execution {message.execution_id} has state "{shown}", which is not terminal')
    result = None
    if message.result_json:
        # A workflow's result comes from the coordinator, on a call allowed to carry more.
        workflow = message.reporter == "coordinator"
        limit = settings.max_workflow_result_bytes if workflow else result_bytes_limit(settings)
        fitted = fit_result(message.result_json, limit)
        if len(fitted) < len(message.result_json):
            _truncations.warning(
                "result truncated",
                "result of execution %s is %d bytes, more than the limit of %d: stored truncated",
                message.execution_id,
                len(message.result_json),
                limit,
            )
        result = fitted.decode("utf-8", "replace")
    return TerminalResult(
        execution_id=message.execution_id,
        state=state,
        result=result,
        error=clip_error(message.error, settings.max_message_bytes) or None,
        started_at=message.started_at or None,
        finished_at=message.finished_at or time.time(),
        reporter=message.reporter,
    )


class CompletionServicer(completion_pb2_grpc.CompletionServiceServicer):
    """Serves attune.internal.completion.v1.CompletionService over a `ResultStore`."""

    def __init__(
        self,
        store: ResultStore,
        settings: Settings,
        *,
        feed: CompletionFeed | None = None,
        spans: ExecutionSpans | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._feed = feed or CompletionFeed()
        self._spans = spans  # set only while spans are exported
        self._streams: set[asyncio.Queue[list[str] | BaseException | None]] = set()
        self._storing: set[asyncio.Task[None]] = set()

    async def end_streams(self) -> None:
        """Acks what is being stored, then ends every result stream, so senders move to another
        replica (or wait for this one) without waiting for the server's grace period."""
        if self._storing:
            await asyncio.gather(*self._storing, return_exceptions=True)
        for acks in self._streams:
            acks.put_nowait(None)

    @rpc_errors
    async def SubmitResults(
        self,
        request_iterator: AsyncIterator[completion_pb2.SubmitResultsRequest],
        context: RpcContext,
    ) -> AsyncIterator[completion_pb2.SubmitResultsResponse]:
        """Stores each batch as it arrives (batches overlap) and acks it once durable."""
        acks: asyncio.Queue[list[str] | BaseException | None] = asyncio.Queue()
        self._streams.add(acks)
        reader = asyncio.create_task(self._read_batches(request_iterator, acks))
        try:
            async for item in gathered_acks(acks):
                if item is None:
                    return
                if isinstance(item, BaseException):
                    # Logged as its kind needs (an outage once per interval, a bug with an error
                    # id); whatever it was, the batch is not stored and the sender re-sends it.
                    status = status_for(item, method="SubmitResults")
                    await context.abort(grpc.StatusCode.UNAVAILABLE, f"results not stored: {status.details}")
                    return
                yield completion_pb2.SubmitResultsResponse(acked_execution_ids=item)
        finally:
            self._streams.discard(acks)
            reader.cancel()

    async def _read_batches(
        self,
        request_iterator: AsyncIterator[completion_pb2.SubmitResultsRequest],
        acks: asyncio.Queue[list[str] | BaseException | None],
    ) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        try:
            async for request in request_iterator:
                task = asyncio.create_task(self._store_batch(request.results, acks))
                for tracked in (in_flight, self._storing):
                    tracked.add(task)
                    task.add_done_callback(tracked.discard)
            if in_flight:
                await asyncio.gather(*in_flight)
            acks.put_nowait(None)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.debug("result stream ended: %s", err)
            acks.put_nowait(None)

    async def _store_batch(
        self,
        results: Sequence[completion_pb2.ExecutionResult],
        acks: asyncio.Queue[list[str] | BaseException | None],
    ) -> None:
        try:
            await self._store_results(results)
        except Exception as err:
            acks.put_nowait(err)  # logged by SubmitResults as it ends the stream
            return
        acks.put_nowait([r.execution_id for r in results])

    async def _store_results(self, results: Sequence[completion_pb2.ExecutionResult]) -> list[StoreOutcome]:
        prepared: list[TerminalResult] = []
        spans = []
        for message in results:
            try:
                prepared.append(terminal_result_of(message, self._settings))
            except NotTerminal as err:
                log.warning("%s; ignored", err, extra={"reporter": message.reporter})
                continue
            spans.append(_complete_span(message))
        try:
            outcomes = await self._store.store_many(prepared)
        except BaseException as err:
            for span in spans:
                span.record_exception(err)
                span.end()
            raise
        for span, outcome in zip(spans, outcomes, strict=True):
            span.set_attribute("attune.result.applied", outcome.applied)
            span.end()
        if self._spans is not None:  # the executions now ended, of sampled traces
            traced = {m.execution_id for m in results if sampled(m.trace.traceparent)}
            self._spans.ended(
                p.execution_id for p, o in zip(prepared, outcomes, strict=True) if o.state and p.execution_id in traced
            )
        return list(outcomes)

    @rpc_errors
    async def WatchCompleted(
        self, request: completion_pb2.WatchCompletedRequest, context: RpcContext
    ) -> AsyncIterator[completion_pb2.WatchCompletedResponse]:
        """Each commit's newly terminal executions, from now on (see `feed.py`)."""
        # Headers go out at once: the subscriber learns it is subscribed before any commit.
        await context.send_initial_metadata(())
        async for message in self._feed.subscribe():
            yield message

    @rpc_errors
    async def SubmitResult(
        self, request: completion_pb2.SubmitResultRequest, context: RpcContext
    ) -> completion_pb2.SubmitResultResponse:
        """Stores one result; NOT_FOUND for an unknown execution, INVALID_ARGUMENT for a
        non-terminal state or a missing execution id."""
        message = request.result
        if not message.execution_id:
            raise InvalidArgument("result has no execution id", [Violation("result.execution_id", "must not be empty")])
        try:
            prepared = terminal_result_of(message, self._settings)
        except NotTerminal as err:
            raise InvalidArgument(str(err), [Violation("result.state", "must be a terminal state")]) from err
        span = _complete_span(message, stream=False)
        try:
            outcome = await self._store.store(prepared)
        finally:
            span.end()
        if not outcome.state:
            raise NotFound(f"execution {message.execution_id} not found")
        if self._spans is not None and sampled(message.trace.traceparent):
            self._spans.ended([prepared.execution_id])
        return completion_pb2.SubmitResultResponse(
            applied=outcome.applied, state=execution_state_to_proto(outcome.state)
        )


def _complete_span(message: completion_pb2.ExecutionResult, *, stream: bool = True) -> trace.Span:
    """The span storing one result, in the execution's trace: a message processed from the
    SubmitResults stream (CONSUMER) or the SubmitResult call (SERVER)."""
    if not exporting():
        return trace.INVALID_SPAN
    attributes: dict[str, str | int | float | bool] = {
        "attune.execution.id": message.execution_id,
        "attune.execution.state": execution_state_from_proto(message.state),
        "attune.result.reporter": message.reporter,
    }
    if stream:
        attributes.update(messaging_attributes("process", _RESULTS_STREAM, message_id=message.execution_id))
        name, kind = "execution.complete", SpanKind.CONSUMER
    else:
        attributes.update(rpc_attributes(_SERVICE, "SubmitResult"))
        name, kind = f"{_SERVICE}/SubmitResult", SpanKind.SERVER
    span, _ = start_span(_tracer, name, message.trace.traceparent, attributes, kind=kind)
    return span
