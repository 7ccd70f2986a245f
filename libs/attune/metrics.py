"""Prometheus metrics: every metric a service exports is defined here, once, and served over HTTP
on `ATTUNE_METRICS_ADDRESS` by the one server bootstrap (`attune.grpcutil.server`).

Names follow Prometheus' conventions: an `attune_` prefix, base units (seconds), `_total` on
counters. Labels stay bounded: an action ref (only registered actions are ever counted: a request
for any other is refused before it is), a state, a runtime, a gRPC method and status code, a
writer or stream named in the code — never an execution id. docs/operations.md, Metrics, lists
them with their meaning.

What is counted on a hot path is one `inc()` or `observe()` on a child looked up in a dict
(`Labelled`), not `labels(...)` per call. What describes state held in memory (queue depth,
worker slots) is read when scraped (`Sampled`): it costs nothing between scrapes. The endpoint
runs on the service's own event loop, so it reads that state between two steps of the loop, never
in the middle of one.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from attune.config import ConfigError

log = logging.getLogger(__name__)
# A `_created` series beside every counter and histogram doubles what is stored for a timestamp
# nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client

M = TypeVar("M", bound=MetricWrapperBase)

#: Latency buckets (seconds): a no-op's trip is ~2-5 ms, a shell action's tens of ms, a workflow's
#: seconds to hours.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)
#: Database commit buckets (seconds): a group commit takes ~0.2 ms to tens of ms.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
#: Rows per group commit: one (a sequential caller) up to the committer's limit of 1,000.
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class Labelled(Generic[M]):
    """The children of a labelled metric, each made once: `get(value, ...)` costs a dict lookup
    where `metric.labels(...)` validates and converts its labels on every call."""

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def get(self, *values: str) -> M:
        """The child for these label values (in the metric's label order)."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


#: What a sampled metric's source returns: a value per tuple of label values.
Samples = Mapping[tuple[str, ...], float]


class Sampled(Collector):
    """A gauge read from live objects when scraped. Each source (`watch`) returns its values per
    tuple of label values; sources that are gone (garbage-collected owners) drop out, and the
    values of several live ones (several apps in one test process) add up."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self._sources: list[Callable[[], Callable[[], Samples] | None]] = []
        REGISTRY.register(self)

    def watch(self, source: Callable[[], Samples]) -> None:
        """Adds a source; a bound method is held weakly, so it never keeps its object alive."""
        if hasattr(source, "__self__"):
            self._sources.append(weakref.WeakMethod(source))
        else:
            self._sources.append(lambda: source)

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        totals: dict[tuple[str, ...], float] = {}
        live: list[Callable[[], Callable[[], Samples] | None]] = []
        for ref in self._sources:
            source = ref()
            if source is None:
                continue
            live.append(ref)
            try:
                samples = source()
            except Exception:  # a scrape must not fail for one source
                log.exception("metric %s: a source failed", self.name)
                continue
            for labels, value in samples.items():
                totals[labels] = totals.get(labels, 0.0) + value
        self._sources = live
        for labels, value in sorted(totals.items()):
            family.add_metric(list(labels), value)
        return [family]


# --- executions (scheduler: requested; completion: finished and latencies) ------------------------

EXECUTIONS_REQUESTED = Counter(
    "attune_executions_requested_total", "Executions created (top-level and workflow children).", ["action"]
)
EXECUTIONS_FINISHED = Counter(
    "attune_executions_finished_total", "Executions that reached a terminal state.", ["action", "state"]
)
EXECUTION_WAIT = Histogram(
    "attune_execution_wait_seconds",
    "From request to start (the worker started the process), observed when the execution ends.",
    buckets=LATENCY_BUCKETS,
)
EXECUTION_RUN = Histogram(
    "attune_execution_run_seconds",
    "From start to terminal state, observed when the execution ends.",
    buckets=LATENCY_BUCKETS,
)
EXECUTIONS_WAITING = Sampled(
    "attune_executions_waiting",
    "Executions this scheduler holds in 'scheduling', waiting for a worker with a free slot for their runtime.",
    ["runtime"],
)

# --- workers ----------------------------------------------------------------------------------------

WORKER_SLOTS = Sampled("attune_worker_slots", "Slots of this worker (ATTUNE_WORKER_CAPACITY).")
WORKER_SLOTS_BUSY = Sampled(
    "attune_worker_slots_busy", "Slots of this worker held by executions running or with results not yet stored."
)

# --- workflows (coordinator) ------------------------------------------------------------------------

WORKFLOW_STEPS = Counter("attune_workflow_steps_applied_total", "Workflow steps committed (a batch of events each).")
WORKFLOW_CONFLICTS = Counter(
    "attune_workflow_conflicts_retried_total", "Steps recomputed after another replica advanced the workflow first."
)
WORKFLOW_TIMERS = Gauge(
    "attune_workflow_timers_pending",
    "Durable timers (retry delays, task delays, timeouts) not yet fired, in the whole database.",
)

# --- plumbing -----------------------------------------------------------------------------------------

STREAM_RECONNECTS = Counter(
    "attune_stream_reconnects_total", "Long-lived client streams started again after they ended.", ["stream"]
)
DB_COMMIT = Histogram(
    "attune_db_commit_seconds",
    "Time to write and commit one group-committed batch.",
    ["writer"],
    buckets=COMMIT_BUCKETS,
)
DB_BATCH = Histogram(
    "attune_db_commit_batch_size", "Items in one group-committed batch.", ["writer"], buckets=BATCH_BUCKETS
)
GRPC_CALLS = Counter(
    "attune_grpc_server_calls_total",
    "gRPC calls this server handled, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)

requested = Labelled(EXECUTIONS_REQUESTED)
finished = Labelled(EXECUTIONS_FINISHED)
reconnects = Labelled(STREAM_RECONNECTS)


def exposition() -> bytes:
    """Every metric of this process in the Prometheus text format."""
    return generate_latest(REGISTRY)


# --- the endpoint -------------------------------------------------------------------------------------

#: A scrape's request line and headers: anything larger is refused.
MAX_REQUEST_BYTES = 8 * 1024
#: How long a client may take to send its request.
REQUEST_TIMEOUT_S = 5.0
#: Connections served at once; more are closed at once (a scraper opens one at a time).
MAX_CONNECTIONS = 16


class MetricsAddressError(ConfigError):
    """ATTUNE_METRICS_ADDRESS is not HOST:PORT."""


def parse_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 in brackets) → (host, port); MetricsAddressError naming the variable."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise MetricsAddressError(
            f"ATTUNE_METRICS_ADDRESS={address!r}: expected HOST:PORT, such as 127.0.0.1:9464 (empty: no metrics)"
        )
    return host.strip("[]"), int(port)


class MetricsEndpoint:
    """`GET /metrics` over HTTP/1.0 on the running event loop; every other path is 404."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._open = 0
        self.port = 0

    async def start(self, address: str) -> None:
        """Listens on `address` (port 0: a free one, then in `port`); OSError when it cannot."""
        host, port = parse_address(address)
        try:
            self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_REQUEST_BYTES)
        except OSError as err:
            raise OSError(f"cannot serve metrics on {address}: {err.strerror or err}") from err
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stops listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        try:
            if self._open > MAX_CONNECTIONS:
                return
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            writer.write(_response(head))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._open -= 1
            writer.close()


def _response(head: bytes) -> bytes:
    parts = head.split(b"\r\n", 1)[0].split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return _plain(b"400 Bad Request", b"a request line: GET /metrics HTTP/1.1\n")
    method, target = parts[0], parts[1].split(b"?", 1)[0]
    if target != b"/metrics":
        return _plain(b"404 Not Found", b"metrics are at /metrics\n")
    if method not in (b"GET", b"HEAD"):
        return _plain(b"405 Method Not Allowed", b"only GET\n")
    body = exposition()
    header = _header(b"200 OK", CONTENT_TYPE_LATEST.encode(), len(body))
    return header if method == b"HEAD" else header + body


def _plain(status: bytes, body: bytes) -> bytes:
    return _header(status, b"text/plain; charset=utf-8", len(body)) + body


def _header(status: bytes, content_type: bytes, length: int) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(length).encode()
        + b"\r\nConnection: close\r\n\r\n"
    )
