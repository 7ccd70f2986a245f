"""``compile_workflow``: a WorkflowSpec plus the indexes the state machine needs.

Precomputed once per workflow version so each event costs O(1) in workflow size:
inbound ``do`` sources per task, entry tasks, each join's barrier size, and
which joins lie on a cycle (those start a fresh barrier on every run).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import CompiledWorkflowError
from .expressions import Renderer, compile_value
from .spec import ENGINE_COMMANDS, TaskSpec, WorkflowSpec

__all__ = ["CompiledWorkflow", "compile_workflow"]

FORMAT = 1


@dataclass(frozen=True)
class CompiledWorkflow:
    """An immutable, JSON-serialisable compiled workflow; share one per version."""

    spec: WorkflowSpec
    inbound: dict[str, tuple[str, ...]]
    entry: tuple[str, ...]
    join_on_cycle: frozenset[str]
    digest: str

    tasks: dict[str, TaskSpec] = field(init=False, repr=False, compare=False)
    #: Tasks with a transition that may ``do: retry`` (derived from ``spec``, so not stored).
    retried: frozenset[str] = field(init=False, repr=False, compare=False)
    _renderers: dict[str, Renderer] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", {t.name: t for t in self.spec.tasks})
        retried = frozenset(t.name for t in self.spec.tasks if any("retry" in n.do for n in t.next))
        object.__setattr__(self, "retried", retried)
        object.__setattr__(self, "_renderers", {})

    def input_renderer(self, task: TaskSpec) -> Renderer:
        """``task.input`` precompiled on first use (so each event renders without re-walking it)."""
        renderer = self._renderers.get(task.name)
        if renderer is None:
            renderer = self._renderers[task.name] = compile_value(task.input)
        return renderer

    def join_required(self, task: TaskSpec) -> int:
        """How many distinct inbound tasks must arrive before ``task`` (a join) runs."""
        if task.join == "all":
            return len(self.inbound[task.name])
        return int(task.join or 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; ``from_dict`` restores it exactly."""
        return {**_body(self.spec, self.inbound, self.entry, self.join_on_cycle), "digest": self.digest}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompiledWorkflow:
        """Load a compiled workflow stored with ``to_dict``."""
        if d.get("format") != FORMAT:
            raise CompiledWorkflowError(f"unsupported compiled workflow format {d.get('format')!r} (expected {FORMAT})")
        try:
            spec = WorkflowSpec.from_dict(d["spec"])
            inbound = {k: tuple(v) for k, v in d["inbound"].items()}
            entry = tuple(d["entry"])
            cycle = frozenset(d["join_on_cycle"])
        except (KeyError, TypeError, ValueError) as err:
            raise CompiledWorkflowError(f"malformed compiled workflow: {err!r}") from err
        digest = _digest(_body(spec, inbound, entry, cycle))
        if d.get("digest") not in (None, digest):
            raise CompiledWorkflowError(f"digest mismatch: stored {d.get('digest')}, content {digest}")
        return cls(spec=spec, inbound=inbound, entry=entry, join_on_cycle=cycle, digest=digest)


def compile_workflow(spec: WorkflowSpec) -> CompiledWorkflow:
    """Build the indexes for ``spec`` (already validated by ``parse_workflow``)."""
    successors: dict[str, list[str]] = {t.name: [] for t in spec.tasks}
    inbound_sets: dict[str, dict[str, None]] = {t.name: {} for t in spec.tasks}
    for task in spec.tasks:
        for transition in task.next:
            for target in transition.do:
                if target in ENGINE_COMMANDS:
                    continue
                if task.name not in inbound_sets[target]:
                    inbound_sets[target][task.name] = None
                    successors[task.name].append(target)
    inbound = {name: tuple(sources) for name, sources in inbound_sets.items()}
    entry = tuple(t.name for t in spec.tasks if not inbound[t.name])
    on_cycle = _nodes_on_cycles(successors)
    joins = frozenset(t.name for t in spec.tasks if t.join is not None and t.name in on_cycle)
    digest = _digest(_body(spec, inbound, entry, joins))
    return CompiledWorkflow(spec=spec, inbound=inbound, entry=entry, join_on_cycle=joins, digest=digest)


def _body(
    spec: WorkflowSpec, inbound: dict[str, tuple[str, ...]], entry: tuple[str, ...], joins: frozenset[str]
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "spec": spec.to_dict(),
        "inbound": {k: list(v) for k, v in inbound.items()},
        "entry": list(entry),
        "join_on_cycle": sorted(joins),
    }


def _digest(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _nodes_on_cycles(successors: dict[str, list[str]]) -> set[str]:
    """Nodes in a strongly connected component with a cycle (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: set[str] = set()
    counter = 0
    for root in successors:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = successors[node]
            if i < len(children):
                work.append((node, i + 1))
                child = children[i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in successors[node]:
                    result.update(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result
