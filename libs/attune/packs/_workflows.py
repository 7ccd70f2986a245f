"""Workflow files of a pack: standalone ``workflows/*.workflow.yaml`` and the files named by
``workflow_file``, checked by the workflow engine (the one parser; this module has none).

Registration checks structure and template syntax (the engine's ``parse_workflow``) and that
every task calls an action that is registered or in this pack. Names inside templates resolve at
run time, so they are not checked here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from attune.packs._actions import ActionReader
from attune.packs._concurrency import check_concurrency
from attune.packs._errors import PackProblem
from attune.packs._limits import TASK_NAME_MAX_LENGTH, PackLimits, shown_text, text_problem
from attune.packs._model import ActionDefinition
from attune.packs._schema import check_parameter_schema
from attune.packs._yaml import YamlProblem, load_yaml
from attune.packs.parameters import describe_value

__all__ = [
    "STANDALONE_SUFFIXES",
    "check_workflow",
    "check_workflow_file",
    "more_workflow_findings",
    "read_standalone",
]

STANDALONE_SUFFIXES = (".workflow.yaml", ".workflow.yml")
# Fields a workflow_file takes from its action; a file that also declares them must agree.
_INHERITED = ("ref", "label", "parameters")


def read_standalone(
    file: str, data: bytes, reader: ActionReader, problems: list[PackProblem]
) -> ActionDefinition | None:
    """The action a standalone workflow file declares (its own ref, label, parameters)."""
    before = len(problems)
    try:
        doc = load_yaml(data, reader.limits.yaml)
    except YamlProblem as err:
        problems.append(PackProblem(file, "", str(err)))
        return None
    text = data.decode("utf-8")  # load_yaml has checked it decodes
    if not isinstance(doc, Mapping):
        problems.append(PackProblem(file, "", f"a workflow file must be a YAML mapping, got {describe_value(doc)}"))
        return None
    ref, name = reader.check_ref(file, doc.get("ref"))
    parameters, schema_problems = check_parameter_schema(doc.get("parameters"))
    problems.extend(PackProblem(file, field, message) for field, message in schema_problems)
    label, description = doc.get("label", name), doc.get("description", "")
    for field, value in (("label", label), ("description", description)):
        if not isinstance(value, str):
            problems.append(PackProblem(file, field, f"must be a string, got {describe_value(value)}"))
        elif wrong := text_problem(value):
            problems.append(PackProblem(file, field, wrong))
    concurrency, concurrency_problems = check_concurrency(doc.get("concurrency"))
    problems.extend(PackProblem(file, field, message) for field, message in concurrency_problems)
    if len(problems) > before:
        return None
    return ActionDefinition(
        ref=ref,
        pack=ref.partition(".")[0],
        name=name,
        label=label,
        description=description,
        enabled=True,
        runner_type="workflow",
        entry_point=None,
        parameters=parameters,
        output={},
        timeout=None,
        tags=[],
        workflow_source=file,
        workflow_yaml=text,
        concurrency=concurrency,
    )


def check_linked_workflow(
    action: ActionDefinition, raw_action_parameters: Any, limits: PackLimits
) -> list[PackProblem]:
    """A ``workflow_file`` takes its action's ref, label, parameters: it may not say otherwise."""
    assert action.workflow_source is not None and action.workflow_yaml is not None
    doc = load_yaml(action.workflow_yaml.encode("utf-8"), limits.yaml)  # YamlProblem: see check_workflow_file
    if not isinstance(doc, Mapping):
        return []  # the engine reports it
    ours = {"ref": action.ref, "label": action.label, "parameters": raw_action_parameters}
    problems = []
    if "concurrency" in doc:  # the action file's policy is the one that applies
        problems.append(
            PackProblem(
                action.workflow_source,
                "concurrency",
                "a workflow_file takes its action's concurrency policy, so declare it only in the action file",
            )
        )
    return problems + [
        PackProblem(
            action.workflow_source,
            field,
            f"{doc[field]!r} differs from the action's {field} ({ours[field]!r}); a workflow_file "
            f"takes its action's ref, label and parameters, so declare them only in the action file",
        )
        for field in _INHERITED
        if field in doc and doc[field] != ours[field]
    ]


def check_workflow_file(
    action: ActionDefinition,
    raw_action_parameters: Any | None,
    known_action_refs: Collection[str],
    limits: PackLimits,
) -> list[PackProblem]:
    """Every check of a workflow action's file. ``raw_action_parameters`` is None for a
    standalone workflow, else the ``parameters`` its action file declares."""
    source, text = action.workflow_source, action.workflow_yaml
    assert source is not None and text is not None
    try:
        document = load_yaml(text.encode("utf-8"), limits.yaml)
    except YamlProblem as err:
        return [PackProblem(source, "", str(err))]
    problems = []
    if source.startswith("actions/"):
        problems += check_linked_workflow(action, raw_action_parameters, limits)
    return problems + check_workflow(source, document, known_action_refs, limits)


def check_workflow(
    source: str, document: Any, known_action_refs: Collection[str], limits: PackLimits
) -> list[PackProblem]:
    """Engine validation of one workflow file, plus: every task's action is known, and every
    task's name fits the registry. ``document`` is the file as `load_yaml` read it: bounded,
    duplicate keys refused, JSON data only (the engine's own YAML reading is none of these)."""
    # Imported here: the engine is a sibling library, and only workflow files need it.
    from attune.engine import WorkflowSpecError, parse_workflow, workflow_action_refs

    try:
        spec = parse_workflow(document, source=source)
    except WorkflowSpecError as err:
        return [PackProblem(e.source or source, _field_of(e.path), e.message) for e in err.errors]
    unknown = workflow_action_refs(spec).difference(known_action_refs)
    problems = [  # one problem per calling task, so the error names it
        PackProblem(
            source,
            f'task "{task.name}", field action',
            f"calls action {task.action!r}, which is neither registered nor in this pack",
        )
        for task in spec.tasks
        if task.action in unknown
    ]
    for task in spec.tasks:  # a task's runs are stored by name, and their children's request ids hold it
        if len(task.name) > TASK_NAME_MAX_LENGTH:
            too_long = f"{len(task.name):,} characters, over the limit of {TASK_NAME_MAX_LENGTH} for a task name"
        else:
            too_long = text_problem(task.name, limits.max_name_length)
        if too_long:
            problems.append(PackProblem(source, f'task "{shown_text(task.name)}"', f"its name: {too_long}"))
    return problems


def more_workflow_findings(
    file: str, data: bytes, known_action_refs: Collection[str], reported: list[PackProblem], limits: PackLimits
) -> list[PackProblem]:
    """Engine findings for a workflow file already refused by our own checks, minus any field
    those checks already reported (both check parameter types, for instance)."""
    try:
        document = load_yaml(data, limits.yaml)
    except YamlProblem:
        return []  # already reported
    if not isinstance(document, Mapping):
        return []
    seen = {(p.file, p.field) for p in reported}
    return [p for p in check_workflow(file, document, known_action_refs, limits) if (p.file, p.field) not in seen]


def _field_of(engine_path: str) -> str:
    """The engine says ``field vars.x``, ``task "t", field input.y`` or ``document``."""
    if engine_path == "document":
        return ""
    return engine_path.removeprefix("field ")
