"""Validating a workflow definition given through the API (ValidateWorkflow, and CreateAction and
UpdateAction of a workflow action with a `definition`) exactly as registering it in a pack would.

The checks are the registry's own (`attune.packs`): the YAML read within the ATTUNE_MAX_YAML_*
limits, the engine's validation of the document, every task's action registered (or the action
being made, which may call itself), task names that fit the registry, and the document's
`parameters` schema. What this module adds is for an editor: each problem located at the line
and column of the YAML node its field names (`workflow_locations.py`), the parsed document, and
the graph of its tasks (`workflow_graph.py`). A definition beyond a limit is not a problem to
show but a request to refuse: InvalidArgument.

An action's own definition must agree with the action, as a pack's `workflow_file` must agree
with its action file: a `ref`, `label` or `parameters` it declares is the action's, and a
concurrency policy is set in a pack's files, never through the API.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from attune.engine import TaskSpec, readable_tasks
from attune.grpcutil.convert import struct_from_dict
from attune.grpcutil.errors import InvalidArgument, Violation
from attune.packs import PackLimits, PackProblem, YamlProblem, check_parameter_schema, check_workflow, load_yaml
from attune.registry.v1 import registry_pb2
from attune_services.scheduler.workflow_graph import graph_of
from attune_services.scheduler.workflow_locations import compose_marked, locate

__all__ = ["ActionFields", "DefinitionCheck", "WorkflowFinding", "check_definition"]

#: What problems name as the file: the definition is not one of a pack's files.
_SOURCE = "definition"
_TASK_FIELD = re.compile(r'task "(.*?)"(?:, field (.*))?', re.DOTALL)
_DUPLICATE = "duplicate task name"
#: The longest problem message returned (`_shortened`).
_MESSAGE_MAX = 1000


@dataclass(frozen=True)
class WorkflowFinding:
    """One problem of a definition: its task ("" for the workflow), field path ("" for the whole
    task or document), message, and 1-based line and column (0 when unknown)."""

    task: str
    field: str
    message: str
    line: int = 0
    column: int = 0

    def to_proto(self) -> registry_pb2.WorkflowProblem:
        """The API's view of it."""
        return registry_pb2.WorkflowProblem(
            task=self.task, field=self.field, message=self.message, line=self.line, column=self.column
        )

    def describe(self) -> str:
        """One line for a field violation: where, then what."""
        where = []
        if self.task:
            where.append(f'task "{self.task}"')
        if self.field:
            where.append(f"field {self.field}")
        if self.line:
            where.append(f"line {self.line}, column {self.column}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass(frozen=True)
class ActionFields:
    """The fields of the action a definition belongs to that the definition may not contradict."""

    ref: str
    label: str
    #: Its parameter schema, normalised (`check_parameter_schema`).
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class DefinitionCheck:
    """What validating a definition found."""

    problems: list[WorkflowFinding]
    #: The parsed document; None when the text is not YAML.
    document: Any
    #: Its task graph; None when the document is not a mapping.
    graph: registry_pb2.WorkflowGraph | None

    def to_response(self) -> registry_pb2.ValidateWorkflowResponse:
        """The ValidateWorkflow response."""
        response = registry_pb2.ValidateWorkflowResponse(problems=[p.to_proto() for p in self.problems])
        if isinstance(self.document, Mapping):
            response.workflow.CopyFrom(struct_from_dict(dict(self.document)))
        if self.graph is not None:
            response.graph.CopyFrom(self.graph)
        return response

    def violations(self, field: str) -> list[Violation]:
        """Each problem as a field violation of `field`."""
        return [Violation(field, problem.describe()) for problem in self.problems]


def check_definition(
    text: str,
    *,
    known_action_refs: Collection[str],
    limits: PackLimits,
    field: str,
    action: ActionFields | None = None,
) -> DefinitionCheck:
    """Every problem of `text` as registration finds them, located. `action`, when given, is the
    action the definition is for. InvalidArgument naming `field` when the text is beyond a YAML
    limit. CPU-bound: run it in a thread."""
    try:
        document = load_yaml(text.encode("utf-8"), limits.yaml)
    except YamlProblem as err:
        if err.over_limit:
            raise InvalidArgument(f"{field}: {err}", [Violation(field, str(err))]) from err
        return DefinitionCheck([WorkflowFinding("", "", str(err), err.line, err.column)], None, None)
    known = {*known_action_refs, action.ref} if action is not None else known_action_refs
    found = check_workflow(_SOURCE, document, known, limits)
    graph = None
    if isinstance(document, Mapping):
        tasks = readable_tasks(document)
        graph = graph_of(tasks)
        found += _unknown_actions(tasks, known, found)
        found += _schema_problems(document, found)
        if action is not None:
            found += _contradictions(document, action)
    root = compose_marked(text) if found else None
    problems = sorted((_located(problem, root) for problem in found), key=lambda p: (p.line, p.column))
    return DefinitionCheck(problems, document, graph)


def _unknown_actions(
    tasks: Sequence[TaskSpec], known: Collection[str], reported: list[PackProblem]
) -> list[PackProblem]:
    """Tasks calling an action that is not registered, when the engine's problems kept
    `check_workflow` from looking (it checks actions of a valid document only): an editor shows
    every problem at once, registration would report these once the others are fixed."""
    seen = {problem.field for problem in reported}
    return [
        PackProblem(_SOURCE, field, f"calls action {task.action!r}, which is neither registered nor in this pack")
        for task in tasks
        if task.action and task.action not in known and (field := f'task "{task.name}", field action') not in seen
    ]


def _schema_problems(document: Mapping[Any, Any], reported: list[PackProblem]) -> list[PackProblem]:
    """The `parameters` schema checked as a standalone workflow's is, minus the fields the
    engine already reported (both check parameter types)."""
    if "parameters" not in document:
        return []
    _, problems = check_parameter_schema(document["parameters"])
    seen = {problem.field for problem in reported}
    return [PackProblem(_SOURCE, field, message) for field, message in problems if field not in seen]


def _contradictions(document: Mapping[Any, Any], action: ActionFields) -> list[PackProblem]:
    """What the definition declares otherwise than its action (a pack's workflow_file rule)."""
    ours: dict[str, Any] = {"ref": action.ref, "label": action.label, "parameters": dict(action.parameters)}
    declared: dict[str, Any] = {field: document[field] for field in ours if field in document}
    if "parameters" in declared:
        declared["parameters"], _ = check_parameter_schema(declared["parameters"])  # compared as normalised
    problems = [
        PackProblem(
            _SOURCE,
            field,
            f"{document[field]!r} differs from the action's {field} ({ours[field]!r}); a definition takes its "
            "action's ref, label and parameters, so declare them only on the action (or the same)",
        )
        for field, value in declared.items()
        if value != ours[field]
    ]
    if "concurrency" in document:
        problems.append(
            PackProblem(
                _SOURCE,
                "concurrency",
                "an action made through the API has no concurrency policy: declare one in a pack's action file",
            )
        )
    return problems


def _located(problem: PackProblem, root: yaml.Node | None) -> WorkflowFinding:
    """The problem split into task and field, with the position of the node they name."""
    task, field = "", problem.field
    named = _TASK_FIELD.fullmatch(problem.field)
    if named is not None:
        task, field = named.group(1), named.group(2) or ""
    line, column = locate(root, task, field, last_task=problem.message.startswith(_DUPLICATE))
    return WorkflowFinding(task, field, _shortened(problem.message), line, column)


def _shortened(message: str) -> str:
    """A message cut to `_MESSAGE_MAX` characters: the engine quotes the values it refuses, and a
    document of many large ones must not make a response too large to send."""
    if len(message) <= _MESSAGE_MAX:
        return message
    return f"{message[:_MESSAGE_MAX]}… ({len(message):,} characters)"
