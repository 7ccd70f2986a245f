"""Cancelling a wide with-items task: the children's cancels go to the scheduler concurrently."""

from __future__ import annotations

from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from tests.coordinator.conftest import Harness, outcome
from tests.support.polling import eventually

WIDTH = 20
WIDE = f"""
version: 1
cancellation_policy: cancel_running
tasks:
  - name: each
    action: core.sleep
    with_items: "{{{{ range({WIDTH}) | list }}}}"
"""


async def test_the_children_of_a_wide_task_are_cancelled_concurrently(harness: Harness) -> None:
    wf = await harness.start_workflow(WIDE)
    children = await harness.wait_requests(wf, WIDTH)
    await eventually(lambda: all(c.request_id in harness.scheduler.ids for c in children), within=5, what="dispatch")
    # One after another, WIDTH cancels of 0.2 s each would take 4 s and never overlap.
    harness.scheduler.cancel_delay = 0.2
    await harness.client.CancelWorkflow(coordinator_pb2.CancelWorkflowRequest(execution_id=wf))
    ids = {harness.scheduler.ids[c.request_id] for c in children}
    await eventually(lambda: ids <= set(harness.scheduler.cancels), within=2, what=f"{WIDTH} cancels within 2 s")
    assert harness.scheduler.most_cancels_in_flight > 1
    await harness.report(*(outcome(c, "cancelled", execution_id=harness.scheduler.ids[c.request_id]) for c in children))
    state, result, _ = await harness.wait_result(wf)
    assert state == "cancelled" and result["succeeded"] is False
