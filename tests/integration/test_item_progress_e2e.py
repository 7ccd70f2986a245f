"""GetWorkflowRun's item counts (WorkflowRun.items) on the real services, both stores: a
with_items run held back by `concurrency` says how many items it has while task_runs holds only
the ones started, and the count goes once the run has ended."""

from __future__ import annotations

import uuid

import grpc

from attune.grpcutil.convert import execution_state_from_proto
from attune.registry.v1 import registry_pb2
from attune.workflow.v1 import workflow_pb2
from tests.integration.cluster import Cluster
from tests.support.polling import eventually

DEFINITION = """\
tasks:
  - name: each
    action: core.sleep
    with_items: "{{ [0.4, 0.4, 0.4, 0.4, 0.4] }}"
    concurrency: 1
    input:
      seconds: "{{ item }}"
"""


async def test_a_held_back_with_items_run_counts_its_items_before_they_start(cluster: Cluster) -> None:
    pack = f"items{uuid.uuid4().hex[:6]}"
    files = [registry_pb2.PackFile(path="pack.yaml", content=f'ref: {pack}\nversion: "1.0.0"\n'.encode())]
    await cluster.registry.RegisterPack(registry_pb2.RegisterPackRequest(files=files), timeout=30)
    action = registry_pb2.Action(
        pack=pack, name="slow_items", runner_type="workflow", enabled=True, definition=DEFINITION
    )
    await cluster.registry.CreateAction(registry_pb2.CreateActionRequest(action=action), timeout=30)
    execution = await cluster.request(f"{pack}.slow_items")

    async def started_one() -> workflow_pb2.WorkflowRun | None:
        try:
            reply = await cluster.workflows.GetWorkflowRun(
                workflow_pb2.GetWorkflowRunRequest(execution_id=execution.id), timeout=10
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:  # not yet handed to the coordinator
                return None
            raise
        return reply.run if reply.run.task_runs else None

    run = await eventually(started_one, within=20, interval=0.05, what=lambda: "the first item to start")
    assert len(run.task_runs) < 5, "concurrency 1 starts the items one at a time"
    assert [(i.task_name, i.run, i.count) for i in run.items] == [("each", 1, 5)]

    ended = await cluster.wait_terminal(execution.id)
    assert execution_state_from_proto(ended.execution.state) == "succeeded", ended.execution.error
    final = await cluster.workflows.GetWorkflowRun(workflow_pb2.GetWorkflowRunRequest(execution_id=execution.id))
    assert len(final.run.task_runs) == 5 and list(final.run.items) == []
