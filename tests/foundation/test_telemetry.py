"""Trace context without exporting: hot paths make the traceparent themselves."""

from __future__ import annotations

import re

import pytest
from opentelemetry import trace

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
    from opentelemetry.sdk.trace import TracerProvider

    monkeypatch.setattr(telemetry, "_exporting", True)
    span, traceparent = telemetry.start_span(TracerProvider().get_tracer(__name__), "x", PARENT, {"a": 1})
    try:
        assert span.is_recording()
        context = span.get_span_context()
        assert format(context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
        assert traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
    finally:
        span.end()
