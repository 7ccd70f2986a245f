"""The spans of execution requests: each new execution's request span hangs under its execution
span, whose id the stored traceparent names; a retried request makes no second span."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from attune import telemetry
from attune.common.v1 import common_pb2
from attune.internal.execution.v1 import execution_pb2 as child_pb2
from attune.storage.schema import executions
from tests.scheduler.harness import Cluster

STEP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"  # the coordinator step's span


async def test_a_childs_request_span_and_execution_span_ids(core: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "_exporting", True)
    parent = await core.request("core.noop")
    request = child_pb2.RequestChildExecutionsRequest(
        children=[
            child_pb2.ChildExecutionRequest(
                action_ref="core.echo",
                parameters_json=json.dumps({"message": "hi"}).encode(),
                request_id="span-c1",
                parent_id=parent.id,
                link=common_pb2.WorkflowLink(
                    workflow_execution_id=parent.id, task_name="echo", run=1, item_index=-1, attempt=1
                ),
                trace=common_pb2.TraceContext(traceparent=STEP),
                depth=1,
            )
        ]
    )
    [child] = (await core.children.RequestChildExecutions(request)).children
    [again] = (await core.children.RequestChildExecutions(request)).children  # the coordinator retries
    assert again.execution_id == child.execution_id
    exporter.shutdown()
    async with core.scheduler.db.read() as conn:
        query = sa.select(executions.c.traceparent, executions.c.created_at).where(
            executions.c.id == child.execution_id
        )
        stored, created_at = (await conn.execute(query)).one()
    # The stored traceparent names the execution span, whose parent is the step.
    assert telemetry.trace_id_of(stored) == telemetry.trace_id_of(STEP)
    assert telemetry.execution_span_parent(stored, child.execution_id) == 0xB7AD6B7169203331
    # One: the retry made no execution, so no span either (nor one under an execution that never is).
    [span] = [s for s in exporter.get_finished_spans() if s.name == "execution.request"]
    assert (span.attributes or {})["attune.execution.id"] == child.execution_id
    assert span.name == "execution.request" and span.kind == trace.SpanKind.CONSUMER
    assert span.parent is not None and f"{span.parent.span_id:016x}" == stored.split("-")[2]
    assert span.start_time == int(created_at * 1e9)
    assert (span.attributes or {})["messaging.system"] == "attune"
