"""The spans of execution requests: each new execution's request span hangs under its execution
span, whose id the stored traceparent names; a retried request makes no second span. The calls
that act on an execution (cancel, pause, resume, respond, re-run) each make a SERVER span under it
and log who made them."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from attune import telemetry
from attune.common.v1 import common_pb2
from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import struct_from_dict
from attune.internal.execution.v1 import execution_pb2 as child_pb2
from attune.security import caller
from attune.security.policy import Role
from attune.storage.schema import executions
from attune_services.scheduler import interventions
from tests.scheduler.harness import Cluster

STEP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"  # the coordinator step's span


def _exported(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Spans go to the returned in-memory exporter for the rest of the test."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "_exporting", True)
    return exporter


async def test_a_childs_request_span_and_execution_span_ids(core: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = _exported(monkeypatch)
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


async def _traceparent(core: Cluster, execution_id: str) -> str:
    async with core.scheduler.db.read() as conn:
        query = sa.select(executions.c.traceparent).where(executions.c.id == execution_id)
        return str((await conn.execute(query)).scalar_one())


async def test_each_call_on_an_execution_has_its_server_span_under_the_execution(
    core: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = _exported(monkeypatch)
    x = core.executions
    ask = await core.request("core.ask", {"prompt": "Deploy?"})
    await x.RespondToExecution(
        execution_pb2.RespondToExecutionRequest(id=ask.id, answer=struct_from_dict({"approved": True}))
    )
    ended = await core.request("core.noop")
    await core.submit_result(ended.id, "succeeded")
    await core.wait_state(ended.id, "succeeded")
    rerun = (await x.RerunExecution(execution_pb2.RerunExecutionRequest(id=ended.id, request_id="rr-1"))).execution
    await x.RerunExecution(execution_pb2.RerunExecutionRequest(id=ended.id, request_id="rr-1"))  # a retry
    # A workflow as the coordinator left it paused: pausing it again, then resuming it once it
    # runs, are answered by the scheduler alone (the fake coordinator runs no workflows).
    flow = await core.request("core.noop")
    async with core.scheduler.db.write() as conn:
        await conn.execute(
            executions.update()
            .where(executions.c.id == flow.id)
            .values(runner_type="workflow", state="paused", started_at=time.time())
        )
    await x.PauseExecution(execution_pb2.PauseExecutionRequest(id=flow.id))
    async with core.scheduler.db.write() as conn:
        await conn.execute(executions.update().where(executions.c.id == flow.id).values(state="running"))
    await x.ResumeExecution(execution_pb2.ResumeExecutionRequest(id=flow.id))
    waiting = await core.request("core.noop")
    await x.CancelExecution(execution_pb2.CancelExecutionRequest(id=waiting.id))
    exporter.shutdown()

    service = "attune.execution.v1.ExecutionService"
    expected = {
        "RespondToExecution": ask.id,
        "RerunExecution": rerun.id,
        "PauseExecution": flow.id,
        "ResumeExecution": flow.id,
        "CancelExecution": waiting.id,
    }
    spans = {s.name: s for s in exporter.get_finished_spans() if s.name.startswith(f"{service}/")}
    for method, execution_id in expected.items():
        assert [s.name for s in exporter.get_finished_spans()].count(f"{service}/{method}") == 1, method
        span = spans[f"{service}/{method}"]
        attributes: dict[str, Any] = dict(span.attributes or {})
        assert span.kind == trace.SpanKind.SERVER
        assert attributes["rpc.system"] == "grpc" and attributes["rpc.service"] == service
        assert attributes["rpc.method"] == method and attributes["attune.execution.id"] == execution_id
        stored = await _traceparent(core, execution_id)
        assert span.parent is not None and f"{span.parent.span_id:016x}" == stored.split("-")[2], method
        assert f"{span.context.trace_id:032x}" == telemetry.trace_id_of(stored)
        assert span.end_time is not None and span.start_time is not None and span.start_time <= span.end_time
    assert dict(spans[f"{service}/RerunExecution"].attributes or {})["attune.execution.rerun_of"] == ended.id


def test_the_caller_of_a_call_is_logged_and_no_span_is_made_with_tracing_off(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = _exported(monkeypatch)
    monkeypatch.setattr(telemetry, "_exporting", False)
    row = {"id": "ex-1", "traceparent": STEP}
    token = caller.set_current(caller.Caller(name="alice", role=Role.OPERATOR))
    try:
        with caplog.at_level(logging.INFO, logger=interventions.__name__):
            interventions.record("PauseExecution", row, start=time.time())
            interventions.record("RerunExecution", {"id": "ex-2"}, start=time.time(), rerun_of="ex-1")
    finally:
        caller.reset(token)
    with caplog.at_level(logging.INFO, logger=interventions.__name__):
        interventions.record("ResumeExecution", row, start=time.time())  # security off: nobody
    pause, rerun, resume = [r for r in caplog.records if r.name == interventions.__name__]
    assert pause.getMessage() == "PauseExecution of execution ex-1 by 'alice'"
    assert (pause.__dict__["caller"], pause.__dict__["operation"], pause.__dict__["execution_id"]) == (
        "alice",
        "PauseExecution",
        "ex-1",
    )
    assert rerun.getMessage() == "RerunExecution of execution ex-1 by 'alice': execution ex-2"
    assert rerun.__dict__["rerun_of"] == "ex-1" and rerun.__dict__["execution_id"] == "ex-2"
    assert resume.getMessage() == "ResumeExecution of execution ex-1 by an unauthenticated caller"
    assert resume.__dict__["caller"] == ""
    exporter.shutdown()
    assert exporter.get_finished_spans() == ()  # tracing off: nothing made
