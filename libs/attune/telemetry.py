"""OpenTelemetry tracing: one trace per top-level execution, context carried inside messages.

Export follows the standard OTEL_* variables (OTEL_TRACES_EXPORTER=otlp|console, or an
OTEL_EXPORTER_OTLP_* endpoint; OTEL_SERVICE_NAME, OTEL_BSP_*); with none set nothing is exported
and nothing is logged. ATTUNE_TRACE_FILE additionally appends finished spans as JSON lines (used by
the tests and handy for debugging without a collector).

Each execution has one `attune.execution` span covering its whole life, from request to terminal
state. It cannot be held open across services, so it is written once, by the completion service
when the execution ends (`record_execution_span`), with the ids fixed when it was requested
(`execution_traceparent`): the execution's stored traceparent names that span, so every span made
before it ends — the request, the run, a workflow's steps — already hangs under it. Its span id is
its parent's span id XOR a hash of the execution id, so the parent (the workflow step that created
a task) is recovered from the stored traceparent alone. docs/operations.md, Tracing, has the tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
_exporting = False  # set by configure_tracing when some processor exports finished spans

#: The name of the span covering one execution's life.
EXECUTION_SPAN = "attune.execution"
#: `messaging.system` of the messages Attune's services carry on their own gRPC streams.
MESSAGING_SYSTEM = "attune"

Attributes = Mapping[str, str | int | float | bool]


def rpc_attributes(service: str, method: str) -> dict[str, str]:
    """The RPC semantic-convention attributes of a gRPC call (`service` in full, with package)."""
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}


def messaging_attributes(operation: str, destination: str, *, message_id: str = "") -> dict[str, str]:
    """The messaging semantic-convention attributes of one message carried on a stream:
    `operation` is "send" (PRODUCER) or "process" (CONSUMER); `destination` names the stream."""
    attributes = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": destination,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    return attributes


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span as one JSON line: name, kind, service, trace_id, span_id,
    parent_id, start and end (Unix seconds), status ("UNSET", "OK" or "ERROR") and its message,
    attributes."""

    def __init__(self, path: str, service: str) -> None:
        self.path = path
        self.service = service
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            ctx = span.get_span_context()
            assert ctx is not None  # the SDK gives every span it ends a context
            lines.append(
                json.dumps(
                    {
                        "name": span.name,
                        "service": self.service,
                        "trace_id": format(ctx.trace_id, "032x"),
                        "span_id": format(ctx.span_id, "016x"),
                        "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
                        "kind": span.kind.name,
                        "start": (span.start_time or 0) / 1e9,
                        "end": (span.end_time or 0) / 1e9,
                        "status": span.status.status_code.name,
                        "status_message": span.status.description or "",
                        "attributes": dict(span.attributes or {}),
                    }
                )
            )
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        return SpanExportResult.SUCCESS


