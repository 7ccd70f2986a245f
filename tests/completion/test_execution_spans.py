"""Execution spans: written by the completion service once an execution has ended, from its row."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from attune import telemetry
from attune.common.v1 import common_pb2
from attune.config import Settings
from attune.grpcutil.channel import open_channel
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.storage import Database
from attune.storage.schema import executions
from attune_services.completion.app import CompletionApp
from tests.completion.completiontools import CompletionServer, execution_row, insert_execution
from tests.completion.test_completion_results import ResultStream, S, result
from tests.support.polling import eventually

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _exporter() -> InMemorySpanExporter:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def _execution_spans(exporter: InMemorySpanExporter, execution_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.name == "attune.execution" and (s.attributes or {}).get("attune.execution.id") == execution_id
    ]


async def test_an_ended_execution_gets_its_span_and_a_resent_result_the_same_span(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    untraced = CompletionApp(settings)
    assert untraced.spans is None  # tracing off: nothing on the path
    await untraced.db.close()
    exporter = _exporter()
    monkeypatch.setattr(telemetry, "_exporting", True)
    server = CompletionServer(settings)
    await server.start()
    try:
        execution_id = await insert_execution(db, task_name="build", task_run=1, attempt=2)
        traceparent = telemetry.execution_traceparent(PARENT, execution_id)
        async with db.write() as conn:
            await conn.execute(
                sa.update(executions).where(executions.c.id == execution_id).values(traceparent=traceparent)
            )
        run = telemetry.child_traceparent(traceparent)  # the run span that sends the result
        failed = result(
            execution_id,
            S.EXECUTION_STATE_FAILED,
            error="exit code 3",
            finished_at=time.time() + 1,
            trace=common_pb2.TraceContext(traceparent=run),
        )
        stream = ResultStream(server.address, settings)
        try:
            assert await stream.submit(failed, result("0" * 32)) == {execution_id, "0" * 32}
        finally:
            await stream.close()
        [span] = await eventually(lambda: _execution_spans(exporter, execution_id) or None, what="the span")
        row = await execution_row(db, execution_id)
        assert span.context is not None and span.parent is not None
        assert f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01" == traceparent
        assert span.parent.span_id == 0xB7AD6B7169203331
        assert (span.start_time, span.end_time) == (int(row.created_at * 1e9), int(row.finished_at * 1e9))
        assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, "exit code 3")
        attributes = dict(span.attributes or {})
        assert (attributes["attune.task.name"], attributes["attune.task.attempt"]) == ("build", 2)
        # The sender missed the ack (the service stopped in between) and sends the result again:
        # the span is written again, the same span, so one lost in the stop is not lost.
        async with open_channel(server.address, settings) as channel:
            stub = completion_pb2_grpc.CompletionServiceStub(channel)
            again = await stub.SubmitResult(completion_pb2.SubmitResultRequest(result=failed))
        assert not again.applied
        first, second = await eventually(
            lambda: spans if len(spans := _execution_spans(exporter, execution_id)) == 2 else None, what="the copy"
        )
        assert (second.context, second.parent, second.start_time, second.end_time, second.status.description) == (
            first.context,
            first.parent,
            first.start_time,
            first.end_time,
            first.status.description,
        )
        assert not _execution_spans(exporter, "0" * 32)  # no execution, no span
        # An execution of a trace the sampler dropped gets none.
        unsampled = await insert_execution(db, traceparent=telemetry.execution_traceparent("", "x")[:-2] + "00")
        dropped = result(unsampled, trace=common_pb2.TraceContext(traceparent=run[:-2] + "00"))
        async with open_channel(server.address, settings) as channel:
            stub = completion_pb2_grpc.CompletionServiceStub(channel)
            assert (await stub.SubmitResult(completion_pb2.SubmitResultRequest(result=dropped))).applied
    finally:
        await server.stop()  # drains: what was queued is written
        exporter.shutdown()
    assert not _execution_spans(exporter, unsampled)
