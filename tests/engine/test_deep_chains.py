"""Runs that end at once (an empty ``with_items``) are queued, not recursed into.

Before the engine queued ended runs, each such task nested another call frame inside its
predecessor's transitions: a chain of about 250 of them raised RecursionError in ``start``.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from attune.engine import FinishWorkflow, StartTask, WorkflowState, compile_workflow, parse_workflow, start


def _instant(name: str, then: list[str], **extra: Any) -> dict[str, Any]:
    task: dict[str, Any] = {"name": name, "action": "core.echo", "with_items": "{{ [] }}", **extra}
    if then:
        task["next"] = [{"when": "{{ succeeded() }}", "do": then}]
    return task


def _diamond_chain(diamonds: int) -> dict[str, Any]:
    """``diamonds`` × (split → left, right → merge with ``join: all``), every task ending at once,
    and a final task that runs an action: 4 × diamonds + 1 tasks."""
    tasks: list[dict[str, Any]] = []
    for i in range(diamonds):
        after = f"split{i + 1}" if i + 1 < diamonds else "last"
        tasks += [
            _instant(f"split{i}", [f"left{i}", f"right{i}"]),
            _instant(f"left{i}", [f"merge{i}"]),
            _instant(f"right{i}", [f"merge{i}"]),
            _instant(f"merge{i}", [after], join="all"),
        ]
    tasks.append({"name": "last", "action": "core.noop"})
    return {"tasks": tasks}


def _start(document: dict[str, Any]) -> tuple[list[StartTask], list[FinishWorkflow], WorkflowState]:
    wf = compile_workflow(parse_workflow(yaml.safe_dump(document), source="workflows/deep.workflow.yaml"))
    state = WorkflowState.new(parameters={}, depth=0, run_cap=1000)
    step = start(wf, state, now=0.0)
    starts = [c for c in step.commands if isinstance(c, StartTask)]
    finishes = [c for c in step.commands if isinstance(c, FinishWorkflow)]
    return starts, finishes, state


def test_a_5000_task_chain_of_runs_that_end_at_once_completes() -> None:
    tasks = [_instant(f"t{i}", [f"t{i + 1}"] if i + 1 < 5000 else []) for i in range(5000)]
    assert sys.getrecursionlimit() < 5000  # the chain is deeper than the interpreter's stack allows
    starts, finishes, state = _start({"tasks": tasks, "output_map": {"done": "{{ task.t4999 }}"}})
    assert starts == []
    assert [f.status for f in finishes] == ["succeeded"]
    assert finishes[0].result == {"succeeded": True, "done": []}
    assert state.finished


def test_joins_met_inside_one_event_across_5000_tasks() -> None:
    starts, finishes, state = _start(_diamond_chain(1250))
    assert [s.key.task for s in starts] == ["last"]
    assert finishes == []
    assert state.get("runs:merge1249") == 1 and state.get("runs:last") == 1
