"""Re-running a workflow from some of its tasks, seeded with what an original run left.

``start_from`` is ``start``'s counterpart for a re-run: instead of rendering ``vars`` and running
the entry tasks, it takes the original run's published variables (``v:``) as they were when it
ended and the results (``res:``) of its tasks but those the named tasks lead to, and runs the
named tasks again (their own joins do not hold them back: they ran in the original). Everything
downstream follows the graph as usual; a join there counts the branches that arrived in the
original and do not run again (``ja:``/``jdone:``). A task named
may get extra input (``task_inputs``): merged over its rendered input on each of its runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._event import Event
from ._runs import schedule_run
from .commands import SetTimer, Step
from .graph import CompiledWorkflow
from .machine import WORKFLOW_TIMEOUT_TIMER, _settle
from .state import WorkflowState

__all__ = ["RERUN_INPUTS", "downstream", "seed_entries", "start_from"]

#: The ``wf`` meta field holding the extra input of re-run tasks: ``{task: {key: value}}``.
RERUN_INPUTS = "rerun_inputs"
_SEEDED = ("v:", "res:")
_TAKEN = (*_SEEDED, "ja:", "jdone:")


def seed_entries(original: Mapping[str, Any], from_tasks: Sequence[str]) -> dict[str, Any]:
    """What a re-run takes from the original run's entries: its variables, the results of its
    tasks except those of the tasks that run again, and its join arrivals (``start_from`` counts
    them toward the joins after those tasks)."""
    again = {"res:" + name for name in from_tasks}
    return {k: v for k, v in original.items() if k.startswith(_TAKEN) and k not in again}


def start_from(
    wf: CompiledWorkflow,
    state: WorkflowState,
    *,
    seed: Mapping[str, Any],
    from_tasks: Sequence[str],
    task_inputs: Mapping[str, Mapping[str, Any]] | None = None,
    now: float,
) -> Step:
    """Start a re-run: the ``seed`` entries (see ``seed_entries``), then a new run of each task of
    ``from_tasks``; a task the workflow does not have fails it, naming the task."""
    if state.finished or state.meta["started"]:
        return Step()
    ev = Event(wf, state, now)
    state.take_changes()
    inputs = {name: dict(extra) for name, extra in (task_inputs or {}).items()}
    state.update_meta(started=True, **({RERUN_INPUTS: inputs} if inputs else {}))
    unknown = [name for name in [*from_tasks, *inputs] if name not in wf.tasks]
    if unknown:
        ev.fail(f"re-run from task{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: not in the workflow")
        return _settle(ev)
    again = downstream(wf, from_tasks)
    for key, value in seed.items():
        if key.startswith(_SEEDED) and value is not None and not (key.startswith("res:") and key[4:] in again):
            state.set(key, value)
    _seed_joins(wf, state, seed, again)
    if wf.spec.timeout is not None:
        state.update_meta(timeout_timer=True)
        ev.emit(SetTimer(WORKFLOW_TIMEOUT_TIMER, now + wf.spec.timeout, "workflow_timeout"))
    for name in dict.fromkeys(from_tasks):
        schedule_run(ev, wf.tasks[name])
    return _settle(ev)


def downstream(wf: CompiledWorkflow, names: Sequence[str]) -> set[str]:
    """The tasks a run of ``names`` can lead to through ``do`` edges, ``names`` included."""
    found = {name for name in names if name in wf.tasks}
    todo = list(found)
    while todo:
        for transition in wf.tasks[todo.pop()].next:
            for target in transition.do:
                if target in wf.tasks and target not in found:
                    found.add(target)
                    todo.append(target)
    return found


def _seed_joins(wf: CompiledWorkflow, state: WorkflowState, original: Mapping[str, Any], again: set[str]) -> None:
    """A join after the re-run tasks counts the sources that arrived in the original and do not
    run again (a barrier met there: every source that ran), so it does not wait for them."""
    for name in sorted(again):
        task = wf.tasks[name]
        if task.join is None or name in wf.join_on_cycle:
            continue  # a join on a cycle starts a fresh barrier per run anyway
        met = bool(original.get("jdone:" + name))
        arrived = [
            source
            for source in wf.inbound[name]
            if source not in again and (f"ja:{name}/{source}" in original or (met and "res:" + source in original))
        ]
        for source in arrived:
            state.set(f"ja:{name}/{source}", 0)
        if arrived:
            state.set("j:" + name, {"arrived": len(arrived)})
