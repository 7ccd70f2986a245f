"""Child requests the scheduler refuses for good (issue #13): only transient codes are retried.
A batch refused as a whole is split, each child asked for in a call of its own, and the one the
scheduler still refuses fails its task with the code and message, instead of the batch being
sent again forever while the workflow stays "running". A batch never exceeds half the message
size limit, so children with large inputs are not refused as one oversized message.
"""

from __future__ import annotations

import json
from typing import Any

from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.workflow.v1 import workflow_pb2
from tests.coordinator.conftest import Harness, outcome, settle
from tests.support.polling import eventually

FAN_OUT = """
version: 1
tasks:
  - name: start
    action: core.echo
    next:
      - do: [a, b, c]
  - name: a
    action: core.echo
  - name: b
    action: broken.thing
  - name: c
    action: core.echo
"""


async def test_a_batch_refused_as_a_whole_fails_only_the_child_that_caused_it(harness: Harness) -> None:
    wf = await harness.start_workflow(FAN_OUT)
    [start] = await harness.wait_requests(wf, 1)
    await harness.report(outcome(start))
    a, b, c = (f"{wf}:{task}/1/-/1" for task in "abc")
    # a and c are stored on their own; b, refused again on its own, fails its task.
    await eventually(lambda: {a, c} <= set(harness.scheduler.ids), within=10, what="a and c to be accepted")
    for request in harness.scheduler.of(wf):
        if request.request_id in (a, c):
            await harness.report(outcome(request))
    state, _, error = await harness.wait_result(wf)
    assert state == "failed"
    assert error == (
        'task "b" (run 1) ended failed and no transition handled it: not started: the scheduler refused the '
        "child request (INTERNAL: internal error; the service logged it with error id 0123abcd)"
    )
    await settle()
    # Once in the batch, once alone; never again.
    assert [sorted(batch) for batch in harness.scheduler.refused_batches if b in batch] == [sorted([a, b, c]), [b]]
    run = await harness.run_of(wf)
    assert [(t.task_name, t.state, bool(t.child_execution_id)) for t in run.task_runs] == [
        ("start", 5, True),  # EXECUTION_STATE_SUCCEEDED
        ("a", 5, True),
        ("b", 6, False),  # EXECUTION_STATE_FAILED, no child
        ("c", 5, True),
    ]


async def test_children_with_large_inputs_go_in_batches_the_scheduler_accepts(harness: Harness) -> None:
    # Six 900 KB inputs are 5.4 MB, more than a 4 MiB message: as one batch, the call failed
    # with RESOURCE_EXHAUSTED every time it was sent again.
    assert harness.settings.max_message_bytes == 4 * 1024 * 1024
    branches = [f"t{i}" for i in range(6)]
    tasks: list[dict[str, Any]] = [{"name": "start", "action": "core.echo", "next": [{"do": branches}]}]
    tasks += [{"name": t, "action": "core.echo", "input": {"message": "{{ parameters.big }}"}} for t in branches]
    wf = await harness.start_workflow(json.dumps({"version": 1, "tasks": tasks}), parameters={"big": "x" * 900_000})
    [start] = await harness.wait_requests(wf, 1)
    await harness.report(outcome(start))
    await eventually(
        lambda: len([r for r in harness.scheduler.of(wf) if r.request_id in harness.scheduler.ids]) == 7,
        within=10,
        what="the six large children to be accepted",
    )
    assert harness.scheduler.refused_batches == []
    assert all(len(r.parameters_json) > 900_000 for r in harness.scheduler.of(wf)[1:])


async def test_a_page_of_runs_is_capped_by_the_max_page_size_setting(harness: Harness) -> None:
    await harness.stop_coordinator()
    harness.settings = harness.settings.replace(max_page_size=3)
    await harness.start_coordinator()
    for _ in range(4):
        await harness.start_workflow(FAN_OUT)
    # page_size 0 means 50, held to ATTUNE_MAX_PAGE_SIZE (it was a fixed 1,000)
    page = await harness.client.ListWorkflowRuns(coordinator_pb2.ListWorkflowRunsRequest(page_size=0))
    assert len(page.runs) == 3 and page.next_page_token
    rest = await harness.client.ListWorkflowRuns(
        coordinator_pb2.ListWorkflowRunsRequest(page_size=3, page_token=page.next_page_token)
    )
    assert rest.runs and not {r.execution_id for r in rest.runs} & {r.execution_id for r in page.runs}
    assert all(isinstance(r, workflow_pb2.WorkflowRun) for r in rest.runs)
