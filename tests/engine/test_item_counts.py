"""attune.engine.item_counts: a with_items run's item count, read from the engine's stored state
entries while the run has not ended (what GetWorkflowRun reports as WorkflowRun.items)."""

from __future__ import annotations

from typing import Any

from attune.engine import (
    StartTask,
    TaskEnded,
    TaskRunKey,
    WorkflowState,
    compile_workflow,
    item_counts,
    parse_workflow,
    start,
    task_ended,
)


def test_counts_come_from_the_entries_of_runs_not_yet_ended() -> None:
    entries: dict[str, Any] = {
        "run:each/1": {"next": 2, "active": 1, "count": 7, "concurrency": 1, "bad": []},
        "run:a/b/2": {"count": 3},  # a task name holding "/" keeps it
        "run:odd/x": {"count": 3},  # not a run number: ignored
        "items:each/1": [1, 2, 3],
        "vars": {"count": 9},
    }
    assert item_counts(entries) == {("each", 1): 7, ("a/b", 2): 3}


DOC = """
tasks:
  - name: each
    action: core.echo
    with_items: [a, b, c]
    concurrency: 1
    input: {x: "{{ item }}"}
"""


def test_a_held_back_run_counts_all_its_items_until_it_ends() -> None:
    wf = compile_workflow(parse_workflow(DOC, source="w.yaml"))
    state = WorkflowState.new(parameters={})
    step = start(wf, state, now=0.0)
    assert [c.key.as_str() for c in step.commands if isinstance(c, StartTask)] == ["each/1/0/1"]
    assert item_counts(state.to_entries()) == {("each", 1): 3}
    for item in range(3):
        task_ended(wf, state, TaskEnded(TaskRunKey("each", 1, item, 1), "succeeded", {}), now=1.0 + item)
    assert item_counts(state.to_entries()) == {}
