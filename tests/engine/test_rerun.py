"""Re-running a workflow from a task: seeded from the original run (``start_from``)."""

from __future__ import annotations

from collections.abc import Sequence

from attune.engine import (
    CompiledWorkflow,
    FinishWorkflow,
    StartTask,
    TaskEnded,
    WorkflowState,
    compile_workflow,
    parse_workflow,
    seed_entries,
    start,
    start_from,
    task_ended,
)

WORKFLOW = """
version: 1
tasks:
  fetch:
    action: core.echo
    input: {message: "fetch"}
    next:
      - when: "{{ succeeded() }}"
        publish: [{token: "{{ result().token }}"}]
        do: deploy
  deploy:
    action: core.local
    input: {cmd: "deploy {{ vars.token }}", attempt: 1}
    next:
      - when: "{{ succeeded() }}"
        do: report
  report:
    action: core.echo
    input: {message: "{{ task.deploy.version }} with {{ vars.token }}"}
output_map:
  token: "{{ vars.token }}"
"""


def _compiled() -> CompiledWorkflow:
    return compile_workflow(parse_workflow(WORKFLOW, source="rerun.workflow.yaml"))


def _starts(step_commands: Sequence[object]) -> list[StartTask]:
    return [c for c in step_commands if isinstance(c, StartTask)]


def _original(wf: CompiledWorkflow) -> WorkflowState:
    """fetch succeeds (publishing token), deploy fails: the workflow fails."""
    state = WorkflowState.new(parameters={})
    (fetch,) = _starts(start(wf, state, now=0).commands)
    (deploy,) = _starts(task_ended(wf, state, TaskEnded(fetch.key, "succeeded", {"token": "t1"}), now=1).commands)
    assert deploy.input["cmd"] == "deploy t1"
    step = task_ended(wf, state, TaskEnded(deploy.key, "failed", {"exit_code": 1}, "exit code 1"), now=2)
    assert state.status == "failed" and any(isinstance(c, FinishWorkflow) for c in step.commands)
    return state


def test_rerun_from_failed_task_keeps_what_ran_and_takes_new_input() -> None:
    wf = _compiled()
    seed = seed_entries(_original(wf).to_entries(), ["deploy"])
    assert "res:fetch" in seed and "v:token" in seed and "res:deploy" not in seed
    state = WorkflowState.new(parameters={})
    step = start_from(wf, state, seed=seed, from_tasks=["deploy"], task_inputs={"deploy": {"attempt": 2}}, now=10)
    (deploy,) = _starts(step.commands)  # fetch does not run again
    assert deploy.key.task == "deploy" and deploy.key.run == 1
    assert deploy.input == {"cmd": "deploy t1", "attempt": 2}
    (report,) = _starts(task_ended(wf, state, TaskEnded(deploy.key, "succeeded", {"version": "v9"}), now=11).commands)
    assert report.input == {"message": "v9 with t1"}
    step = task_ended(wf, state, TaskEnded(report.key, "succeeded", {}), now=12)
    (finish,) = [c for c in step.commands if isinstance(c, FinishWorkflow)]
    assert finish.status == "succeeded" and finish.result == {"succeeded": True, "token": "t1"}
    # the whole state is JSON data: the coordinator stores it as entries
    assert state.to_entries()["wf"]["rerun_inputs"] == {"deploy": {"attempt": 2}}


def test_rerun_from_a_task_the_workflow_lacks_fails_naming_it() -> None:
    wf = _compiled()
    state = WorkflowState.new(parameters={})
    step = start_from(wf, state, seed={}, from_tasks=["nosuch"], now=0)
    (finish,) = [c for c in step.commands if isinstance(c, FinishWorkflow)]
    assert finish.status == "failed" and "nosuch" in (finish.error or "")
    assert not _starts(step.commands)


JOIN = """
version: 1
tasks:
  - {name: a, action: core.noop, next: [{when: "{{ succeeded() }}", do: c}]}
  - {name: b, action: core.noop, next: [{when: "{{ succeeded() }}", do: c}]}
  - {name: c, action: core.noop, join: all}
"""


def test_a_join_after_the_rerun_task_counts_the_branch_that_is_not_run_again() -> None:
    wf = compile_workflow(parse_workflow(JOIN, source="join.workflow.yaml"))
    original = WorkflowState.new(parameters={})
    a, b = _starts(start(wf, original, now=0).commands)
    assert not _starts(task_ended(wf, original, TaskEnded(a.key, "succeeded", {"a": 1}), now=1).commands)
    task_ended(wf, original, TaskEnded(b.key, "failed", {}), now=2)
    assert original.status == "failed"

    state = WorkflowState.new(parameters={})
    from_b = ["b"]
    (b2,) = _starts(
        start_from(wf, state, seed=seed_entries(original.to_entries(), from_b), from_tasks=from_b, now=3).commands
    )
    (c,) = _starts(task_ended(wf, state, TaskEnded(b2.key, "succeeded", {}), now=4).commands)
    assert c.key.task == "c"
    assert state.get_value("res:a") == {"a": 1}
