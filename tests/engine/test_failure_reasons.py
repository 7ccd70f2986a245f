"""Failure reasons stay bounded: a long child error is cut with a marker (keeping its head and
its tail, where a nested workflow's innermost cause is), and past a number of errors the rest
are counted (docs/workflows.md, Failure handling)."""

from __future__ import annotations

from typing import Any

from attune.engine._event import MAX_ERROR, MAX_ERRORS, MAX_REASON

from .driver import Simulation


def _run(fixture: dict[str, Any]) -> str:
    run = Simulation(fixture, "workflows/reasons.workflow.yaml").execute()
    assert run.finish is not None and run.finish.status == "failed", run.finish
    assert run.finish.error is not None
    return run.finish.error


def test_a_long_child_error_is_cut_keeping_head_and_tail() -> None:
    nested = "".join(f'task "level{i}" (run 1) ended failed and no transition handled it: ' for i in range(200))
    child_error = nested + "workflow nesting depth 201 is over the cap of 200"
    error = _run(
        {
            "workflow": {"tasks": [{"name": "deep", "action": "examples.recurse"}]},
            "outcomes": {"deep": [{"state": "failed", "error": child_error}]},
        }
    )
    prefix = 'task "deep" (run 1) ended failed and no transition handled it: '
    assert error.startswith(prefix + 'task "level0" (run 1)')
    assert error.endswith("workflow nesting depth 201 is over the cap of 200")
    assert " characters cut] … " in error
    assert len(error) <= len(prefix) + MAX_REASON + 40  # the marker's own length


def test_an_item_error_is_cut_too() -> None:
    error = _run(
        {
            "workflow": {"tasks": [{"name": "each", "action": "core.local", "with_items": [1]}]},
            "outcomes": {"each": [{"state": "failed", "error": "x" * 50_000}]},
        }
    )
    assert error.startswith('task "each" (run 1) ended failed and no transition handled it: item 0 ended failed: xxx')
    assert len(error) < MAX_REASON + 100


def test_past_the_cap_errors_are_counted() -> None:
    width = MAX_ERRORS + 7
    branches = [f"b{i}" for i in range(width)]
    tasks: list[dict[str, Any]] = [{"name": "split", "action": "core.noop", "next": [{"do": branches}]}]
    tasks += [{"name": name, "action": "core.local"} for name in branches]
    error = _run(
        {
            "workflow": {"tasks": tasks},
            "outcomes": {name: [{"state": "failed", "error": f"{name} broke"}] for name in branches},
        }
    )
    parts = error.split("; ")
    assert len(parts) == MAX_ERRORS + 1
    assert parts[0] == 'task "b0" (run 1) ended failed and no transition handled it: b0 broke'
    assert parts[-1] == "and 7 more errors"


def test_an_error_quoting_data_is_cut_too() -> None:
    error = _run(
        {
            "workflow": {
                "tasks": [{"name": "t", "action": "core.echo", "input": {"m": "{{ parameters[parameters.k] }}"}}]
            },
            "parameters": {"k": "k" * 100_000},
        }
    )
    assert error.startswith("task \"t\", field input.m: expression '{{ parameters[parameters.k] }}': ")
    assert " characters cut] … " in error and len(error) <= MAX_ERROR + 40
