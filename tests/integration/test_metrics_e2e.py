"""Every service serves Prometheus metrics, and after a workload the counters add up to what ran.

The shared cluster runs other tests' work too, so each check compares a scrape taken before the
workload with one taken after, on series labelled by actions of a pack only this test runs.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from attune.grpcutil.convert import execution_state_from_proto
from tests.integration.cluster import Cluster
from tests.support.polling import eventually

METRICSPACK = Path(__file__).parent / "packs" / "metricspack"

Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(address: str) -> Scrape:
    """Every sample a process serves: (sample name, sorted labels) → value."""

    def fetch() -> str:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
            assert response.status == 200
            return str(response.read().decode())

    text = await asyncio.to_thread(fetch)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Scrape, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def calls(samples: Scrape, method: str) -> float:
    """gRPC calls of a method ("Service/Method", the package left out) whatever their code."""
    return sum(
        v
        for (name, labels), v in samples.items()
        if name == "attune_grpc_server_calls_total"
        and f"{dict(labels)['grpc_service'].rsplit('.', 1)[-1]}/{dict(labels)['grpc_method']}" == method
    )


async def scrape_all(cluster: Cluster) -> Mapping[str, Scrape]:
    names = ["scheduler", "coordinator", "completion", "worker:worker-1"]
    scrapes = await asyncio.gather(*(scrape(cluster.metrics_addresses[name]) for name in names))
    return dict(zip(names, scrapes, strict=True))


async def test_counters_add_up_to_the_workload(cluster: Cluster) -> None:
    await cluster.register_pack(METRICSPACK)
    before = await scrape_all(cluster)
    runs = [
        cluster.run("metricspack.step", {"status": 0}),
        cluster.run("metricspack.step", {"status": 0}),
        cluster.run("metricspack.step", {"status": 3, "sleep": 1}),
        cluster.run("metricspack.flow"),  # a workflow: one metricspack.step child
    ]
    running = asyncio.gather(*runs)

    async def slot_taken() -> bool:
        return value(await scrape(cluster.metrics_addresses["worker:worker-1"]), "attune_worker_slots_busy") >= 1

    await eventually(slot_taken, within=5, interval=0.05, what="a busy slot while an action runs")
    states = [execution_state_from_proto(r.execution.state) for r in await running]
    assert states == ["succeeded", "succeeded", "failed", "succeeded"]
    expected_finished = {
        ("metricspack.step", "succeeded"): 3,
        ("metricspack.step", "failed"): 1,
        ("metricspack.flow", "succeeded"): 1,
    }

    async def settled() -> Mapping[str, Scrape] | None:
        # The completion service counts right after its commit, which a client may see first.
        now = await scrape_all(cluster)
        finished = {
            key: delta(
                before["completion"], now["completion"], "attune_executions_finished_total", action=key[0], state=key[1]
            )
            for key in expected_finished
        }
        return now if finished == expected_finished else None

    after = await eventually(settled, within=10, interval=0.1, what="the finished counters to add up")
    scheduler, completion = (before["scheduler"], after["scheduler"]), (before["completion"], after["completion"])
    requested = "attune_executions_requested_total"
    assert delta(*scheduler, requested, action="metricspack.step") == 4, "the workflow's child is one too"
    assert delta(*scheduler, requested, action="metricspack.flow") == 1
    # Four executions ran on the worker: each waited and ran.
    assert delta(*completion, "attune_execution_wait_seconds_count") >= 4
    assert delta(*completion, "attune_execution_run_seconds_count") >= 4
    assert delta(*completion, "attune_db_commit_batch_size_sum", writer="ResultStore._flush_with_retry") >= 5
    coordinator = (before["coordinator"], after["coordinator"])
    assert delta(*coordinator, "attune_workflow_steps_applied_total") >= 2, "the start and the child's outcome"
    # gRPC calls by method and code: the four requests, then every hop of their trip.
    assert (
        delta(
            *scheduler,
            "attune_grpc_server_calls_total",
            grpc_service="attune.execution.v1.ExecutionService",
            grpc_method="RequestExecution",
            grpc_code="OK",
        )
        == 4
    )
    # A stream is counted when it ends: the unary calls each hop makes are.
    assert calls(after["completion"], "CompletionService/SubmitResult") > calls(
        before["completion"], "CompletionService/SubmitResult"
    )
    assert calls(after["coordinator"], "CoordinatorService/StartWorkflows") > calls(
        before["coordinator"], "CoordinatorService/StartWorkflows"
    )
    assert calls(after["scheduler"], "ExecutionService/GetExecution") > calls(
        before["scheduler"], "ExecutionService/GetExecution"
    )
    worker = after["worker:worker-1"]
    assert value(worker, "attune_worker_slots") == 32

    async def slots_free() -> bool:  # once the worker has the acknowledgement of each result
        return value(await scrape(cluster.metrics_addresses["worker:worker-1"]), "attune_worker_slots_busy") == 0

    await eventually(slots_free, within=5, interval=0.05, what="every slot free again")
    assert value(after["scheduler"], "attune_executions_waiting", runtime="shell") == 0
    assert ("attune_executions_waiting", (("runtime", "shell"),)) in after["scheduler"], "0 is shown, not nothing"
