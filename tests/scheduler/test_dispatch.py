"""Dispatch to workers over the real WorkerService stream."""

from __future__ import annotations

import asyncio
import json

from prometheus_client import REGISTRY

from attune.common.v1 import common_pb2
from attune.grpcutil.convert import execution_state_from_proto
from attune.internal.execution.v1 import execution_pb2 as child_pb2
from attune.internal.worker.v1 import worker_pb2
from tests.scheduler.harness import Cluster, FakeWorker


async def test_assignment_then_started_means_running(core: Cluster) -> None:
    worker = FakeWorker(core, "w1", ["noop", "shell"])
    welcome = await worker.connect()
    assert welcome.scheduler_id == core.scheduler.scheduler_id
    execution = await core.request("core.echo", {"message": "hi"})
    await worker.wait_for(lambda: len(worker.assignments) == 1)
    (assignment,) = worker.assignments
    assert (assignment.execution_id, assignment.action_ref, assignment.runtime) == (execution.id, "core.echo", "shell")
    assert (assignment.entry_point, assignment.pack_ref) == ("actions/echo.sh", "core")
    assert assignment.pack_digest and json.loads(assignment.parameters_json) == {"message": "hi"}
    scheduled = await core.wait_state(execution.id, "scheduled")
    assert scheduled.worker_id == "w1"
    await worker.started(execution.id)
    running = await core.wait_state(execution.id, "running")
    assert running.started_at.seconds > 0
    await worker.disconnect()


async def test_noop_goes_to_a_worker_that_offers_it(core: Cluster) -> None:
    shell_only = FakeWorker(core, "shell-only", ["shell"])
    await shell_only.connect()
    execution = await core.request("core.noop")
    await asyncio.sleep(0.2)
    assert shell_only.assignments == []
    noop = FakeWorker(core, "noop-worker", ["noop"])
    await noop.connect()
    await noop.wait_for(lambda: [a.execution_id for a in noop.assignments] == [execution.id])
    await shell_only.disconnect()
    await noop.disconnect()


async def test_least_loaded_worker_is_chosen(core: Cluster) -> None:
    busy = FakeWorker(core, "busy", ["shell"], capacity=4)
    await busy.connect(execution_ids=["held-1", "held-2"])  # two slots already in use
    idle = FakeWorker(core, "idle", ["shell"], capacity=4)
    await idle.connect()
    first = await core.request("core.echo", {"message": "1"})
    second = await core.request("core.echo", {"message": "2"})
    await idle.wait_for(lambda: len(idle.assignments) == 2)
    assert {a.execution_id for a in idle.assignments} == {first.id, second.id}
    assert busy.assignments == []
    # Now both are at 2/4; the next two are split between them.
    third = await core.request("core.echo", {"message": "3"})
    fourth = await core.request("core.echo", {"message": "4"})
    await busy.wait_for(lambda: len(busy.assignments) + len(idle.assignments) == 4)
    assert len(busy.assignments) == 1 and len(idle.assignments) == 3
    assert {a.execution_id for a in busy.assignments + idle.assignments} >= {third.id, fourth.id}
    await busy.disconnect()
    await idle.disconnect()


def waiting_for_shell() -> float:
    """attune_executions_waiting{runtime="shell"} as a scrape would read it (every scheduler of this process)."""
    return REGISTRY.get_sample_value("attune_executions_waiting", {"runtime": "shell"}) or 0.0


async def test_capacity_is_respected_and_release_frees_a_slot(core: Cluster) -> None:
    worker = FakeWorker(core, "small", ["shell", "noop"], capacity=1)
    await worker.connect()
    before = waiting_for_shell()
    first = await core.request("core.echo", {"message": "1"})
    second = await core.request("core.echo", {"message": "2"})
    await worker.wait_for(lambda: len(worker.assignments) == 1)
    await asyncio.sleep(0.2)
    assert [a.execution_id for a in worker.assignments] == [first.id]
    assert execution_state_from_proto((await core.get(second.id)).execution.state) == "scheduling"
    assert waiting_for_shell() == before + 1, "the queue-depth metric counts the one waiting"
    await core.submit_result(first.id, "succeeded")
    await worker.released(first.id)
    await worker.wait_for(lambda: [a.execution_id for a in worker.assignments] == [first.id, second.id])
    assert waiting_for_shell() == before
    await worker.disconnect()


