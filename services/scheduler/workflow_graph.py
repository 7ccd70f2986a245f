"""The graph of a workflow's tasks and transitions, as the console draws it.

Built from the engine's own reading of the tasks (`attune.engine.readable_tasks`: legacy
``on_success``, ``decision`` … already folded into ``next``), so the picture is the workflow the
coordinator would run. It is drawn while the author types, so a document with problems still has
a graph: tasks whose name can be read, and an edge per transition target that names one of them
(engine commands and unknown targets draw nothing; the problems say what is wrong).
"""

from __future__ import annotations

from collections.abc import Sequence

from attune.engine import TaskSpec
from attune.registry.v1 import registry_pb2
from attune.states import ExecutionState

__all__ = ["edge_kind", "graph_of"]

# The conditions drawn as their own kind: the task's outcome, spelled as the state it ended in.
_OUTCOMES = {
    "{{succeeded()}}": ExecutionState.SUCCEEDED.value,
    "{{failed()}}": ExecutionState.FAILED.value,
}


def graph_of(tasks: Sequence[TaskSpec]) -> registry_pb2.WorkflowGraph:
    """The graph of `tasks` as `attune.engine.readable_tasks` reads them from a document: nodes
    in document order, then one edge per transition target, in document order."""
    names = {task.name for task in tasks}
    return registry_pb2.WorkflowGraph(
        nodes=[_node(task) for task in tasks],
        edges=[edge for task in tasks for edge in _edges(task, names)],
    )


def edge_kind(when: str | bool | None) -> tuple[str, str]:
    """(kind, label) of a transition's ``when``: ``{{ succeeded() }}`` and ``{{ failed() }}``
    (spaces aside) are "succeeded" and "failed", none (or ``true``) is "always", anything else is
    "when" labelled with its text."""
    if when is None or when is True:
        return "always", "always"
    text = str(when).lower() if isinstance(when, bool) else when
    outcome = _OUTCOMES.get("".join(text.split()))
    return (outcome, outcome) if outcome is not None else ("when", text)


def _node(task: TaskSpec) -> registry_pb2.GraphNode:
    return registry_pb2.GraphNode(
        name=task.name,
        action=task.action,
        with_items=task.with_items is not None,
        join="" if task.join is None else str(task.join),
    )


def _edges(task: TaskSpec, names: set[str]) -> list[registry_pb2.GraphEdge]:
    edges = []
    for transition in task.next:
        kind, label = edge_kind(transition.when)
        edges += [
            registry_pb2.GraphEdge(from_task=task.name, to_task=target, kind=kind, label=label)
            for target in transition.do
            if target in names  # an engine command is never a task's name
        ]
    return edges
