"""The workflow-coordinator against a real database, with a fake scheduler and completion service."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from attune import telemetry
from attune.grpcutil.channel import open_channel
from attune.grpcutil.server import start_server, stop_server
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune.workflow.v1 import workflow_pb2
from attune_services.coordinator.app import CoordinatorApp
from tests.coordinator.conftest import Harness, outcome, settle
from tests.support.polling import eventually

SEQUENCE = """
version: 1
tasks:
  - name: greet
    action: core.echo
    input: {message: "hello {{ parameters.who }}"}
    next:
      - when: "{{ succeeded() }}"
        publish:
          - greeting: "{{ result().stdout }}"
        do: [shout]
  - name: shout
    action: core.echo
    input: {message: "{{ vars.greeting | upper }}"}
output_map:
  greeting: "{{ vars.greeting }}"
  shouted: "{{ task.shout.stdout }}"
"""


async def test_sequence_advances_and_submits_the_workflow_result(harness: Harness) -> None:
    wf = await harness.start_workflow(SEQUENCE, parameters={"who": "ada"})
    [greet] = await harness.wait_requests(wf, 1)
    assert greet.action_ref == "core.echo"
    assert greet.request_id == f"{wf}:greet/1/-/1"
    assert greet.parent_id == wf and greet.depth == 1
    assert (
        greet.link.workflow_execution_id,
        greet.link.task_name,
        greet.link.run,
        greet.link.item_index,
        greet.link.attempt,
    ) == (wf, "greet", 1, -1, 1)
    assert greet.trace.traceparent.split("-")[1] == "ab" * 16
    assert greet.parameters_json == b'{"message":"hello ada"}'

    await harness.report(outcome(greet, result={"stdout": "hello ada"}))
    _, shout = await harness.wait_requests(wf, 2)
    assert shout.parameters_json == b'{"message":"HELLO ADA"}'
    await harness.report(outcome(shout, result={"stdout": "HELLO ADA"}))

    state, result, error = await harness.wait_result(wf)
    assert (state, error) == ("succeeded", "")
    assert result == {"succeeded": True, "greeting": "hello ada", "shouted": "HELLO ADA"}
    assert harness.completion.results[wf].reporter == "coordinator"

    run = await harness.run_of(wf)
    assert run.state == workflow_pb2.WORKFLOW_STATE_SUCCEEDED
    assert [(t.task_name, t.run, t.item_index, t.attempt) for t in run.task_runs] == [
        ("greet", 1, -1, 1),
        ("shout", 1, -1, 1),
    ]
    assert [t.child_execution_id for t in run.task_runs] == [
        harness.scheduler.ids[r.request_id] for r in (greet, shout)
    ]
    assert all(t.finished_at.seconds > 0 for t in run.task_runs)


async def test_a_duplicate_outcome_schedules_nothing_twice(harness: Harness) -> None:
    wf = await harness.start_workflow(SEQUENCE, parameters={"who": "bob"})
    [greet] = await harness.wait_requests(wf, 1)
    done = outcome(greet, result={"stdout": "hi"})
    await harness.report(done)
    await harness.wait_requests(wf, 2)
    assert await harness.report(done) == [done.execution_id]  # acked, changes nothing
    await settle()
    assert harness.scheduler.per_run(wf) == {f"{wf}:greet/1/-/1": 1, f"{wf}:shout/1/-/1": 1}


async def test_concurrent_duplicate_outcomes_schedule_the_next_task_once(harness: Harness) -> None:
    wf = await harness.start_workflow(SEQUENCE, parameters={"who": "cy"})
    [greet] = await harness.wait_requests(wf, 1)
    done = outcome(greet, result={"stdout": "hi"})
    streams = [harness.open_stream() for _ in range(4)]
    # Four streams at once, one of them carrying the outcome twice in one batch.
    await asyncio.gather(
        *(
            harness.report(done, done, stream=s) if i == 0 else harness.report(done, stream=s)
            for i, s in enumerate(streams)
        )
    )
    await harness.wait_requests(wf, 2)
    await settle()
    assert harness.scheduler.per_run(wf) == {f"{wf}:greet/1/-/1": 1, f"{wf}:shout/1/-/1": 1}
    [second] = [r for r in harness.scheduler.of(wf) if r.link.task_name == "shout"]
    await harness.report(outcome(second, result={"stdout": "HI"}))
    assert (await harness.wait_result(wf))[0] == "succeeded"
    assert harness.completion.calls[wf] == 1


RETRY = """
version: 1
tasks:
  - name: flaky
    action: core.local
    retry: {count: 1, delay: 1.5}
    input: {cmd: "false"}
output_map:
  attempts: "{{ task.flaky.attempt | default('n/a') }}"
