"""Trace context without exporting: hot paths make the traceparent themselves."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from attune import telemetry

TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_child_traceparent_keeps_the_parents_trace_with_a_new_span() -> None:
    child = telemetry.child_traceparent(PARENT)
    assert TRACEPARENT.match(child)
    assert telemetry.trace_id_of(child) == "0af7651916cd43dd8448eb211c80319c"
    assert child.split("-")[2] != PARENT.split("-")[2]
    assert telemetry.child_traceparent(PARENT) != child  # every span id is new


def test_child_traceparent_starts_a_new_trace_without_a_valid_parent() -> None:
    for parent in ("", "garbage", "00-" + "0" * 32 + "-b7ad6b7169203331-01"):
        child = telemetry.child_traceparent(parent)
        assert TRACEPARENT.match(child), parent
        assert telemetry.trace_id_of(child) != "0" * 32
    assert telemetry.trace_id_of(telemetry.child_traceparent("")) != telemetry.trace_id_of(
        telemetry.child_traceparent("")
    )


def test_start_span_without_export_is_a_no_op_span_in_the_parents_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "_exporting", False)
    span, traceparent = telemetry.start_span(telemetry.tracer(__name__), "x", PARENT, {"a": 1})
    assert span is trace.INVALID_SPAN and not span.is_recording()
    assert telemetry.trace_id_of(traceparent) == "0af7651916cd43dd8448eb211c80319c"


def test_start_span_while_exporting_records_a_child_span(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "_exporting", True)
    span, traceparent = telemetry.start_span(TracerProvider().get_tracer(__name__), "x", PARENT, {"a": 1})
    try:
        assert span.is_recording()
        context = span.get_span_context()
        assert format(context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
        assert traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
    finally:
        span.end()


def test_an_execution_span_id_gives_back_its_parent() -> None:
    child = telemetry.execution_traceparent(PARENT, "0190aa00000000000000000000000001")
    assert TRACEPARENT.match(child) and telemetry.trace_id_of(child) == telemetry.trace_id_of(PARENT)
    assert telemetry.execution_traceparent(PARENT, "0190aa00000000000000000000000001") == child  # deterministic
    assert telemetry.execution_span_parent(child, "0190aa00000000000000000000000001") == 0xB7AD6B7169203331
    assert telemetry.execution_span_parent(child, "0190aa00000000000000000000000002") != 0xB7AD6B7169203331
    top = telemetry.execution_traceparent("", "0190aa00000000000000000000000001")
    assert TRACEPARENT.match(top) and telemetry.execution_span_parent(top, "0190aa00000000000000000000000001") == 0


def _recording_provider(monkeypatch: pytest.MonkeyPatch) -> tuple[TracerProvider, InMemorySpanExporter]:
    monkeypatch.setattr(telemetry, "_exporting", True)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_an_ended_execution_span_has_its_stored_ids_times_and_error(monkeypatch: pytest.MonkeyPatch) -> None:
    provider, exporter = _recording_provider(monkeypatch)
    execution_id = "0190aa00000000000000000000000001"
    traceparent = telemetry.execution_traceparent(PARENT, execution_id)
    workflow_id = "0190aa00000000000000000000000000"
    ended = telemetry.EndedExecution(
        execution_id, traceparent, "core.local", "timeout", "timed out after 1s", 100.0, 102.5,
        workflow_execution_id=workflow_id, task_name="deploy", task_run=2, item_index=0, attempt=1,
    )  # fmt: skip
    assert telemetry.record_execution_span(ended, provider=provider)
    assert telemetry.record_execution_span(ended, provider=provider)  # written again: the same span
    first, again = exporter.get_finished_spans()
    assert first.context is not None and first.parent is not None
    assert f"00-{first.context.trace_id:032x}-{first.context.span_id:016x}-01" == traceparent
    assert first.parent.span_id == 0xB7AD6B7169203331 and first.kind == trace.SpanKind.INTERNAL
    assert (first.name, first.start_time, first.end_time) == ("attune.execution", 100 * 10**9, int(102.5 * 10**9))
    assert (first.status.status_code, first.status.description) == (StatusCode.ERROR, "timed out after 1s")
    assert dict(first.attributes or {}) == {
        "attune.execution.id": execution_id,
        "attune.action.ref": "core.local",
        "attune.execution.state": "timeout",
        "attune.workflow.execution.id": workflow_id,
        "attune.task.name": "deploy",
        "attune.task.run": 2,
        "attune.task.item": 0,
        "attune.task.attempt": 1,
    }
    assert (again.context, again.parent, again.start_time, again.end_time) == (
        first.context, first.parent, first.start_time, first.end_time,
    )  # fmt: skip
    # Ids chosen for the execution span only: the next span gets random ones.
    assert telemetry._execution_ids.generate_span_id() != first.context.span_id


def test_a_succeeded_top_level_execution_span_is_a_root_with_no_status(monkeypatch: pytest.MonkeyPatch) -> None:
    provider, exporter = _recording_provider(monkeypatch)
    execution_id = "0190aa00000000000000000000000003"
    traceparent = telemetry.execution_traceparent("", execution_id)
    ended = telemetry.EndedExecution(execution_id, traceparent, "core.noop", "succeeded", "", 5.0, 5.001)
    assert telemetry.record_execution_span(ended, provider=provider)
    [span] = exporter.get_finished_spans()
    assert span.parent is None and span.status.status_code == StatusCode.UNSET
    assert span.context is not None and format(span.context.trace_id, "032x") == telemetry.trace_id_of(traceparent)
    unsampled = dataclasses.replace(ended, traceparent=traceparent[:-2] + "00")
    assert not telemetry.record_execution_span(unsampled, provider=provider)  # its trace was not sampled
    monkeypatch.setattr(telemetry, "_exporting", False)
    assert not telemetry.record_execution_span(ended, provider=provider)  # nothing exported: nothing made
    assert len(exporter.get_finished_spans()) == 1


def test_service_name_is_the_services_own_unless_otel_service_name_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert telemetry.service_resource("completion").attributes["service.name"] == "attune-completion"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes,team=ops")
    assert telemetry.service_resource("completion").attributes["service.name"] == "from-attributes"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "results-eu")
    assert telemetry.service_resource("completion").attributes["service.name"] == "results-eu"


def test_trace_file_lines_carry_times_kind_and_status(tmp_path: Path) -> None:
    provider = TracerProvider()
    path = tmp_path / "spans.jsonl"
    provider.add_span_processor(SimpleSpanProcessor(telemetry.JsonLinesSpanExporter(str(path), "worker")))
    span = provider.get_tracer(__name__).start_span("execution.run", kind=trace.SpanKind.CONSUMER, start_time=10**9)
    span.set_status(StatusCode.ERROR, "exit code 3")
    span.end(end_time=3 * 10**9)
    [line] = [json.loads(text) for text in path.read_text().splitlines()]
    assert (line["name"], line["kind"], line["service"]) == ("execution.run", "CONSUMER", "worker")
    assert (line["start"], line["end"], line["status"], line["status_message"]) == (1.0, 3.0, "ERROR", "exit code 3")


def test_sampled_reads_the_sampled_flag() -> None:
    assert telemetry.sampled(PARENT) and telemetry.sampled(PARENT[:-2] + "03")
    assert not telemetry.sampled(PARENT[:-2] + "00") and not telemetry.sampled("") and not telemetry.sampled("garbage")
