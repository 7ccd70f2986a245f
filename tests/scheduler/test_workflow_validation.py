"""Validating a workflow definition for an editor (services/scheduler/workflow_validation.py): the
problems registration finds, each located at the line and column of the YAML it names, and the
graph of the tasks. Pure functions: no services."""

from __future__ import annotations

import dataclasses

import pytest

from attune.grpcutil.convert import dict_from_struct
from attune.grpcutil.errors import InvalidArgument
from attune.packs import DEFAULT_LIMITS
from attune_services.scheduler.workflow_validation import ActionFields, WorkflowFinding, check_definition

KNOWN = {"core.echo", "core.noop"}

# Line numbers matter below: each problem is asserted at its line and column.
BROKEN = """\
version: 1
tasks:
  - name: fetch
    action: core.nope
    next:
      - when: "{{ succeeded() }}"
        do: report
      - when: "{{ result().code > }}"
        do: report
  - name: report
    action: core.echo
    next:
      - do: [cleanup, publish_it]
  - name: cleanup
    input:
      message: hi
"""


def _check(text: str, action: ActionFields | None = None) -> list[WorkflowFinding]:
    return check_definition(
        text, known_action_refs=KNOWN, limits=DEFAULT_LIMITS, field="definition", action=action
    ).problems


def _where(problems: list[WorkflowFinding]) -> set[tuple[str, str, int, int]]:
    return {(p.task, p.field, p.line, p.column) for p in problems}


def test_each_problem_names_task_field_line_and_column() -> None:
    problems = _check(BROKEN)
    assert _where(problems) == {
        ("fetch", "action", 4, 13),  # the unknown action's value
        ("fetch", "next[1].when", 8, 15),  # the bad expression
        ("report", "next[0].do", 13, 13),  # the unknown task (in the list of targets)
        ("cleanup", "action", 14, 5),  # missing: the closest node that exists, the task's own
    }
    by_field = {(p.task, p.field): p.message for p in problems}
    assert "core.nope" in by_field[("fetch", "action")] and "neither registered" in by_field[("fetch", "action")]
    assert "syntax error" in by_field[("fetch", "next[1].when")]
    assert 'unknown task "publish_it"' in by_field[("report", "next[0].do")]
    assert by_field[("cleanup", "action")] == "missing action"
    assert [p.line for p in problems] == sorted(p.line for p in problems), "problems come in document order"


def test_the_mapping_form_of_tasks_is_located_by_key() -> None:
    text = 'tasks:\n  first:\n    action: core.echo\n    input:\n      "a.b": "{{ nope( }}"\n'
    [problem] = _check(text)
    assert (problem.task, problem.field, problem.line, problem.column) == ("first", "input.a.b", 5, 14)


def test_a_yaml_syntax_error_carries_the_parsers_mark() -> None:
    [problem] = _check("tasks:\n  - name: a\n    action: core.echo\n   bad: [\n")
    assert problem.task == "" and problem.field == ""
    assert problem.message.startswith("invalid YAML: line 4, column 4")
    assert (problem.line, problem.column) == (4, 4)
    result = check_definition("a: [1\n", known_action_refs=KNOWN, limits=DEFAULT_LIMITS, field="definition")
    assert result.document is None and result.graph is None


def test_a_document_that_is_not_a_mapping_is_one_problem_without_graph() -> None:
    result = check_definition("- 1\n- 2\n", known_action_refs=KNOWN, limits=DEFAULT_LIMITS, field="definition")
    assert [(p.field, p.line) for p in result.problems] == [("", 1)]
    assert "mapping" in result.problems[0].message
    assert result.graph is None and not result.to_response().HasField("workflow")


def test_workflow_level_fields_and_duplicates_are_located() -> None:
    text = "tasks:\n  - name: a\n    action: core.echo\n  - name: a\n    action: core.noop\ntimeout: -1\n"
    problems = _check(text)
    assert ("", "timeout", 6, 10) in _where(problems)
    assert ("a", "name", 4, 11) in _where(problems), "a duplicate is located at the second task"


