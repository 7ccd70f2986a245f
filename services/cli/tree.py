"""The live task tree of ``attune execution watch``: build it from the scheduler's answers,
render it as indented lines, and show it (redrawn on a TTY, a line per change otherwise)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

import grpc

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_from_proto
from attune.states import TERMINAL
from attune.workflow.v1 import workflow_pb2
from attune_services.cli.client import Client
from attune_services.cli.output import seconds_of, state_of, summary_text

MAX_DEPTH = 10


@dataclass
class TreeNode:
    """One line of the tree: a workflow, a task run or a plain execution."""

    key: str
    label: str
    state: str
    started: float | None
    finished: float | None
    children: list[TreeNode] = field(default_factory=list)

    def elapsed(self, now: float) -> str:
        """Seconds from start to end (or to now while running); "" before it starts."""
        if self.started is None:
            return ""
        return f"{max(0.0, (self.finished or now) - self.started):.1f}s"


def _node_of_execution(execution: execution_pb2.Execution, key: str, label: str) -> TreeNode:
    started = seconds_of(execution.started_at) or seconds_of(execution.created_at)
    return TreeNode(key, label, state_of(execution), started, seconds_of(execution.finished_at))


def summary_node(execution: execution_pb2.Execution, summary: execution_pb2.ChildrenSummary) -> TreeNode:
    """The execution as one line with its children's summary: the tree of a workflow with more
    children than a display can follow (their counts change as they run)."""
    label = f"{execution.action_ref}  {execution.id}  ({summary_text(summary)})"
    return _node_of_execution(execution, execution.id, label)


async def _workflow_run(client: Client, execution_id: str) -> workflow_pb2.WorkflowRun | None:
    try:
        response = await client.workflows.GetWorkflowRun(workflow_pb2.GetWorkflowRunRequest(execution_id=execution_id))
    except grpc.RpcError:
        return None  # not (yet) a workflow run the coordinator knows: fall back to the children list
    return response.run


def _task_label(run: workflow_pb2.TaskRun) -> str:
    label = run.task_name
    if run.item_index >= 0:
        label += f"[{run.item_index}]"
    if run.run > 1:
        label += f" #{run.run}"
    if run.attempt > 1:
        label += f" (attempt {run.attempt})"
    return f"{label}  {run.action_ref}" if run.action_ref else label


async def build_tree(
    client: Client,
    execution: execution_pb2.Execution,
    children: Sequence[execution_pb2.Execution],
    depth: int = 0,
) -> TreeNode:
    """The execution with its task runs (a workflow) or children, nested workflows expanded."""
    node = _node_of_execution(execution, execution.id, f"{execution.action_ref}  {execution.id}")
    by_id = {c.id: c for c in children}
    run = await _workflow_run(client, execution.id) if execution.runner_type == "workflow" else None
    if run is None:
        for child in children:
            task = child.link.task_name if child.HasField("link") else ""
            label = f"{task}  {child.action_ref}" if task else child.action_ref
            node.children.append(await _expand(client, _node_of_execution(child, child.id, label), child, depth))
        return node
    for task_run in run.task_runs:
        key = f"{execution.id}/{task_run.task_name}/{task_run.run}/{task_run.item_index}/{task_run.attempt}"
        task_child = by_id.get(task_run.child_execution_id)
        state = execution_state_from_proto(task_run.state) or (state_of(task_child) if task_child else "waiting")
        started = seconds_of(task_run.started_at) or (seconds_of(task_child.created_at) if task_child else None)
        sub = TreeNode(key, _task_label(task_run), state, started, seconds_of(task_run.finished_at))
        node.children.append(await _expand(client, sub, task_child, depth))
    return node


async def _expand(client: Client, node: TreeNode, child: execution_pb2.Execution | None, depth: int) -> TreeNode:
    """Adds a nested workflow's own tree under its task's node."""
    if child is None or child.runner_type != "workflow" or depth + 1 >= MAX_DEPTH:
        return node
    try:
        response = await client.executions.GetExecution(execution_pb2.GetExecutionRequest(id=child.id))
    except grpc.RpcError:
        return node
    nested = await build_tree(client, response.execution, response.children, depth + 1)
    node.children = nested.children
    return node


def render(node: TreeNode, now: float) -> list[str]:
    """The tree as lines: name, state and elapsed time, children drawn under their parent."""
    rows: list[tuple[str, TreeNode]] = [("", node)]

    def walk(parent: TreeNode, prefix: str) -> None:
        for i, child in enumerate(parent.children):
            last = i == len(parent.children) - 1
            rows.append((prefix + ("└─ " if last else "├─ "), child))
            walk(child, prefix + ("   " if last else "│  "))

    walk(node, "")
    width = max(len(p) + len(n.label) for p, n in rows)
    return [f"{(p + n.label).ljust(width)}  {n.state:<10} {n.elapsed(now)}".rstrip() for p, n in rows]


class TreeDisplay:
    """Shows successive trees: redrawn in place on a terminal, one line per change otherwise."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.drawn = 0
        self.states: dict[str, str] = {}

    def show(self, tree: TreeNode) -> None:
        """Draws the tree (TTY) or prints the nodes whose state changed."""
        now = time.time()
        if self.live:
            if self.drawn:
                self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            lines = render(tree, now)
            self.stream.write("\n".join(lines) + "\n")
            self.drawn = len(lines)
        else:
            self._changes(tree, now, None)
        self.stream.flush()

    def _changes(self, node: TreeNode, now: float, path: str | None) -> None:
        # The root is named in full; tasks by their path below it ("nested_task / echo  core.echo").
        name = node.label if path is None else (f"{path} / {node.label}" if path else node.label)
        changed = self.states.get(node.key) != node.state
        self.states[node.key] = node.state
        line = f"{name}: {node.state}{' ' + node.elapsed(now) if node.elapsed(now) else ''}\n"
        ended = node.state in TERMINAL
        if changed and not ended:
            self.stream.write(line)
        for child in node.children:
            self._changes(child, now, "" if path is None else name)
        if changed and ended:  # in causal order: after the last changes of what it waited for
            self.stream.write(line)
