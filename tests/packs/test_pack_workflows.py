"""Workflow actions: linked workflow files, standalone workflows, and the engine's checks."""

from __future__ import annotations

import pytest

from attune.packs import load_pack
from tests.packs.packtools import MakePack, problem_lines, refusal

LINKED_ACTION = """\
ref: demo.flow
label: Flow
workflow_file: workflows/flow.workflow.yaml
parameters:
  who: {type: string, default: you}
"""
FLOW = """\
version: 1
tasks:
  - name: greet
    action: demo.hello
    input:
      who: "{{ parameters.who }}"
"""


def standalone(tasks: str, *, ref: str = "demo.solo", extra: str = "") -> str:
    return f"ref: {ref}\nlabel: Solo\nversion: 1\n{extra}tasks:\n{tasks}"


CALL = "  - name: {name}\n    action: {action}\n"


def test_linked_workflow_takes_its_actions_ref_label_parameters(make_pack: MakePack) -> None:
    bundle = load_pack(make_pack({"actions/flow.yaml": LINKED_ACTION, "actions/workflows/flow.workflow.yaml": FLOW}))
    flow = bundle.action("demo.flow")
    assert (flow.runner_type, flow.label, flow.entry_point) == ("workflow", "Flow", None)
    assert flow.workflow_source == "actions/workflows/flow.workflow.yaml"
    assert flow.workflow_yaml == FLOW
    assert flow.parameters["who"]["default"] == "you"
    assert "actions/workflows/flow.workflow.yaml" in bundle.files


def test_standalone_workflow_carries_its_own_ref_label_parameters(make_pack: MakePack) -> None:
    text = standalone(
        CALL.format(name="one", action="demo.hello"), extra="parameters:\n  n: {type: integer, default: 2}\n"
    )
    solo = load_pack(make_pack({"workflows/solo.workflow.yaml": text})).action("demo.solo")
    assert (solo.runner_type, solo.label, solo.workflow_source) == ("workflow", "Solo", "workflows/solo.workflow.yaml")
    assert solo.parameters == {
        "n": {"type": "integer", "description": "", "required": False, "secret": False, "default": 2}
    }


def test_refs_resolve_against_the_registry_and_this_pack_in_any_order(make_pack: MakePack) -> None:
    tasks = CALL.format(name="a", action="demo.zz_last") + CALL.format(name="b", action="other.thing")
    root = make_pack(
        {
            "workflows/solo.workflow.yaml": standalone(
                tasks.replace("  - name: b", "    next: [{do: [b]}]\n  - name: b")
            ),
            "actions/zz_last.yaml": "ref: demo.zz_last\nrunner_type: noop\n",
        }
    )
    assert load_pack(root, known_action_refs={"other.thing"})
    err = refusal(root)
    assert problem_lines(err) == [
        "workflows/solo.workflow.yaml: task \"b\", field action: calls action 'other.thing', "
        "which is neither registered nor in this pack"
    ]


def test_every_task_calling_an_unknown_ref_is_named(make_pack: MakePack) -> None:
    tasks = CALL.format(name="a", action="core.ecko") + CALL.format(name="b", action="core.ecko")
    err = refusal(make_pack({"workflows/solo.workflow.yaml": standalone(tasks)}))
    assert [(p.file, p.field) for p in err.problems] == [
        ("workflows/solo.workflow.yaml", 'task "a", field action'),
        ("workflows/solo.workflow.yaml", 'task "b", field action'),
    ]
    assert all("'core.ecko'" in p.message for p in err.problems)


def test_missing_workflow_file(make_pack: MakePack) -> None:
    err = refusal(make_pack({"actions/flow.yaml": LINKED_ACTION}))
    assert problem_lines(err) == [
        "actions/flow.yaml: field workflow_file: file actions/workflows/flow.workflow.yaml not found in the pack"
    ]


def test_workflow_file_that_does_not_parse(make_pack: MakePack) -> None:
    err = refusal(make_pack({"actions/flow.yaml": LINKED_ACTION, "actions/workflows/flow.workflow.yaml": "tasks: [\n"}))
    assert len(err.problems) == 1
    assert str(err).startswith("actions/workflows/flow.workflow.yaml: invalid YAML: line 2")


def test_standalone_workflow_that_does_not_parse(make_pack: MakePack) -> None:
    err = refusal(make_pack({"workflows/solo.workflow.yaml": "ref: demo.solo\n  tasks: x\n"}))
    assert str(err).startswith("workflows/solo.workflow.yaml: invalid YAML: line 2")


