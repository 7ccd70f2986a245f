"""Registration-time checks of an inline parameter schema, and its normalised form.

The normalised form of each parameter always has ``type``, ``description``, ``required`` and
``secret``; ``default``, ``enum``, ``minimum`` and ``maximum`` appear only when declared. The
scheduler and the CLI rely on that shape (see :mod:`attune.packs.parameters`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from attune.packs.parameters import (
    PARAMETER_TYPES,
    TYPE_CHECKS,
    describe_value,
    normalise_value,
    value_problems,
)

__all__ = ["check_parameter_schema"]

# Names become environment variables (ATTUNE_PARAM_<NAME>) and template names, so keep them plain.
_PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SPEC_FIELDS = ("type", "description", "default", "required", "enum", "secret", "minimum", "maximum")

Problems = list[tuple[str, str]]  # (field path, message)


def check_parameter_schema(raw: Any, *, field: str = "parameters") -> tuple[dict[str, dict[str, Any]], Problems]:
    """Check a raw ``parameters`` mapping; return its normalised form and every problem found."""
    if raw is None:
        return {}, []
    if not isinstance(raw, Mapping):
        return {}, [(field, f"must be a mapping of parameter name to schema, got {describe_value(raw)}")]
    schema: dict[str, dict[str, Any]] = {}
    problems: Problems = []
    for name, spec in raw.items():
        path = f"{field}.{name}"
        if not isinstance(name, str) or not _PARAMETER_NAME.match(name):
            problems.append((path, "parameter names must be letters, digits and _, not starting with a digit"))
            continue
        normalised, spec_problems = _check_spec(spec, path)
        problems.extend(spec_problems)
        if not spec_problems:
            schema[name] = normalised
    return schema, problems


def _check_spec(spec: Any, path: str) -> tuple[dict[str, Any], Problems]:
    if not isinstance(spec, Mapping):
        return {}, [(path, f"must be a mapping such as {{type: string}}, got {describe_value(spec)}")]
    problems: Problems = []
    for key in spec:
        if key not in _SPEC_FIELDS:
            problems.append((f"{path}.{key}", f"unknown field (allowed: {', '.join(_SPEC_FIELDS)})"))
    type_name: Any = spec.get("type")
    if type_name is None:
        problems.append((f"{path}.type", f"missing; one of {', '.join(PARAMETER_TYPES)}"))
    elif type_name not in PARAMETER_TYPES:
        problems.append((f"{path}.type", f"unknown type {type_name!r} (one of {', '.join(PARAMETER_TYPES)})"))
    description = spec.get("description", "")
    if not isinstance(description, str):
        problems.append((f"{path}.description", f"must be a string, got {describe_value(description)}"))
    for flag in ("required", "secret"):
        if not isinstance(spec.get(flag, False), bool):
            problems.append((f"{path}.{flag}", f"must be true or false, got {describe_value(spec[flag])}"))
    if type_name not in PARAMETER_TYPES:
        return {}, problems  # the remaining checks need a known type
    shape_problems = _check_bounds(spec, path, type_name) + _check_enum(spec, path, type_name)
    problems += shape_problems
    normalised: dict[str, Any] = {
        "type": type_name,
        "description": description,
        "required": spec.get("required", False),
        "secret": spec.get("secret", False),
    }
    for key in ("enum", "minimum", "maximum"):
        if key in spec:
            normalised[key] = spec[key]
    if not shape_problems and spec.get("default") is not None:  # needs sound enum and bounds
        default_problems = value_problems(normalised, spec["default"])
        problems += [(f"{path}.default", message) for message in default_problems]
        if not default_problems:
            normalised["default"] = normalise_value(type_name, spec["default"])
    return normalised, problems


def _check_bounds(spec: Mapping[str, Any], path: str, type_name: str) -> Problems:
    problems: Problems = []
    for key in ("minimum", "maximum"):
        if key not in spec:
            continue
        if type_name not in ("integer", "number"):
            problems.append((f"{path}.{key}", f"only integer and number parameters take {key}, not {type_name}"))
        elif not TYPE_CHECKS["number"](spec[key]):
            problems.append((f"{path}.{key}", f"must be a number, got {describe_value(spec[key])}"))
    if not problems and "minimum" in spec and "maximum" in spec and spec["minimum"] > spec["maximum"]:
        problems.append((f"{path}.minimum", f"{spec['minimum']} is greater than maximum {spec['maximum']}"))
    return problems


def _check_enum(spec: Mapping[str, Any], path: str, type_name: str) -> Problems:
    if "enum" not in spec:
        return []
    enum = spec["enum"]
    if not isinstance(enum, list) or not enum:
        return [(f"{path}.enum", f"must be a non-empty list of allowed values, got {describe_value(enum)}")]
    check = TYPE_CHECKS[type_name]
    return [
        (f"{path}.enum[{i}]", f"expected {type_name}, got {describe_value(choice)}")
        for i, choice in enumerate(enum)
        if not check(choice)
    ]