"""


async def test_a_retry_delay_timer_survives_a_coordinator_restart(harness: Harness) -> None:
    wf = await harness.start_workflow(RETRY)
    [first] = await harness.wait_requests(wf, 1)
    await harness.report(outcome(first, "failed", {"exit_code": 1}))
    await harness.stop_coordinator()  # before the 1.5 s retry delay is over
    await settle(0.2)
    assert len(harness.scheduler.of(wf)) == 1

    await harness.start_coordinator()
    [_, second] = await harness.wait_requests(wf, 2, timeout=10)
    assert second.link.attempt == 2 and second.request_id == f"{wf}:flaky/1/-/2"
    await harness.report(outcome(second, result={"exit_code": 0}))
    state, _, _ = await harness.wait_result(wf)
    assert state == "succeeded"
    assert harness.scheduler.per_run(wf) == {f"{wf}:flaky/1/-/1": 1, f"{wf}:flaky/1/-/2": 1}


async def test_a_running_task_run_shows_its_child_execution(harness: Harness) -> None:
    wf = await harness.start_workflow(SEQUENCE, parameters={"who": "joe"})
    [greet] = await harness.wait_requests(wf, 1)
    child = harness.scheduler.ids[greet.request_id]

    async def recorded() -> workflow_pb2.TaskRun | None:
        [task] = (await harness.run_of(wf)).task_runs
        return task if task.child_execution_id else None

    # Recorded in lingering batches (carrier.RECORD_LINGER_S), not at once.
    task = await eventually(recorded, within=5, interval=0.02, what="the task run to show its child execution")
    assert (task.task_name, task.child_execution_id, task.state) == ("greet", child, 4)  # EXECUTION_STATE_RUNNING


async def test_a_refused_child_request_fails_the_task_and_the_workflow(harness: Harness) -> None:
    wf = await harness.start_workflow("""
version: 1
tasks:
  - name: ghost
    action: missing.action
""")
    state, result, error = await harness.wait_result(wf)
    assert state == "failed"
    assert result["succeeded"] is False
    # the reason travels: the task never ran, and the scheduler said why
    assert error == (
        'task "ghost" (run 1) ended failed and no transition handled it: '
        "not started: action missing.action is not registered"
    )
    run = await harness.run_of(wf)
    assert run.state == workflow_pb2.WORKFLOW_STATE_FAILED
    [task] = run.task_runs
    assert task.state == 6  # EXECUTION_STATE_FAILED
    assert task.child_execution_id == ""


async def test_an_unhandled_failure_quotes_the_child_error_and_attempts(harness: Harness) -> None:
    wf = await harness.start_workflow("""
version: 1
tasks:
  - name: flaky
    action: core.local
    retry: {count: 1}
""")
    [first] = await harness.wait_requests(wf, 1)
    await harness.report(outcome(first, "failed", {"exit_code": 1}, error="exit code 1: first"))
    [_, second] = await harness.wait_requests(wf, 2)
    await harness.report(outcome(second, "failed", {"exit_code": 2}, error="exit code 2: " + "x" * 5000))
    state, _, error = await harness.wait_result(wf)
    assert state == "failed"
    assert error.startswith(
        'task "flaky" (run 1) ended failed after 2 attempts and no transition handled it: exit code 2: xxx'
    )
    assert " characters cut] … xxx" in error and len(error) < 1200


async def test_a_refused_child_can_be_handled_by_an_on_failure_transition(harness: Harness) -> None:
    wf = await harness.start_workflow("""
version: 1
tasks:
  - name: ghost
    action: missing.action
    next:
      - when: "{{ failed() }}"
        publish: [{why: "{{ result().error }}"}]
        do: [report]
  - name: report
    action: core.echo
output_map:
  why: "{{ vars.why }}"
""")
    [_, report] = await harness.wait_requests(wf, 2)
    await harness.report(outcome(report))
    state, result, _ = await harness.wait_result(wf)
    assert state == "succeeded"
    assert result["why"] == "action missing.action is not registered"


async def test_cancel_running_cancels_the_child_and_ends_cancelled(harness: Harness) -> None:
    wf = await harness.start_workflow("""
version: 1
cancellation_policy: cancel_running
tasks:
  - name: slow
    action: core.sleep
    next:
      - do: [after]
  - name: after
    action: core.echo
