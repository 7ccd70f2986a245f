"""A real OTLP/gRPC trace receiver for tests: the collector's TraceService, from the
`opentelemetry-proto` package's generated stubs, on a free port, keeping every span it receives.

Services pointed at it with OTEL_EXPORTER_OTLP_ENDPOINT=`receiver.endpoint` export to it exactly
as they would to an OpenTelemetry collector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as received, with its ids in hex and its attributes as plain values."""

    service: str
    name: str
    kind: str  # "SERVER", "CLIENT", "PRODUCER", "CONSUMER" or "INTERNAL"
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root
    start_ns: int
    end_ns: int
    status: str  # "UNSET", "OK" or "ERROR"
    status_message: str
    attributes: dict[str, Any] = field(default_factory=dict)


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _span(service: str, span: trace_pb2.Span) -> ReceivedSpan:
    return ReceivedSpan(
        service=service,
        name=span.name,
        kind=trace_pb2.Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status=trace_pb2.Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
        status_message=span.status.message,
        attributes={a.key: _value(a.value) for a in span.attributes},
    )


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: list[ReceivedSpan]) -> None:
        self._received = received

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            names = [a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"]
            for scope_spans in resource_spans.scope_spans:
                self._received.extend(_span(names[0] if names else "", s) for s in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """A TraceService on 127.0.0.1 (plaintext, as a local collector), between `start` and `stop`."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._server = grpc.aio.server()
        add_servicer = trace_service_pb2_grpc.add_TraceServiceServicer_to_server
        add_servicer(_TraceService(self.spans), self._server)  # type: ignore[no-untyped-call]
        self.port = 0

    @property
    def endpoint(self) -> str:
        """The OTEL_EXPORTER_OTLP_ENDPOINT reaching it."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop(grace=None)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans received of one trace."""
        return [s for s in self.spans if s.trace_id == trace_id]
