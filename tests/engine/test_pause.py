"""Pausing and resuming a workflow (``pause`` / ``resume``): launches and task timers are held
while paused, released on resume; cancel and failure end a paused workflow."""

from __future__ import annotations

import json
from collections.abc import Sequence

from attune.engine import (
    CancelTask,
    CancelTimer,
    CompiledWorkflow,
    FinishWorkflow,
    SetTimer,
    StartTask,
    TaskEnded,
    WorkflowState,
    cancel,
    child_paused,
    compile_workflow,
    parse_workflow,
    pause,
    resume,
    start,
    task_ended,
    timer_fired,
)

WORKFLOW = """
version: 1
tasks:
  first:
    action: core.sleep
    input: {seconds: 1}
    next:
      - when: "{{ succeeded() }}"
        do: [second, third]
  second:
    action: core.echo
    input: {message: "two"}
  third:
    action: core.echo
    delay: 10
    input: {message: "three"}
"""

RETRYING = """
version: 1
tasks:
  flaky:
    action: core.local
    input: {cmd: "false"}
    retry: {count: 2, delay: 30}
"""


def _compiled(text: str = WORKFLOW) -> CompiledWorkflow:
    return compile_workflow(parse_workflow(text, source="pause.workflow.yaml"))


def _starts(commands: Sequence[object]) -> list[StartTask]:
    return [c for c in commands if isinstance(c, StartTask)]


def _reloaded(state: WorkflowState) -> WorkflowState:
    """The state as the coordinator reads it back after a restart (entries through JSON)."""
    return WorkflowState.from_entries(json.loads(json.dumps(state.to_entries())))


def test_pause_holds_launches_until_resume() -> None:
    wf = _compiled()
    state = WorkflowState.new(parameters={})
    (first,) = _starts(start(wf, state, now=0).commands)
    assert pause(wf, state, now=1).commands == []
    assert state.status == "pausing"  # first still runs
    assert pause(wf, state, now=1.5).changed == {}  # pausing twice changes nothing
    step = task_ended(wf, state, TaskEnded(first.key, "succeeded", {}), now=2)
    assert _starts(step.commands) == [] and not any(isinstance(c, SetTimer) for c in step.commands)
    assert state.status == "paused"
    state = _reloaded(state)  # a coordinator restarted while paused keeps it paused
    assert state.status == "paused" and state.meta["paused"]
    step = resume(wf, state, now=100)
    assert [s.key.task for s in _starts(step.commands)] == ["second"]
    (timer,) = [c for c in step.commands if isinstance(c, SetTimer)]
    assert timer.fire_at == 110  # the delay of third counts from the resume
    assert state.status == "running"


def test_pause_keeps_a_timer_remaining_time() -> None:
    wf = _compiled(RETRYING)
    state = WorkflowState.new(parameters={})
    (flaky,) = _starts(start(wf, state, now=0).commands)
    step = task_ended(wf, state, TaskEnded(flaky.key, "failed", {}, "exit code 1"), now=10)
    (armed,) = [c for c in step.commands if isinstance(c, SetTimer)]
    assert armed.fire_at == 40
    step = pause(wf, state, now=25)
    assert step.commands == [CancelTimer(armed.timer_id)] and state.status == "paused"
    assert timer_fired(wf, state, armed.timer_id, now=40).commands == []  # a late firing does nothing
    state = _reloaded(state)
    step = resume(wf, state, now=1000)
    assert [c.fire_at for c in step.commands if isinstance(c, SetTimer)] == [1015]  # 15 s were left
    (again,) = _starts(timer_fired(wf, state, armed.timer_id, now=1015).commands)
    assert again.key.attempt == 2


def test_cancel_while_paused_ends_cancelled() -> None:
    wf = _compiled()
    state = WorkflowState.new(parameters={})
    (first,) = _starts(start(wf, state, now=0).commands)
    pause(wf, state, now=1)
    task_ended(wf, state, TaskEnded(first.key, "succeeded", {}), now=2)
    assert state.status == "paused"
    step = cancel(wf, state, now=3)
    assert not any(isinstance(c, (StartTask, CancelTask)) for c in step.commands)  # held ones never started
    (finish,) = [c for c in step.commands if isinstance(c, FinishWorkflow)]
    assert finish.status == "cancelled" and state.status == "cancelled"


def test_cancel_while_pausing_waits_for_the_running_task() -> None:
    wf = _compiled()
    state = WorkflowState.new(parameters={})
    (first,) = _starts(start(wf, state, now=0).commands)
    pause(wf, state, now=1)
    cancel(wf, state, now=2)
    assert state.status == "canceling"
    step = task_ended(wf, state, TaskEnded(first.key, "succeeded", {}), now=3)
    assert _starts(step.commands) == [] and state.status == "cancelled"


def test_a_failure_while_pausing_fails_the_workflow() -> None:
    wf = _compiled()
    state = WorkflowState.new(parameters={})
    (first,) = _starts(start(wf, state, now=0).commands)
    pause(wf, state, now=1)
    step = task_ended(wf, state, TaskEnded(first.key, "failed", {}, "boom"), now=2)
    (finish,) = [c for c in step.commands if isinstance(c, FinishWorkflow)]
    assert finish.status == "failed" and resume(wf, state, now=3).commands == []


NESTING = """
version: 1
tasks:
  inner:
    action: examples.sub_workflow
    next:
      - do: after
  after:
    action: core.echo
    input: {message: "after"}
"""


def test_a_parent_whose_running_children_paused_is_paused() -> None:
    wf = _compiled(NESTING)
    state = WorkflowState.new(parameters={})
    (inner,) = _starts(start(wf, state, now=0).commands)
    assert child_paused(wf, state, inner.key, now=0.5).changed == {}  # not paused itself: ignored
    pause(wf, state, now=1)
    assert state.status == "pausing"  # the nested workflow still runs
    child_paused(wf, state, inner.key, now=2)
    assert state.status == "paused"
    state = _reloaded(state)
    step = cancel(wf, state, now=3)  # the paused child would wait for ever: it is cancelled
    assert step.commands == [CancelTask(inner.key)] and state.status == "canceling"
    task_ended(wf, state, TaskEnded(inner.key, "cancelled", {}), now=4)
    assert state.status == "cancelled"


def test_a_resumed_parent_counts_its_children_as_running_again() -> None:
    wf = _compiled(NESTING)
    state = WorkflowState.new(parameters={})
    (inner,) = _starts(start(wf, state, now=0).commands)
    pause(wf, state, now=1)
    child_paused(wf, state, inner.key, now=2)
    assert resume(wf, state, now=3).commands == [] and state.status == "running"
    pause(wf, state, now=4)
    assert state.status == "pausing"  # the child's earlier pause no longer counts
