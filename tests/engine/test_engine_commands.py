"""Engine commands in ``do`` (``continue``, ``fail``, ``noop``, ``retry``) across a restart.

The behaviour of each command is in the ``cmd_*`` fixtures; here the coordinator's view: a
``do: retry`` waiting on its delay, or with items still running, continues from entries that
went through JSON into a fresh state and a compiled workflow loaded from its stored form.
"""

from __future__ import annotations

import json

from attune.engine import (
    CompiledWorkflow,
    FinishWorkflow,
    SetTimer,
    StartTask,
    TaskEnded,
    TaskRunKey,
    WorkflowState,
    compile_workflow,
    parse_workflow,
    start,
    task_ended,
    timer_fired,
)

DOC = """
tasks:
  - name: fetch
    action: core.local
    input: {url: "{{ parameters.url }}"}
    retry: {count: 1, delay: 30, when: "{{ false }}"}
    next:
      - when: "{{ failed() }}"
        do: retry
  - name: each
    action: core.echo
    with_items: [a, b]
    input: {x: "{{ item }}"}
    next:
      - when: "{{ failed() }}"
        do: retry
"""


def _restart(wf: CompiledWorkflow, state: WorkflowState) -> tuple[CompiledWorkflow, WorkflowState]:
    """What a coordinator restart gives back: both reloaded from their stored JSON."""
    entries = json.loads(json.dumps(state.to_entries()))
    return CompiledWorkflow.from_dict(json.loads(json.dumps(wf.to_dict()))), WorkflowState.from_entries(entries)


def test_a_commanded_retry_continues_after_a_restart() -> None:
    wf = compile_workflow(parse_workflow(DOC, source="w.yaml"))
    state = WorkflowState.new(parameters={"url": "http://x"})
    step = start(wf, state, now=0.0)
    assert [c.key.as_str() for c in step.commands if isinstance(c, StartTask)] == [
        "fetch/1/-/1",
        "each/1/0/1",
        "each/1/1/1",
    ]

    step = task_ended(wf, state, TaskEnded(TaskRunKey("fetch", 1, None, 1), "failed", {}), now=1.0)
    assert step.commands == [SetTimer("retry:fetch/1/-/2", 31.0, "retry")]  # the block's delay
    step = task_ended(wf, state, TaskEnded(TaskRunKey("each", 1, 0, 1), "failed", {}), now=2.0)
    assert step.commands == []  # item 1 still runs: the run has not ended yet

    wf, state = _restart(wf, state)
    step = task_ended(wf, state, TaskEnded(TaskRunKey("each", 1, 1, 1), "succeeded", {}), now=3.0)
    restarted = [c for c in step.commands if isinstance(c, StartTask)]
    assert [(c.key.as_str(), c.input) for c in restarted] == [("each/1/0/2", {"x": "a"}), ("each/1/1/2", {"x": "b"})]

    wf, state = _restart(wf, state)
    step = timer_fired(wf, state, "retry:fetch/1/-/2", now=31.0)
    assert [(c.key.as_str(), c.input) for c in step.commands] == [("fetch/1/-/2", {"url": "http://x"})]  # type: ignore[union-attr]

    wf, state = _restart(wf, state)
    task_ended(wf, state, TaskEnded(TaskRunKey("each", 1, 0, 2), "succeeded", {"x": "a"}), now=32.0)
    task_ended(wf, state, TaskEnded(TaskRunKey("each", 1, 1, 2), "succeeded", {"x": "b"}), now=32.0)
    assert not state.keys_with_prefix("items:") and not state.keys_with_prefix("run:")  # kept only while needed
    step = task_ended(wf, state, TaskEnded(TaskRunKey("fetch", 1, None, 2), "failed", {}, "exit 7"), now=33.0)
    finish = step.commands[-1]
    assert isinstance(finish, FinishWorkflow) and finish.status == "failed"
    assert finish.error == 'task "fetch" (run 1) ended failed after 2 attempts and no transition handled it: exit 7'
