"""``parse_workflow``: YAML or a mapping in, a validated WorkflowSpec out.

Every problem in the document is collected and raised together as a
WorkflowSpecError, each naming the source file, the task and the field path.
Template *syntax* is checked here; names inside templates resolve at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._document import load_document
from ._parse_tasks import parse_publish, parse_task
from ._problems import Problems, is_number, is_seconds, where
from .errors import WorkflowSpecError
from .spec import ENGINE_COMMANDS, TaskSpec, WorkflowSpec

__all__ = ["parse_workflow", "readable_tasks", "workflow_action_refs"]

TOP_FIELDS = frozenset(
    {
        "version",
        "vars",
        "tasks",
        "output_map",
        "timeout",
        "cancellation_policy",
        "ref",
        "label",
        "description",
        "parameters",
        "concurrency",  # a standalone workflow's policy: the pack registry checks and stores it
    }
)
POLICIES = ("allow_finish", "cancel_running")
_PARAM_TYPES = frozenset({"string", "integer", "number", "boolean", "array", "object", "null", "any"})


def parse_workflow(document: Mapping[str, Any] | str, *, source: str) -> WorkflowSpec:
    """Parse and validate a workflow document (YAML text or an already-loaded mapping).

    Raises WorkflowSpecError listing every problem found.
    """
    p = Problems(source)
    doc = load_document(document, source)
    for key in doc:
        if key not in TOP_FIELDS:
            p.add(f"field {key}", "unknown field")
    tasks = _parse_tasks(doc.get("tasks"), p)
    _check_graph(tasks, p)
    spec = WorkflowSpec(
        source=source,
        tasks=tuple(tasks),
        version=_optional_text(doc, "version", p, allow_number=True),
        vars=parse_publish(doc.get("vars"), p, None, "vars"),
        output_map=_parse_output_map(doc.get("output_map"), p),
        timeout=_timeout(doc.get("timeout"), p),
        cancellation_policy=_policy(doc.get("cancellation_policy"), p),
        ref=_optional_text(doc, "ref", p),
        label=_optional_text(doc, "label", p),
        description=_optional_text(doc, "description", p),
        parameters=_parameters(doc.get("parameters"), p),
    )
    if p.errors:
        raise WorkflowSpecError(p.errors)
    return spec


def workflow_action_refs(spec: WorkflowSpec) -> set[str]:
    """The action refs the workflow's tasks call (for the registry to check)."""
    return {task.action for task in spec.tasks}


def readable_tasks(document: Mapping[str, Any]) -> list[TaskSpec]:
    """The tasks of a document as far as they can be read, its problems ignored, in document
    order: what an editor draws while the author is still fixing the document (`parse_workflow`
    says what is wrong). A task whose name cannot be read, or repeats an earlier one, is left out;
    its transitions are kept as written, targets that name no task included."""
    return _parse_tasks(document.get("tasks"), Problems(""))


def _parse_tasks(raw: Any, p: Problems) -> list[TaskSpec]:
    if raw is None:
        p.add("field tasks", "missing tasks")
        return []
    if isinstance(raw, dict):
        # mapping form: name -> task map (name taken from the key)
        items = []
        for name, body in raw.items():
            body = dict(body) if isinstance(body, dict) else body
            if isinstance(body, dict):
                if "name" in body and body["name"] != name:
                    p.add(f'task "{name}", field name', f"differs from its key ({body['name']!r})")
                body["name"] = name
            elif body is None:
                body = {"name": name}
            items.append((f"tasks.{name}", body))
    elif isinstance(raw, list):
        items = [(f"tasks[{i}]", body) for i, body in enumerate(raw)]
    else:
        p.add("field tasks", f"must be a list of task maps or a mapping of name to task, got {raw!r}")
        return []
    if not items:
        p.add("field tasks", "must contain at least one task")
    tasks = []
    seen: dict[str, str] = {}
    for label, body in items:
        task = parse_task(body, p, label)
        if task is None:
            continue
        if task.name in seen:
            p.add(where(task.name, "name"), f'duplicate task name "{task.name}" (first at {seen[task.name]})')
            continue
        seen[task.name] = label
        tasks.append(task)
    return tasks


def _check_graph(tasks: list[TaskSpec], p: Problems) -> None:
    """Unknown ``do`` targets, joins without enough inbound tasks, entry tasks."""
    names = {t.name for t in tasks}
    inbound: dict[str, set[str]] = {name: set() for name in names}
    for task in tasks:
        for transition in task.next:
            for target in transition.do:
                if target in ENGINE_COMMANDS:
                    continue
                if target not in names:
                    p.add(where(task.name, transition.do_field), f'transitions to unknown task "{target}"')
                else:
                    inbound[target].add(task.name)
    for task in tasks:
        sources = len(inbound[task.name])
        if task.join is None:
            continue
        if sources == 0:
            p.add(where(task.name, "join"), "no task transitions into this task, so there is nothing to join")
        elif isinstance(task.join, int) and task.join > sources:
            p.add(
                where(task.name, "join"),
                f"waits for {task.join} tasks but only {sources} transition into it "
                f"({', '.join(sorted(inbound[task.name]))})",
            )
    if tasks and not any(not inbound[t.name] for t in tasks):
        p.add("field tasks", "workflow has no entry task (every task is the target of a `do`)")


def _parse_output_map(raw: Any, p: Problems) -> tuple[tuple[str, Any], ...]:
    items = parse_publish(raw, p, None, "output_map")
    for name, _ in items:
        if name == "succeeded":
            p.add("field output_map.succeeded", "is reserved: the workflow result sets `succeeded` itself")
    return items


def _timeout(raw: Any, p: Problems) -> float | None:
    if raw is None:
        return None
    if not is_seconds(raw) or raw <= 0:
        p.add("field timeout", f"must be a number of seconds > 0, got {raw!r}")
        return None
    return float(raw)


def _policy(raw: Any, p: Problems) -> str:
    if raw is None:
        return "allow_finish"
    if raw not in POLICIES:
        p.add("field cancellation_policy", f"must be one of {', '.join(POLICIES)}, got {raw!r}")
        return "allow_finish"
    return str(raw)


def _optional_text(doc: dict[str, Any], key: str, p: Problems, allow_number: bool = False) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, str) or (allow_number and is_number(value)):
        return str(value)
    p.add(f"field {key}", f"must be a string, got {value!r}")
    return None


def _parameters(raw: Any, p: Problems) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        p.add("field parameters", f"must be a mapping of name to schema, got {raw!r}")
        return {}
    for name, schema in raw.items():
        if not isinstance(schema, dict):
            p.add(f"field parameters.{name}", f"must be a schema map (type, description, default, ...), got {schema!r}")
        elif "type" in schema and (not isinstance(schema["type"], str) or schema["type"] not in _PARAM_TYPES):
            p.add(f"field parameters.{name}.type", f"unknown type {schema['type']!r}")
    return dict(raw)