""")
    [slow] = await harness.wait_requests(wf, 1)
    await eventually(lambda: slow.request_id in harness.scheduler.ids, within=5, what="dispatch")
    response = await harness.client.CancelWorkflow(coordinator_pb2.CancelWorkflowRequest(execution_id=wf))
    assert response.run.state == workflow_pb2.WORKFLOW_STATE_CANCELING
    child = harness.scheduler.ids[slow.request_id]
    await eventually(lambda: child in harness.scheduler.cancels, within=5, what="CancelExecution of the child")
    await harness.report(outcome(slow, "cancelled", execution_id=child))
    state, result, _ = await harness.wait_result(wf)
    assert state == "cancelled" and result["succeeded"] is False
    await settle()
    assert len(harness.scheduler.of(wf)) == 1  # "after" never ran


async def test_starting_twice_is_idempotent(harness: Harness) -> None:
    wf = await harness.start_workflow(SEQUENCE, parameters={"who": "dee"})
    await harness.start_workflow(SEQUENCE, parameters={"who": "dee"}, workflow_id=wf)
    await harness.wait_requests(wf, 1)
    await settle()
    assert harness.scheduler.per_run(wf) == {f"{wf}:greet/1/-/1": 1}


async def test_nesting_deeper_than_the_cap_fails_the_workflow(harness: Harness) -> None:
    wf = await harness.start_workflow(SEQUENCE, depth=harness.settings.workflow_max_depth + 1)
    state, _, error = await harness.wait_result(wf)
    assert state == "failed"
    assert "depth 11" in error and "10" in error
    assert harness.scheduler.of(wf) == []


async def test_an_invalid_definition_fails_the_workflow_with_the_reason(harness: Harness) -> None:
    wf = await harness.start_workflow("tasks: [{name: a, action: core.echo, next: [{do: [nowhere]}]}]")
    state, _, error = await harness.wait_result(wf)
    assert state == "failed"
    assert "tests/flow.workflow.yaml" in error and "nowhere" in error
    run = await harness.run_of(wf)
    assert run.state == workflow_pb2.WORKFLOW_STATE_FAILED and run.error == error


async def test_undispatched_children_are_requested_after_a_restart(harness: Harness) -> None:
    harness.scheduler.down = True
    wf = await harness.start_workflow(SEQUENCE, parameters={"who": "eve"})
    await settle(0.2)
    await harness.stop_coordinator()
    harness.scheduler.down = False
    await harness.start_coordinator()
    [greet] = await harness.wait_requests(wf, 1)
    await harness.report(outcome(greet, result={"stdout": "x"}))
    [_, shout] = await harness.wait_requests(wf, 2)
    await harness.report(outcome(shout, result={"stdout": "X"}))
    assert (await harness.wait_result(wf))[0] == "succeeded"
    assert harness.scheduler.per_run(wf) == {f"{wf}:greet/1/-/1": 1, f"{wf}:shout/1/-/1": 1}


async def test_children_are_requested_on_the_stream_which_is_reopened_after_it_breaks(harness: Harness) -> None:
    wf = await harness.start_workflow(SEQUENCE, parameters={"who": "ivy"})
    [greet] = await harness.wait_requests(wf, 1)
    assert harness.scheduler.streamed_batches >= 1 and harness.scheduler.unary_batches == 0
    harness.scheduler.down = True  # the next batch breaks the stream; it stays queued
    await harness.report(outcome(greet, result={"stdout": "x"}))
    await settle(0.3)
    assert harness.scheduler.of(wf) == [greet]
    harness.scheduler.down = False
    [_, shout] = await harness.wait_requests(wf, 2)
    await harness.report(outcome(shout, result={"stdout": "X"}))
    assert (await harness.wait_result(wf))[0] == "succeeded"
    assert harness.scheduler.per_run(wf) == {f"{wf}:greet/1/-/1": 1, f"{wf}:shout/1/-/1": 1}
    assert harness.scheduler.unary_batches == 0


async def test_a_wide_fan_out_sends_concurrent_batches_on_a_fresh_stream(harness: Harness) -> None:
    # 1,200 children are three batches in flight at once on the coordinator's first stream: gRPC
    # allows one pending write per call, so the requester must write them one after another.
    branches = [f"t{i}" for i in range(1200)]
    tasks = [{"name": "start", "action": "core.echo", "next": [{"do": branches}]}]
    tasks += [{"name": b, "action": "core.echo"} for b in branches]
    await harness.stop_coordinator()
    await harness.start_coordinator()  # a new coordinator: no stream open yet
    wf = await harness.start_workflow(json.dumps({"version": 1, "tasks": tasks}))
    [first] = await harness.wait_requests(wf, 1)
    await harness.report(outcome(first))
    await harness.wait_requests(wf, 1201, timeout=20)
    assert len(harness.scheduler.per_run(wf)) == 1201
    assert harness.scheduler.streamed_batches >= 4 and harness.scheduler.unary_batches == 0


async def test_unknown_workflows_are_acknowledged(harness: Harness) -> None:
    wf = await harness.start_workflow(SEQUENCE, parameters={"who": "fay"})
    [greet] = await harness.wait_requests(wf, 1)
    stray = outcome(greet, execution_id="stray")
    stray.link.workflow_execution_id = "no-such-workflow"
    assert await harness.report(stray) == ["stray"]


async def test_get_list_and_errors(harness: Harness) -> None:
    first = await harness.start_workflow(SEQUENCE, parameters={"who": "g"})
    second = await harness.start_workflow(SEQUENCE, parameters={"who": "h"})
    listed = await harness.client.ListWorkflowRuns(
        coordinator_pb2.ListWorkflowRunsRequest(state=workflow_pb2.WORKFLOW_STATE_RUNNING, page_size=1)
    )
    assert [r.execution_id for r in listed.runs] == [second]
    page2 = await harness.client.ListWorkflowRuns(
        coordinator_pb2.ListWorkflowRunsRequest(
            state=workflow_pb2.WORKFLOW_STATE_RUNNING, page_size=1, page_token=listed.next_page_token
        )
    )
    assert [r.execution_id for r in page2.runs] == [first]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.client.GetWorkflowRun(coordinator_pb2.GetWorkflowRunRequest(execution_id="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.client.CancelWorkflow(coordinator_pb2.CancelWorkflowRequest(execution_id="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_workflow_timeout_cancels_running_children_and_ends_timeout(harness: Harness) -> None:
    wf = await harness.start_workflow("""