class _ChosenIds(RandomIdGenerator):
    """Random ids, except while `chosen` holds the ids of a span being written after the fact
    (the execution span, whose ids were fixed when the execution was requested)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def chosen(self, trace_id: int, span_id: int) -> None:
        self._local.ids = (trace_id, span_id)

    def clear(self) -> None:
        self._local.ids = None

    def generate_trace_id(self) -> int:
        ids: tuple[int, int] | None = getattr(self._local, "ids", None)
        return ids[0] if ids else super().generate_trace_id()

    def generate_span_id(self) -> int:
        ids: tuple[int, int] | None = getattr(self._local, "ids", None)
        return ids[1] if ids else super().generate_span_id()


def service_resource(service: str) -> Resource:
    """The process's resource: `service.name` from OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES),
    else `attune-<service>`."""
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": f"attune-{service}"}))
    return resource


def configure_tracing(service: str, *, trace_file: str = "") -> None:
    """Installs the global tracer provider for a service process."""
    provider = TracerProvider(resource=service_resource(service))
    exporter_names = os.environ.get("OTEL_TRACES_EXPORTER", "")
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    processors: list[SpanProcessor] = []
    if "otlp" in exporter_names or (endpoint and "none" not in exporter_names):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        processors.append(BatchSpanProcessor(OTLPSpanExporter()))
    if "console" in exporter_names:
        processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
    if trace_file:
        processors.append(SimpleSpanProcessor(JsonLinesSpanExporter(trace_file, service)))
    for processor in processors:
        provider.add_span_processor(processor)
    global _exporting
    _exporting = bool(processors)
    trace.set_tracer_provider(provider)


def child_traceparent(parent: str) -> str:
    """The `traceparent` of a new span under ``parent`` (a new trace when it is empty or
    malformed), made without the SDK: what a hot path stores when no span is exported."""
    parts = parent.split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
        trace_id = parts[1]
    else:
        trace_id = f"{random.getrandbits(128) or 1:032x}"
    return f"00-{trace_id}-{random.getrandbits(64) or 1:016x}-01"


def exporting() -> bool:
    """Whether finished spans go anywhere (an exporter or the trace file is configured)."""
    return _exporting


def start_span(
    span_tracer: trace.Tracer,
    name: str,
    parent: str,
    attributes: Attributes,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
) -> tuple[trace.Span, str]:
    """Starts a span under the ``parent`` traceparent; returns it (the caller ends it) and its
    own traceparent. When nothing is exported the span is a no-op and only the traceparent is
    made: the SDK's span, context and propagator cost ~0.2 ms per execution on every hot path
    (two thirds of a workflow child's request in the scheduler, measured)."""
    if not _exporting:
        return trace.INVALID_SPAN, child_traceparent(parent)
    span = span_tracer.start_span(name, context=extract(parent), kind=kind, attributes=attributes)
    return span, inject(trace.set_span_in_context(span))


def _id_hash(execution_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(execution_id.encode(), digest_size=8).digest(), "big")


def execution_traceparent(parent: str, execution_id: str) -> str:
    """The traceparent of an execution's `attune.execution` span, whose parent is ``parent``
    (a new trace, with no parent, when it is empty or malformed). Its span id is the parent's
    XOR a hash of the execution id: `execution_span_parent` undoes it. It is sampled as its
    parent is; a new trace as the sampler (OTEL_TRACES_SAMPLER) decides for its trace id."""
    parts = parent.split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32 and len(parts[2]) == 16:
        trace_id, parent_span, flags = parts[1], int(parts[2], 16), parts[3]
    else:
        trace_id, parent_span = f"{random.getrandbits(128) or 1:032x}", 0
        flags = "01" if _sampled_root(int(trace_id, 16)) else "00"
    span_id = (parent_span ^ _id_hash(execution_id)) or 1
    return f"00-{trace_id}-{span_id:016x}-{flags}"


def _sampled_root(trace_id: int) -> bool:
    """Whether the global provider's sampler keeps a new trace with this id."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        return True
    return provider.sampler.should_sample(None, trace_id, EXECUTION_SPAN).decision == Decision.RECORD_AND_SAMPLE


def execution_span_parent(traceparent: str, execution_id: str) -> int:
    """The parent span id of an execution span made by `execution_traceparent` (0: a root)."""
    parts = traceparent.split("-")
    try:
        return int(parts[2], 16) ^ _id_hash(execution_id)
    except (IndexError, ValueError):
        return 0


#: The terminal states an execution span marks ERROR.
ERROR_STATES = frozenset({"failed", "timeout", "cancelled", "abandoned"})
_STATUS_MESSAGE_CHARS = 1024  # the status message is a summary: the full error is on the execution


@dataclass(frozen=True, slots=True)
class EndedExecution:
    """What the `attune.execution` span of an ended execution is made of (its stored row)."""

    execution_id: str
    traceparent: str
    action_ref: str
    state: str
    error: str
    created_at: float
    finished_at: float
    #: The workflow task it runs, if any: workflow execution id, task name, run, item, attempt.
    workflow_execution_id: str = ""
    task_name: str = ""
    task_run: int | None = None
    item_index: int | None = None
    attempt: int | None = None


def execution_span_attributes(ended: EndedExecution) -> dict[str, str | int]:
    """The attributes of an execution span: its id, action, final state and, for a workflow
    task, the task's name, run, item and attempt."""
    attributes: dict[str, str | int] = {
        "attune.execution.id": ended.execution_id,
        "attune.action.ref": ended.action_ref,
        "attune.execution.state": ended.state,
    }
    if ended.workflow_execution_id:
        attributes["attune.workflow.execution.id"] = ended.workflow_execution_id
    if ended.task_name:
        attributes["attune.task.name"] = ended.task_name
    for key, value in (("run", ended.task_run), ("item", ended.item_index), ("attempt", ended.attempt)):
        if value is not None:
            attributes[f"attune.task.{key}"] = value
    return attributes


_execution_ids = _ChosenIds()
_execution_tracers: weakref.WeakKeyDictionary[TracerProvider, trace.Tracer] = weakref.WeakKeyDictionary()


def _execution_tracer(provider: TracerProvider) -> trace.Tracer:
    """The provider's tracer of execution spans: its ids come from `_execution_ids`."""
    found = _execution_tracers.get(provider)
    if found is None:
        found = provider.get_tracer(__name__)
        if isinstance(found, SdkTracer):
            found.id_generator = _execution_ids
        _execution_tracers[provider] = found
    return found


def record_execution_span(ended: EndedExecution, *, provider: TracerProvider | None = None) -> bool:
    """Writes the `attune.execution` span of an ended execution, with the ids its traceparent
    names, from its creation to its end; ERROR with the execution's error for a failed, timed
    out, cancelled or abandoned one. Written again (a re-sent result), it is the same span.
    False when it cannot be written: nothing is exported or the traceparent is not one."""
    owner = provider or trace.get_tracer_provider()
    parts = ended.traceparent.split("-")
    if not _exporting or not isinstance(owner, TracerProvider) or len(parts) != 4:
        return False
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return False
    if not flags & trace.TraceFlags.SAMPLED:
        return False  # its trace was not sampled: no span of it is recorded
    parent_id = execution_span_parent(ended.traceparent, ended.execution_id)
    context = otel_context.Context()
    if parent_id:
        parent = trace.SpanContext(trace_id, parent_id, is_remote=True, trace_flags=trace.TraceFlags(flags))
        context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    _execution_ids.chosen(trace_id, span_id)
    try:
        span = _execution_tracer(owner).start_span(
            EXECUTION_SPAN,
            context=context,
            attributes=execution_span_attributes(ended),
            start_time=int(ended.created_at * 1e9),
        )
    finally:
        _execution_ids.clear()
    if ended.state in ERROR_STATES:
        span.set_status(Status(StatusCode.ERROR, (ended.error or ended.state)[:_STATUS_MESSAGE_CHARS]))
    span.end(end_time=int(max(ended.finished_at, ended.created_at) * 1e9))
    return True


def tracer(name: str) -> trace.Tracer:
    """The tracer of one module."""
    return trace.get_tracer(name)


def inject(span_context_source: otel_context.Context | None = None) -> str:
    """The current (or given) context as a `traceparent` string; empty when there is none."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=span_context_source)
    return carrier.get("traceparent", "")


def extract(traceparent: str) -> otel_context.Context:
    """A context whose parent is the given `traceparent` (an empty context for "")."""
    if not traceparent:
        return otel_context.Context()
    return _propagator.extract({"traceparent": traceparent})


def sampled(traceparent: str) -> bool:
    """Whether a `traceparent` says its trace is sampled (recorded)."""
    flags = traceparent[-2:]
    try:
        return bool(int(flags, 16) & trace.TraceFlags.SAMPLED) and len(traceparent) == 55
    except ValueError:
        return False


def trace_id_of(traceparent: str) -> str:
    """The 32-hex trace id of a `traceparent`, or ""."""
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 else ""


def shutdown_tracing() -> None:
    """Flushes pending spans."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()
