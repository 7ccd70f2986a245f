"""The public API other services code against: spec, compile, keys, commands, state."""

from __future__ import annotations

import json

import pytest

from attune.engine import (
    CancelTask,
    CancelTimer,
    CompiledWorkflow,
    CompiledWorkflowError,
    FinishWorkflow,
    SetTimer,
    SpecError,
    StartTask,
    TaskEnded,
    TaskRunKey,
    WorkflowSpecError,
    WorkflowState,
    WorkflowStateError,
    cancel,
    command_from_dict,
    compile_workflow,
    parse_workflow,
    start,
    task_ended,
    timer_fired,
    workflow_action_refs,
)
from attune.engine.bench import chain_document, drive, fanout_document

DOC = """
ref: examples.deploy
label: Deploy
parameters: {host: {type: string, required: true}}
tasks:
  - name: build
    action: core.local
    next: [{do: [test, lint]}]
  - {name: test, action: core.local, next: [{do: ship}]}
  - {name: lint, action: examples.lint, next: [{do: ship}]}
  - {name: ship, action: core.echo, join: all}
"""


def test_parse_accepts_yaml_text_and_mappings() -> None:
    spec = parse_workflow(DOC, source="a.yaml")
    assert spec.ref == "examples.deploy" and spec.parameters["host"]["type"] == "string"
    import yaml

    assert parse_workflow(yaml.safe_load(DOC), source="a.yaml") == spec
    assert workflow_action_refs(spec) == {"core.local", "examples.lint", "core.echo"}


def test_spec_errors_carry_source_path_and_message() -> None:
    with pytest.raises(WorkflowSpecError) as caught:
        parse_workflow(
            {"tasks": [{"name": "x", "action": "core.noop", "next": [{"do": "y"}]}]}, source="workflows/x.workflow.yaml"
        )
    [error] = caught.value.errors
    assert isinstance(error, SpecError)
    assert (error.source, error.path) == ("workflows/x.workflow.yaml", 'task "x", field next[0].do')
    assert str(error) == 'workflows/x.workflow.yaml: task "x", field next[0].do: transitions to unknown task "y"'
    assert str(caught.value) == str(error)


def test_non_mapping_document_is_refused() -> None:
    with pytest.raises(WorkflowSpecError, match=r"x\.yaml: document: must be a mapping"):
        parse_workflow("- a\n- b\n", source="x.yaml")


def test_compile_indexes_and_round_trip() -> None:
    wf = compile_workflow(parse_workflow(DOC, source="a.yaml"))
    assert wf.entry == ("build",)
    assert wf.inbound["ship"] == ("test", "lint")
    assert wf.join_on_cycle == frozenset()
    again = CompiledWorkflow.from_dict(json.loads(json.dumps(wf.to_dict())))
    assert again == wf and again.digest == wf.digest and len(wf.digest) == 64
    other = compile_workflow(parse_workflow(DOC.replace("examples.lint", "examples.lint2"), source="a.yaml"))
    assert other.digest != wf.digest


def test_from_dict_rejects_bad_input() -> None:
    d = compile_workflow(parse_workflow(DOC, source="a.yaml")).to_dict()
    with pytest.raises(CompiledWorkflowError, match="digest mismatch"):
        CompiledWorkflow.from_dict({**d, "entry": ["test"]})
    with pytest.raises(CompiledWorkflowError, match="format"):
        CompiledWorkflow.from_dict({**d, "format": 99})


def test_task_run_key_string_form() -> None:
    for key in (TaskRunKey("deploy", 1, None, 1), TaskRunKey("a-b_c", 12, 3, 4)):
        assert TaskRunKey.parse(key.as_str()) == key
    assert TaskRunKey("deploy", 2, 5, 3).as_str() == "deploy/2/5/3"
    assert TaskRunKey("deploy", 1, None, 1).as_str() == "deploy/1/-/1"
    with pytest.raises(WorkflowStateError):
        TaskRunKey.parse("nonsense")


def test_commands_round_trip() -> None:
    key = TaskRunKey("t", 1, 0, 2)
    for command in (
        StartTask(key, "core.echo", {"a": [1]}, 5.0),
        CancelTask(key),
        SetTimer("retry:t/1/0/3", 12.5, "retry"),
        CancelTimer("x"),
        FinishWorkflow("failed", {"succeeded": False, "error": "e"}, "e"),
    ):
        assert command_from_dict(json.loads(json.dumps(command.to_dict()))) == command


def test_state_entries_round_trip_and_validation() -> None:
    state = WorkflowState.new(parameters={"a": 1}, depth=2, run_cap=7)
    again = WorkflowState.from_entries(json.loads(json.dumps(state.to_entries())))
    assert again.status == "running" and again.to_entries() == state.to_entries()
    with pytest.raises(WorkflowStateError):
        WorkflowState.from_entries({})


def test_events_that_do_not_apply_are_no_ops() -> None:
    wf = compile_workflow(parse_workflow(DOC, source="a.yaml"))
    state = WorkflowState.new(parameters={})
    first = start(wf, state, now=0)
    assert [c.key.task for c in first.commands if isinstance(c, StartTask)] == ["build"]
    assert first.changed["wf"]["started"] is True
    assert start(wf, state, now=1).commands == []
    assert timer_fired(wf, state, "no-such-timer", now=1).commands == []
    unknown = TaskEnded(TaskRunKey("test", 1, None, 1), "succeeded", {})
    assert task_ended(wf, state, unknown, now=1).commands == []  # never started
    build = TaskEnded(TaskRunKey("build", 1, None, 1), "succeeded", {})
    assert len(task_ended(wf, state, build, now=1).commands) == 2
    assert task_ended(wf, state, build, now=2).changed == {}  # duplicate
    assert cancel(wf, state, now=3).changed["wf"]["status"] == "canceling"
    assert cancel(wf, state, now=3).commands == []
    for task in ("test", "lint"):
        step = task_ended(wf, state, TaskEnded(TaskRunKey(task, 1, None, 1), "succeeded", {}), now=4)
    assert step.commands == [
        FinishWorkflow("cancelled", {"succeeded": False, "error": "workflow cancelled"}, "workflow cancelled")
    ]
    assert state.status == "cancelled"
    assert cancel(wf, state, now=5).commands == [] and start(wf, state, now=5).changed == {}


def test_changes_per_event_stay_small() -> None:
    """Step.changed is proportional to the event, not to the workflow."""
    for doc in (chain_document(300), fanout_document(300)):
        wf = compile_workflow(parse_workflow(doc, source="x"))
        state = WorkflowState.new(parameters={})
        pending = [c for c in start(wf, state, now=0).commands if isinstance(c, StartTask)]
        while pending:
            command = pending.pop(0)
            step = task_ended(wf, state, TaskEnded(command.key, "succeeded", {}), now=0)
            # a few entries for the run that ended, a couple per task it starts
            assert len(step.changed) <= 6 + 2 * len(step.commands), step.changed
            pending += [c for c in step.commands if isinstance(c, StartTask)]
        assert state.status == "succeeded"


def test_benchmark_workflows_complete() -> None:
    for doc in (chain_document(50), fanout_document(50)):
        events, status = drive(compile_workflow(parse_workflow(doc, source="x")))
        assert status == "succeeded" and events == len(doc["tasks"]) + 1