def test_engine_errors_become_problems_of_the_workflow_file(make_pack: MakePack) -> None:
    tasks = (
        "  - name: a\n    action: demo.hello\n    next: [{when: '{{ succeeded( }}', do: [b]}]\n"
        "  - name: b\n    action: demo.hello\n    next: [{do: [a]}]\n"
    )
    err = refusal(make_pack({"workflows/solo.workflow.yaml": standalone(tasks, extra="colour: blue\n")}))
    lines = problem_lines(err)
    assert "workflows/solo.workflow.yaml: field colour: unknown field" in lines
    assert any(line.startswith('workflows/solo.workflow.yaml: task "a", field next[0].when: ') for line in lines)
    assert any(
        line.startswith("workflows/solo.workflow.yaml: field tasks: ") and "no entry task" in line for line in lines
    )
    assert all(p.file == "workflows/solo.workflow.yaml" for p in err.problems)


def test_linked_workflow_errors_name_the_workflow_file(make_pack: MakePack) -> None:
    bad = FLOW + "    retry: {count: 0}\n"
    err = refusal(make_pack({"actions/flow.yaml": LINKED_ACTION, "actions/workflows/flow.workflow.yaml": bad}))
    assert [(p.file, p.field) for p in err.problems] == [
        ("actions/workflows/flow.workflow.yaml", 'task "greet", field retry.count')
    ]


def test_linked_workflow_may_not_contradict_its_action(make_pack: MakePack) -> None:
    text = "ref: demo.other\nparameters:\n  who: {type: string}\n" + FLOW
    err = refusal(make_pack({"actions/flow.yaml": LINKED_ACTION, "actions/workflows/flow.workflow.yaml": text}))
    assert [(p.file, p.field) for p in err.problems] == [
        ("actions/workflows/flow.workflow.yaml", "ref"),
        ("actions/workflows/flow.workflow.yaml", "parameters"),
    ]
    assert "takes its action's ref, label and parameters" in str(err)


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (
            LINKED_ACTION + "runner_type: shell\n",
            "actions/flow.yaml: field runner_type: an action with workflow_file is a workflow action",
        ),
        (
            LINKED_ACTION + "entry_point: flow.sh\n",
            "actions/flow.yaml: field entry_point: a workflow action takes workflow_file",
        ),
        (
            LINKED_ACTION.replace("workflows/flow", "../workflows/flow"),
            "field workflow_file: '../workflows/flow.workflow.yaml' must be a path inside actions/",
        ),
    ],
)
def test_bad_workflow_action_file(make_pack: MakePack, action: str, expected: str) -> None:
    err = refusal(make_pack({"actions/flow.yaml": action, "actions/workflows/flow.workflow.yaml": FLOW}))
    assert expected in str(err)


def test_linked_workflow_action_may_say_runner_type_workflow(make_pack: MakePack) -> None:
    files = {
        "actions/flow.yaml": LINKED_ACTION + "runner_type: workflow\n",
        "actions/workflows/flow.workflow.yaml": FLOW,
    }
    assert load_pack(make_pack(files)).action("demo.flow").runner_type == "workflow"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("other.solo", "workflows/solo.workflow.yaml: field ref: 'other.solo' belongs to pack 'other'"),
        (None, "workflows/solo.workflow.yaml: field ref: missing; must be demo.<name>"),
    ],
)
def test_standalone_workflow_ref(make_pack: MakePack, ref: str | None, expected: str) -> None:
    text = standalone(CALL.format(name="a", action="demo.hello"), ref=ref or "x")
    if ref is None:
        text = text.replace("ref: x\n", "")
    assert expected in str(refusal(make_pack({"workflows/solo.workflow.yaml": text})))


def test_standalone_workflow_parameter_schema_is_checked(make_pack: MakePack) -> None:
    tasks = CALL.format(name="a", action="demo.hello") + "    input: {who: '{{ x( }}'}\n"
    text = standalone(tasks, extra="parameters:\n  n: {type: integr}\n")
    err = refusal(make_pack({"workflows/solo.workflow.yaml": text}))
    # Our checks and the engine's both run, and a field is reported once.
    assert [(p.file, p.field) for p in err.problems] == [
        ("workflows/solo.workflow.yaml", "parameters.n.type"),
        ("workflows/solo.workflow.yaml", 'task "a", field input.who'),
    ]
    assert "unknown type 'integr' (one of string, integer," in str(err)


def test_standalone_workflow_files_must_be_named_dot_workflow_yaml(make_pack: MakePack) -> None:
    err = refusal(make_pack({"workflows/solo.yaml": standalone(CALL.format(name="a", action="demo.hello"))}))
    assert problem_lines(err) == ["workflows/solo.yaml: a standalone workflow file must be named <name>.workflow.yaml"]


def test_workflow_and_action_with_the_same_ref(make_pack: MakePack) -> None:
    text = standalone(CALL.format(name="a", action="demo.hello"), ref="demo.hello")
    err = refusal(make_pack({"workflows/hello.workflow.yaml": text}))
    assert "workflows/hello.workflow.yaml: field ref: 'demo.hello' is already declared by actions/hello.yaml" in str(
        err
    )
