"""Concurrency policies at dispatch (services/scheduler/concurrency.py), on both databases: the
queue keeps request order, keys are separate, slots free when executions end whatever the
outcome, and `on_limit: cancel` ends the extra ones `cancelled` with the reason."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_from_proto
from attune.registry.v1 import registry_pb2
from tests.scheduler.harness import Cluster, FakeWorker, pack_request

_PACK = {
    "pack.yaml": b"ref: conc\nlabel: Concurrency\nversion: '1.0.0'\n",
    "actions/run.sh": b"#!/bin/sh\ntrue\n",
    "actions/per_host.yaml": b"""
ref: conc.per_host
runner_type: shell
entry_point: run.sh
parameters:
  host: {type: string, required: true}
concurrency: {limit: 2, key: "{{ parameters.host }}", on_limit: queue}
""",
    "actions/single.yaml": b"""
ref: conc.single
runner_type: shell
entry_point: run.sh
concurrency: {limit: 1, on_limit: cancel}
""",
    "actions/deploy.yaml": b"""
ref: conc.deploy
workflow_file: workflows/deploy.workflow.yaml
parameters:
  env: {type: string, default: prod}
concurrency: {limit: 1, key: "deploy-{{ parameters.env }}"}
""",
    "actions/workflows/deploy.workflow.yaml": b"""
version: 1
tasks:
  - name: run
    action: conc.single
""",
    "workflows/solo.workflow.yaml": b"""
ref: conc.solo
tasks:
  - name: run
    action: conc.single
concurrency: {limit: 1}
""",
}


@pytest.fixture
async def conc(cluster: Cluster) -> Cluster:
    await cluster.registry.RegisterPack(pack_request(_PACK))
    return cluster


def _assigned(worker: FakeWorker) -> list[str]:
    return [a.execution_id for a in worker.assignments]


async def test_queue_keeps_order_per_key_and_frees_slots_on_every_outcome(conc: Cluster) -> None:
    worker = FakeWorker(conc, "w-conc", ["shell"], capacity=16)
    await worker.connect()
    a = [(await conc.request("conc.per_host", {"host": "a"})).id for _ in range(5)]
    b = [(await conc.request("conc.per_host", {"host": "b"})).id for _ in range(3)]
    # Two of each key run; the rest wait in `scheduling` although the worker has room.
    await worker.wait_for(lambda: len(worker.assignments) == 4)
    await asyncio.sleep(0.5)
    assert sorted(_assigned(worker)) == sorted(a[:2] + b[:2])
    assert execution_state_from_proto((await conc.get(a[2])).execution.state) == "scheduling"
    # A success, a failure and a cancel each free one slot of key "a", in request order.
    await conc.submit_result(a[0], "succeeded")
    await worker.wait_for(lambda: a[2] in _assigned(worker))
    await conc.submit_result(a[1], "failed", error="boom")
    await worker.wait_for(lambda: a[3] in _assigned(worker))
    assert a[4] not in _assigned(worker)
    await conc.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=a[2]))
    await worker.wait_for(lambda: a[2] in worker.cancellations)
    await worker.released(a[2])
    await conc.submit_result(a[2], "cancelled")
    await worker.wait_for(lambda: a[4] in _assigned(worker))
    # Key "b" moved on its own: its third waits for a slot of "b" only.
    assert b[2] not in _assigned(worker)
    await conc.submit_result(b[0], "succeeded")
    await worker.wait_for(lambda: b[2] in _assigned(worker))
    assert _assigned(worker)[4:] == [a[2], a[3], a[4], b[2]]
    # One waiting for a slot can be cancelled; it never reaches the worker.
    queued = (await conc.request("conc.per_host", {"host": "b"})).id
    await asyncio.sleep(0.3)
    await conc.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=queued))
    await conc.wait_state(queued, "cancelled")
    await conc.submit_result(b[1], "succeeded")
    await asyncio.sleep(0.5)
    assert queued not in _assigned(worker)
    await worker.disconnect()


async def test_cancel_policy_ends_the_extra_execution_cancelled_with_the_reason(conc: Cluster) -> None:
    worker = FakeWorker(conc, "w-cancel", ["shell"], capacity=4)
    await worker.connect()
    first = await conc.request("conc.single")
    await worker.wait_for(lambda: _assigned(worker) == [first.id])
    second = await conc.request("conc.single")
    refused = await conc.wait_state(second.id, "cancelled")
    assert "concurrency limit of conc.single reached: 1 running" in refused.error
    assert _assigned(worker) == [first.id]
    await conc.submit_result(first.id, "succeeded")
    third = await conc.request("conc.single")  # the slot is free again
    await worker.wait_for(lambda: third.id in _assigned(worker))
    await worker.disconnect()


async def test_a_key_that_does_not_render_is_refused_naming_it(conc: Cluster) -> None:
    shown = (await conc.registry.GetAction(registry_pb2.GetActionRequest(ref="conc.per_host"))).action
    assert (shown.concurrency.limit, shown.concurrency.key, shown.concurrency.on_limit) == (
        2,
        "{{ parameters.host }}",
        "queue",
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await conc.request("conc.per_host", {})  # `host` is required: refused before the key
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    files = dict(_PACK)
    files["actions/single.yaml"] = files["actions/single.yaml"].replace(b"limit: 1", b"limit: 0, key: '{{ x'")
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await conc.registry.RegisterPack(pack_request(files))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = bad.value.details() or ""
    assert "concurrency.limit" in details and "concurrency.key" in details


async def test_a_workflow_is_handed_off_only_when_its_key_has_a_slot(conc: Cluster) -> None:
    first = await conc.request("conc.deploy")
    await conc.wait_state(first.id, "running")
    second = await conc.request("conc.deploy")
    staging = await conc.request("conc.deploy", {"env": "staging"})  # another key: not held back
    await conc.wait_state(staging.id, "running")
    assert execution_state_from_proto((await conc.get(second.id)).execution.state) == "scheduling"
    assert [w.execution_id for w in conc.coordinator.started] == [first.id, staging.id]
    await conc.submit_result(first.id, "failed", error="the deploy broke")
    await conc.wait_state(second.id, "running")
    assert [w.execution_id for w in conc.coordinator.started][2:] == [second.id]


async def test_a_standalone_workflow_files_policy_queues_the_second_run(conc: Cluster) -> None:
    first = await conc.request("conc.solo")
    await conc.wait_state(first.id, "running")
    second = await conc.request("conc.solo")
    await asyncio.sleep(0.3)  # more than a claim round: still held back
    assert execution_state_from_proto((await conc.get(second.id)).execution.state) == "scheduling"
    await conc.submit_result(first.id, "succeeded")
    await conc.wait_state(second.id, "running")
    assert [w.execution_id for w in conc.coordinator.started] == [first.id, second.id]
