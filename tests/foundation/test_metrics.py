"""The metrics module: names that follow Prometheus' conventions, bounded labels, gauges read from
live objects, the HTTP endpoint, and the docs listing every metric (attune.metrics)."""

from __future__ import annotations

import asyncio
import gc
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from attune import metrics
from attune.config import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
# Labels that would make a series per execution, worker process or request.
UNBOUNDED = re.compile(r"(^|_)(id|ids|execution|request|parameters|error)$")


def attune_families() -> list[tuple[str, str, list[str]]]:
    """(name as exposed, type, label names) of every metric attune.metrics defines."""
    found = []
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            labels = list(value._labelnames)
        elif isinstance(value, metrics.Sampled):
            labels = value.labelnames
        else:
            continue
        for family in value.describe():
            found.append((family.name + ("_total" if family.type == "counter" else ""), family.type, labels))
    return found


def test_every_metric_follows_the_conventions() -> None:
    families = attune_families()
    assert len(families) >= 14
    for name, kind, labels in families:
        assert re.fullmatch(r"attune_[a-z_]+", name), name
        if kind == "counter":
            assert name.endswith("_total"), name
        if kind == "histogram" and "batch" not in name:
            assert name.endswith("_seconds"), f"{name}: a duration histogram is in seconds"
        assert not [label for label in labels if UNBOUNDED.search(label)], f"{name}: unbounded label in {labels}"


def test_the_operations_guide_lists_every_metric_with_its_labels() -> None:
    rows = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^\| `(attune_\w+)` \| \w+ \| ([^|]*) \|", DOCS.read_text(), re.MULTILINE)
    }
    for name, _, labels in attune_families():
        assert name in rows, f"docs/operations.md, Metrics: {name} is not listed"
        assert set(re.findall(r"`(\w+)`", rows[name])) == set(labels), f"{name}: labels {labels}, listed {rows[name]}"
    assert set(rows) == {name for name, _, _ in attune_families()}, "the docs list a metric that does not exist"


class _Queue:
    def __init__(self, depth: int) -> None:
        self.depth = depth

    def samples(self) -> dict[tuple[str, ...], float]:
        return {("shell",): float(self.depth)}


def test_a_sampled_gauge_adds_up_live_sources_and_forgets_dead_ones() -> None:
    gauge = metrics.Sampled("attune_test_sampled", "a test gauge", ["runtime"])
    try:
        first, second = _Queue(2), _Queue(3)
        gauge.watch(first.samples)
        gauge.watch(second.samples)
        assert [s.value for f in gauge.collect() for s in f.samples] == [5.0]
        del second
        gc.collect()
        assert [s.value for f in gauge.collect() for s in f.samples] == [2.0]
        assert len(gauge._sources) == 1
    finally:
        REGISTRY.unregister(gauge)


async def _request(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    reply = await reader.read()
    writer.close()
    return reply


async def test_the_endpoint_serves_get_metrics_only() -> None:
    metrics.requested.get("core.test_endpoint").inc()
    endpoint = metrics.MetricsEndpoint()
    await endpoint.start("127.0.0.1:0")
    try:
        reply = await _request(endpoint.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"text/plain" in head
        samples = {
            (s.name, tuple(s.labels.values())): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
        }
        assert samples[("attune_executions_requested_total", ("core.test_endpoint",))] == 1.0
        assert (await _request(endpoint.port, b"POST /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")
        assert (await _request(endpoint.port, b"GET / HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
        assert (await _request(endpoint.port, b"nonsense\r\n\r\n")).startswith(b"HTTP/1.1 400")
        assert await _request(endpoint.port, b"GET /" + b"x" * 10_000) == b"", "an oversized request is dropped"
    finally:
        await endpoint.close()


@pytest.mark.parametrize("address", ["9464", "localhost:", ":9464", "host:port", "127.0.0.1:70000"])
async def test_a_malformed_address_is_a_configuration_error(address: str) -> None:
    with pytest.raises(ConfigError, match="ATTUNE_METRICS_ADDRESS"):
        await metrics.MetricsEndpoint().start(address)
