"""Reading ``actions/<name>.yaml`` into an :class:`ActionDefinition` (or into problems).

An action file names either a script (``runner_type`` + ``entry_point``, relative to
``actions/``) or a workflow (``workflow_file``, relative to ``actions/``). A workflow file named
this way takes its action's ref, label and parameters; checking the workflow itself is left to
:mod:`attune.packs._workflows` once every ref of the pack is known.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

from attune.packs._concurrency import check_concurrency
from attune.packs._errors import PackProblem
from attune.packs._limits import PackLimits, text_problem
from attune.packs._model import RUNNER_TYPES, ActionDefinition
from attune.packs._schema import check_parameter_schema
from attune.packs._yaml import YamlProblem, load_yaml
from attune.packs.parameters import describe_value

__all__ = ["ACTION_FIELDS", "NAME_PATTERN", "ActionReader"]

ACTION_FIELDS = (
    "ref",
    "label",
    "description",
    "enabled",
    "runner_type",
    "entry_point",
    "parameters",
    "output",
    "timeout",
    "tags",
    "workflow_file",
    "concurrency",
)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_SCRIPT_RUNNERS = ("shell", "python", "nodejs")


class ActionReader:
    """Reads the action files of one pack, appending every problem to ``problems``."""

    def __init__(
        self, files: Mapping[str, bytes], pack_ref: str | None, problems: list[PackProblem], limits: PackLimits
    ) -> None:
        self._files = files
        self._pack_ref = pack_ref
        self._problems = problems
        self.limits = limits

    def _problem(self, file: str, field: str, message: str) -> None:
        self._problems.append(PackProblem(file, field, message))

    def read(self, file: str) -> ActionDefinition | None:
        """The action declared in ``file`` (pack-relative), or None after reporting problems."""
        before = len(self._problems)
        try:
            doc = load_yaml(self._files[file], self.limits.yaml)
        except YamlProblem as err:
            self._problem(file, "", str(err))
            return None
        if not isinstance(doc, Mapping):
            self._problem(file, "", f"an action file must be a YAML mapping, got {describe_value(doc)}")
            return None
        for key in doc:
            if key not in ACTION_FIELDS:
                self._problem(file, str(key), f"unknown field (allowed: {', '.join(ACTION_FIELDS)})")
        ref, name = self.check_ref(file, doc.get("ref"))
        parameters, schema_problems = check_parameter_schema(doc.get("parameters"))
        for field, message in schema_problems:
            self._problem(file, field, message)
        if "workflow_file" in doc:
            runner_type, entry_point = "workflow", None
            workflow_source, workflow_yaml = self._workflow_file(file, doc)
        else:
            runner_type, entry_point = self._runner(file, doc)
            workflow_source = workflow_yaml = None
        common = self.common_fields(file, doc, name)
        concurrency, concurrency_problems = check_concurrency(doc.get("concurrency"))
        for field, message in concurrency_problems:
            self._problem(file, field, message)
        if len(self._problems) > before:
            return None
        return ActionDefinition(
            ref=ref,
            pack=self._pack_ref or "",
            name=name,
            runner_type=runner_type,
            entry_point=entry_point,
            parameters=parameters,
            workflow_source=workflow_source,
            workflow_yaml=workflow_yaml,
            concurrency=concurrency,
            **common,
        )

    def check_ref(self, file: str, ref: Any) -> tuple[str, str]:
        """Check ``ref`` is ``<pack>.<name>`` for this pack; return (ref, name)."""
        expected = f"{self._pack_ref or '<pack>'}.<name>"
        if not isinstance(ref, str) or not ref:
            self._problem(file, "ref", f"missing; must be {expected}")
            return "", ""
        pack, _, name = ref.partition(".")
        if too_long := text_problem(ref, self.limits.max_name_length):
            self._problem(file, "ref", too_long)
        elif not name or not NAME_PATTERN.match(name):
            self._problem(file, "ref", f"{ref!r} is not {expected} (name: letters, digits, _ and -)")
        elif self._pack_ref is not None and pack != self._pack_ref:
            self._problem(file, "ref", f"{ref!r} belongs to pack {pack!r}, not to this pack {self._pack_ref!r}")
        return ref, name

    def common_fields(self, file: str, doc: Mapping[str, Any], name: str) -> dict[str, Any]:
        """label, description, enabled, output, timeout and tags, checked, with their defaults."""
        label = doc.get("label", name)
        description = doc.get("description", "")
        enabled = doc.get("enabled", True)
        output = doc.get("output", {})
        timeout = doc.get("timeout")
        tags = doc.get("tags", [])
        for field, value in (("label", label), ("description", description)):
            if not isinstance(value, str):
                self._problem(file, field, f"must be a string, got {describe_value(value)}")
            elif wrong := text_problem(value):
                self._problem(file, field, wrong)
        if not isinstance(enabled, bool):
            self._problem(file, "enabled", f"must be true or false, got {describe_value(enabled)}")
        if not isinstance(output, Mapping):
            self._problem(file, "output", f"must be a mapping, got {describe_value(output)}")
            output = {}
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
        ):
            self._problem(file, "timeout", f"must be a positive number of seconds, got {describe_value(timeout)}")
            timeout = None
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            self._problem(file, "tags", "must be a list of strings")
            tags = []
        return {
            "label": label,
            "description": description,
            "enabled": enabled,
            "output": dict(output),
            "timeout": None if timeout is None else float(timeout),
            "tags": list(tags),
        }

    def _runner(self, file: str, doc: Mapping[str, Any]) -> tuple[str, str | None]:
        runner_type = doc.get("runner_type")
        if runner_type is None:
            self._problem(file, "runner_type", f"missing; one of {', '.join(RUNNER_TYPES)}")
            return "", None
        if runner_type == "workflow":
            self._problem(file, "runner_type", "a workflow action names its workflow with workflow_file")
            return "", None
        if runner_type not in RUNNER_TYPES:
            self._problem(
                file, "runner_type", f"unknown runner_type {runner_type!r} (one of {', '.join(RUNNER_TYPES)})"
            )
            return "", None
        if runner_type in ("noop", "ask"):
            if doc.get("entry_point") is not None:
                self._problem(file, "entry_point", f"a {runner_type} action runs nothing, so it takes no entry_point")
            return runner_type, None
        entry_point = self._actions_path(file, "entry_point", doc.get("entry_point"))
        return runner_type, entry_point

    def _actions_path(self, file: str, field: str, value: Any) -> str | None:
        """Resolve a path relative to actions/ to a pack file, reporting a bad or missing one."""
        if not isinstance(value, str) or not value:
            self._problem(file, field, "missing; a path relative to actions/")
            return None
        path = posixpath.normpath(posixpath.join("actions", value))
        if value.startswith("/") or not path.startswith("actions/"):
            self._problem(file, field, f"{value!r} must be a path inside actions/")
            return None
        if path not in self._files:
            self._problem(file, field, f"file {path} not found in the pack")
            return None
        return path

    def _workflow_file(self, file: str, doc: Mapping[str, Any]) -> tuple[str | None, str | None]:
        if doc.get("runner_type", "workflow") != "workflow":
            self._problem(file, "runner_type", "an action with workflow_file is a workflow action; drop runner_type")
        if "entry_point" in doc:
            self._problem(file, "entry_point", "a workflow action takes workflow_file, not entry_point")
        source = self._actions_path(file, "workflow_file", doc.get("workflow_file"))
        if source is None:
            return None, None
        try:
            return source, self._files[source].decode("utf-8")
        except UnicodeDecodeError as err:
            self._problem(source, "", f"not UTF-8 text (byte {err.start})")
            return None, None