version: 1
timeout: 0.5
tasks:
  - name: slow
    action: core.sleep
""")
    [slow] = await harness.wait_requests(wf, 1)
    state, result, error = await harness.wait_result(wf, timeout=10)
    assert state == "timeout" and result["succeeded"] is False
    assert "timed out" in error
    child = harness.scheduler.ids[slow.request_id]
    await eventually(lambda: child in harness.scheduler.cancels, within=5, what="CancelExecution of the running child")
    # The child's late outcome is acknowledged and recorded, and changes nothing else.
    await harness.report(outcome(slow, "cancelled", execution_id=child))
    run = await harness.run_of(wf)
    assert run.state == workflow_pb2.WORKFLOW_STATE_TIMEOUT
    assert run.task_runs[0].state == 8  # EXECUTION_STATE_CANCELLED
    assert harness.completion.calls[wf] == 1


async def test_a_task_delay_is_a_durable_timer(harness: Harness) -> None:
    wf = await harness.start_workflow("""
version: 1
tasks:
  - name: later
    action: core.echo
    delay: 0.6
""")
    await settle(0.2)
    assert harness.scheduler.of(wf) == []
    await harness.stop_coordinator()
    await harness.start_coordinator()
    [later] = await harness.wait_requests(wf, 1, timeout=10)
    await harness.report(outcome(later))
    assert (await harness.wait_result(wf))[0] == "succeeded"


async def test_start_and_advance_spans_join_the_workflow_trace(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "_exporting", True)  # what configure_tracing sets for an exporter
    wf = await harness.start_workflow(SEQUENCE, parameters={"who": "ida"})
    [greet] = await harness.wait_requests(wf, 1)
    await harness.report(outcome(greet, result={"stdout": "hi"}))
    await harness.wait_requests(wf, 2)
    spans = [s for s in exporter.get_finished_spans() if (s.attributes or {}).get("attune.execution.id") == wf]
    assert {s.name for s in spans} == {"workflow.start", "workflow.advance"}
    assert {format(s.context.trace_id, "032x") for s in spans} == {"ab" * 16}
    exporter.shutdown()


async def test_two_replicas_applying_the_same_outcome_schedule_the_next_task_once(harness: Harness) -> None:
    other = CoordinatorApp(harness.settings)
    handle = await start_server(other, address="127.0.0.1:0", settings=harness.settings)
    channel = open_channel(f"127.0.0.1:{handle.port}", harness.settings)
    try:
        wf = await harness.start_workflow(SEQUENCE, parameters={"who": "jo"})
        [greet] = await harness.wait_requests(wf, 1)
        done = outcome(greet, result={"stdout": "hi"})
        stream_a = harness.open_stream()
        stream_b = coordinator_pb2_grpc.CoordinatorServiceStub(channel).ReportOutcomes()
        await asyncio.gather(harness.report(done, stream=stream_a), harness.report(done, stream=stream_b))
        await harness.wait_requests(wf, 2)
        await settle()
        assert harness.scheduler.per_run(wf) == {f"{wf}:greet/1/-/1": 1, f"{wf}:shout/1/-/1": 1}
        stream_b.cancel()
    finally:
        await channel.close()
        await stop_server(other, handle, grace=2.0)