def test_the_graph_follows_the_engine_reading_of_transitions() -> None:
    text = """\
tasks:
  - name: start
    action: core.echo
    next:
      - when: "{{ succeeded() }}"
        do: [left, right]
      - when: "{{failed()}}"
        do: fail
      - when: "{{ result().stdout == 'x' }}"
        do: nowhere
  - name: left
    action: core.echo
    with_items: "{{ [1, 2, 3] }}"
    on_complete: join_them
  - name: right
    action: core.echo
    next:
      - do: join_them
  - name: join_them
    action: core.noop
    join: 2
"""
    result = check_definition(text, known_action_refs=KNOWN, limits=DEFAULT_LIMITS, field="definition")
    assert result.graph is not None
    nodes = [(n.name, n.action, n.with_items, n.join) for n in result.graph.nodes]
    assert nodes == [
        ("start", "core.echo", False, ""),
        ("left", "core.echo", True, ""),
        ("right", "core.echo", False, ""),
        ("join_them", "core.noop", False, "2"),
    ]
    edges = [(e.from_task, e.to_task, e.kind, e.label) for e in result.graph.edges]
    assert edges == [
        ("start", "left", "succeeded", "succeeded"),
        ("start", "right", "succeeded", "succeeded"),
        ("left", "join_them", "always", "always"),  # legacy on_complete, folded by the engine
        ("right", "join_them", "always", "always"),
    ], "engine commands (fail) and unknown targets (nowhere) draw no edge"
    assert [(p.task, p.field) for p in result.problems] == [("start", "next[2].do")]
    response = result.to_response()
    assert dict_from_struct(response.workflow)["tasks"][3]["join"] == 2
    assert [e.kind for e in response.graph.edges] == ["succeeded", "succeeded", "always", "always"]


def test_a_when_edge_is_labelled_with_its_condition() -> None:
    text = (
        "tasks:\n  - name: a\n    action: core.echo\n    next:\n"
        "      - when: \"{{ result().stdout == 'x' }}\"\n        do: b\n"
        "  - name: b\n    action: core.noop\n"
    )
    result = check_definition(text, known_action_refs=KNOWN, limits=DEFAULT_LIMITS, field="definition")
    assert result.problems == []
    assert result.graph is not None
    [edge] = result.graph.edges
    assert (edge.kind, edge.label) == ("when", "{{ result().stdout == 'x' }}")


def test_a_definition_beyond_a_yaml_limit_is_refused_not_reported() -> None:
    small = dataclasses.replace(DEFAULT_LIMITS, yaml=dataclasses.replace(DEFAULT_LIMITS.yaml, max_bytes=64))
    with pytest.raises(InvalidArgument) as refused:
        check_definition("tasks: []\n" + "#" * 100, known_action_refs=KNOWN, limits=small, field="action.definition")
    assert refused.value.violations[0].field == "action.definition"
    assert "ATTUNE_MAX_YAML_BYTES" in refused.value.violations[0].description


def test_an_actions_definition_may_not_contradict_the_action() -> None:
    text = "ref: p.other\nlabel: Mine\nconcurrency: {limit: 1}\ntasks:\n  - name: a\n    action: p.wf\n"
    action = ActionFields(ref="p.wf", label="Mine", parameters={})
    problems = _check(text, action=action)
    assert {(p.field, p.line) for p in problems} == {("ref", 1), ("concurrency", 3)}
    # The action itself is known (a workflow may call itself), and the same ref and label are fine.
    assert _check("ref: p.wf\nlabel: Mine\ntasks:\n  - name: a\n    action: p.wf\n", action=action) == []


def test_long_messages_are_cut_and_a_nul_is_a_problem() -> None:
    big = "x" * 5000
    [problem] = _check(f"tasks:\n  - name: a\n    action: core.echo\n    input: [{big}]\n")
    assert problem.field == "input" and len(problem.message) < 1100 and problem.message.endswith("characters)")
    [nul] = _check("tasks:\n  - name: a\x00\n")
    assert nul.message.startswith("invalid YAML") and "#x0000" in nul.message