async def test_noop_holds_no_slot(core: Cluster) -> None:
    """A built-in no-op starts no process: it is dispatched even when every slot is taken."""
    worker = FakeWorker(core, "full", ["shell", "noop"], capacity=1)
    await worker.connect()
    busy = await core.request("core.echo", {"message": "busy"})
    await worker.wait_for(lambda: len(worker.assignments) == 1)
    waiting = await core.request("core.echo", {"message": "waits"})
    noops = [await core.request("core.noop") for _ in range(3)]
    await worker.wait_for(lambda: len(worker.assignments) == 4)
    assert [a.execution_id for a in worker.assignments] == [busy.id] + [n.id for n in noops]
    assert execution_state_from_proto((await core.get(waiting.id)).execution.state) == "scheduling"
    await worker.disconnect()


async def test_unknown_runtime_fails_after_schedule_timeout_naming_runtimes(core: Cluster) -> None:
    await core.register_bundled("examples")
    worker = FakeWorker(core, "w1", ["shell", "noop", "python"])
    await worker.connect()
    execution = await core.request("examples.node_hello")
    await asyncio.sleep(core.settings.schedule_timeout / 3)
    assert execution_state_from_proto((await core.get(execution.id)).execution.state) == "scheduling"
    failed = await core.wait_state(execution.id, "failed", timeout=core.settings.schedule_timeout + 5)
    assert failed.error == "no worker offers runtime 'nodejs' (available: noop, python, shell)"
    assert worker.assignments == []
    await worker.disconnect()


async def test_lost_worker_executions_are_abandoned_after_grace(core: Cluster) -> None:
    worker = FakeWorker(core, "fragile", ["noop"])
    await worker.connect()
    execution = await core.request("core.noop")
    await worker.wait_for(lambda: len(worker.assignments) == 1)
    await worker.started(execution.id)
    await core.wait_state(execution.id, "running")
    await worker.disconnect()
    abandoned = await core.wait_state(execution.id, "abandoned", timeout=core.settings.worker_grace + 5)
    assert abandoned.error == "worker fragile lost"


async def test_worker_that_reconnects_listing_its_execution_keeps_it(core: Cluster) -> None:
    worker = FakeWorker(core, "flaky", ["noop"])
    await worker.connect()
    kept = await core.request("core.noop")
    dropped = await core.request("core.noop")
    await worker.wait_for(lambda: len(worker.assignments) == 2)
    await worker.started(kept.id, dropped.id)
    await core.wait_state(kept.id, "running")
    await core.wait_state(dropped.id, "running")
    await worker.disconnect()
    back = FakeWorker(core, "flaky", ["noop"])
    await back.connect(execution_ids=[kept.id])
    await core.wait_state(dropped.id, "abandoned", timeout=core.settings.worker_grace + 5)
    await asyncio.sleep(core.settings.worker_grace)
    assert execution_state_from_proto((await core.get(kept.id)).execution.state) == "running"
    await back.disconnect()


async def test_rows_waiting_before_start_are_recovered_by_the_sweep(core: Cluster) -> None:
    execution = await core.request("core.noop")
    core.scheduler.dispatcher.forget([execution.id])  # as if requested before a restart
    worker = FakeWorker(core, "late", ["noop"])
    await worker.connect()
    await worker.wait_for(lambda: [a.execution_id for a in worker.assignments] == [execution.id])
    await worker.disconnect()


async def test_drain_keeps_waiting_work_for_the_next_scheduler(core: Cluster) -> None:
    from attune.grpcutil.server import start_server, stop_server
    from attune_services.scheduler.app import SchedulerApp
    from tests.scheduler.harness import connect_to

    waiting = await core.request("core.noop")
    echo = await core.request("core.echo", {"message": "after restart"})
    await core.stop_scheduler()
    successor = SchedulerApp(core.settings)
    successor_handle = await start_server(successor, address="127.0.0.1:0", settings=core.settings)
    try:
        async with connect_to(core, successor_handle.port) as other:
            # Nothing was lost: the rows waited in "scheduling" for whichever scheduler runs next.
            for execution_id in (waiting.id, echo.id):
                assert execution_state_from_proto((await other.get(execution_id)).execution.state) == "scheduling"
            worker = FakeWorker(other, "after", ["noop", "shell"])
            await worker.connect()
            await worker.wait_for(lambda: {a.execution_id for a in worker.assignments} == {waiting.id, echo.id})
            await worker.disconnect()
    finally:
        await stop_server(successor, successor_handle, grace=1.0)


def echo_child(
    parent_id: str, request_id: str, *, run: int = 1, item_index: int = -1, attempt: int = 1
) -> child_pb2.ChildExecutionRequest:
    """A core.echo child of task "deploy" of the workflow execution `parent_id`, as the coordinator asks."""
    return child_pb2.ChildExecutionRequest(
        action_ref="core.echo",
        parameters_json=json.dumps({"message": request_id}).encode(),
        request_id=request_id,
        parent_id=parent_id,
        depth=1,
        link=common_pb2.WorkflowLink(
            workflow_execution_id=parent_id, task_name="deploy", run=run, item_index=item_index, attempt=attempt
        ),
    )


async def request_children(cluster: Cluster, *children: child_pb2.ChildExecutionRequest) -> list[str]:
    """RequestChildExecutions; the created execution ids, in request order."""
    request = child_pb2.RequestChildExecutionsRequest(children=children)
    response = await cluster.children.RequestChildExecutions(request)
    assert all(c.execution_id and not c.error for c in response.children), response
    return [c.execution_id for c in response.children]


def task_run_of(assignment: worker_pb2.Assignment) -> tuple[str, str, str, int, int, int]:
    """(parent_id, workflow execution, task, run, item index, attempt) of an assignment."""
    link = assignment.link
    return (assignment.parent_id, link.workflow_execution_id, link.task_name, link.run, link.item_index, link.attempt)


async def test_workflow_child_assignment_carries_its_task_run(core: Cluster) -> None:
    worker = FakeWorker(core, "w1", ["shell", "noop"], capacity=1)
    await worker.connect()
    parent = await core.request("core.noop")
    await worker.wait_for(lambda: len(worker.assignments) == 1)
    (top,) = worker.assignments
    assert top.execution_id == parent.id and top.parent_id == "" and not top.HasField("link")
    # One child takes the only slot at request time (the two are validated concurrently, so
    # either); the other waits in the queue for it and is dispatched from there.
    first, item = await request_children(
        core, echo_child(parent.id, "retried", run=2, attempt=3), echo_child(parent.id, "item", item_index=1)
    )
    expected = {first: (parent.id, parent.id, "deploy", 2, -1, 3), item: (parent.id, parent.id, "deploy", 1, 1, 1)}
    await worker.wait_for(lambda: len(worker.assignments) == 2)
    at_once = worker.assignments[1].execution_id
    assert task_run_of(worker.assignments[1]) == expected[at_once]
    await core.submit_result(at_once, "succeeded")
    await worker.released(at_once)
    await worker.wait_for(lambda: len(worker.assignments) == 3)
    queued = worker.assignments[2].execution_id
    assert {at_once, queued} == {first, item}
    assert task_run_of(worker.assignments[2]) == expected[queued]
    await worker.disconnect()


async def test_workflow_child_keeps_its_task_run_across_a_scheduler_restart(core: Cluster) -> None:
    from attune.grpcutil.server import start_server, stop_server
    from attune_services.scheduler.app import SchedulerApp
    from tests.scheduler.harness import connect_to

    parent = await core.request("core.noop")
    (child,) = await request_children(core, echo_child(parent.id, "waiting", run=4, item_index=2, attempt=2))
    await core.stop_scheduler()
    successor = SchedulerApp(core.settings)  # knows the child only from its row in the database
    successor_handle = await start_server(successor, address="127.0.0.1:0", settings=core.settings)
    try:
        async with connect_to(core, successor_handle.port) as other:
            worker = FakeWorker(other, "after", ["shell"])
            await worker.connect()
            await worker.wait_for(lambda: [a.execution_id for a in worker.assignments] == [child])
            assert task_run_of(worker.assignments[0]) == (parent.id, parent.id, "deploy", 4, 2, 2)
            await worker.disconnect()
    finally:
        await stop_server(successor, successor_handle, grace=1.0)
