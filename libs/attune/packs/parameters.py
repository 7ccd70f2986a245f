"""Execution parameters: checking values against an action's inline schema.

An action's parameter schema is the StackStorm-style mapping
``{name: {type, description, default, required, enum, secret, minimum, maximum}}``
(checked once, at registration, by :mod:`attune.packs._schema`). This module is what the
scheduler runs on every execution request and what the CLI runs on every ``-p key=value``:

* :func:`validate_parameters` — types, ``required``, ``enum``, ``minimum``/``maximum``, unknown
  names; applies defaults and returns the full parameter dict. Every violation is collected.
* :func:`coerce_cli_value` — turns the text of ``-p key=value`` into the parameter's type.
* :func:`secret_names` / :func:`redact` — so secret values never reach responses, logs or spans.

A secret value is never quoted in an error message either.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PARAMETER_TYPES",
    "REDACTED",
    "FieldViolation",
    "ParameterError",
    "coerce_cli_value",
    "redact",
    "secret_names",
    "validate_parameters",
]

PARAMETER_TYPES = ("string", "integer", "number", "boolean", "array", "object")
REDACTED = "********"

_TRUE_WORDS = frozenset({"true", "yes", "1"})
_FALSE_WORDS = frozenset({"false", "no", "0"})


@dataclass(frozen=True)
class FieldViolation:
    """One bad parameter: ``field`` is the parameter name (maps to a gRPC BadRequest violation)."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"parameter {self.field!r}: {self.description}"


class ParameterError(Exception):
    """Parameters that do not satisfy the schema; ``violations`` lists every problem found."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(str(v) for v in self.violations))


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


# bool is a subclass of int in Python, so the numeric checks must exclude it explicitly.
TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, (list, tuple)),
    "object": lambda v: isinstance(v, Mapping),
}


def describe_value(value: Any) -> str:
    """Name a value's JSON type for error messages (``"string 'abc'"``, ``"boolean"``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def normalise_value(type_name: str, value: Any) -> Any:
    """Return ``value`` (already type-checked) in its canonical Python form."""
    if type_name == "integer":
        return int(value)
    if type_name == "array":
        return list(value)
    if type_name == "object":
        return dict(value)
    return value


def value_problems(spec: Mapping[str, Any], value: Any) -> list[str]:
    """Check one value against one parameter spec; an empty list means it is valid.

    ``secret`` specs never have their value echoed.
    """
    type_name = spec.get("type", "string")
    check = TYPE_CHECKS.get(type_name)
    secret = bool(spec.get("secret", False))
    if check is not None and not check(value):
        got = "a value of another type" if secret else describe_value(value)
        return [f"expected {type_name}, got {got}"]
    problems: list[str] = []
    enum = spec.get("enum")
    if isinstance(enum, list) and not _in_enum(value, enum):
        choices = ", ".join(json.dumps(e) for e in enum)
        problems.append(f"must be one of {choices}" + ("" if secret else f", got {json.dumps(value)}"))
    if type_name in ("integer", "number"):
        shown = "" if secret else f", got {value}"
        minimum, maximum = spec.get("minimum"), spec.get("maximum")
        if minimum is not None and value < minimum:
            problems.append(f"must be at least {minimum}{shown}")
        if maximum is not None and value > maximum:
            problems.append(f"must be at most {maximum}{shown}")
    return problems


def _in_enum(value: Any, enum: list[Any]) -> bool:
    # `True in [1]` is True in Python; compare with the types so JSON true never matches 1.
    return any(value == e and isinstance(value, bool) == isinstance(e, bool) for e in enum)


def validate_parameters(schema: Mapping[str, Mapping[str, Any]], params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``params`` against ``schema`` and return them with defaults applied.

    A value of ``None`` counts as not given (so its default applies). Unknown names, missing
    required parameters, wrong types, values outside ``enum`` or ``minimum``/``maximum`` are all
    collected before :class:`ParameterError` is raised.
    """
    violations: list[FieldViolation] = []
    result: dict[str, Any] = {}
    for name in params:
        if name not in schema:
            known = ", ".join(sorted(schema)) or "none"
            violations.append(FieldViolation(name, f"unknown parameter (known: {known})"))
    for name, spec in schema.items():
        value = params.get(name)
        if value is None:
            if "default" in spec and spec["default"] is not None:
                result[name] = copy.deepcopy(spec["default"])
            elif spec.get("required", False):
                violations.append(FieldViolation(name, "required parameter is missing"))
            continue
        problems = value_problems(spec, value)
        violations.extend(FieldViolation(name, p) for p in problems)
        if not problems:
            result[name] = normalise_value(spec.get("type", "string"), value)
    if violations:
        raise ParameterError(violations)
    return result


def coerce_cli_value(schema: Mapping[str, Mapping[str, Any]], name: str, text: str) -> Any:
    """Type the text of a CLI ``-p name=text`` by the parameter's schema.

    integer and number are parsed as numbers; boolean accepts true/false/yes/no/1/0 (any case);
    array and object are parsed as JSON; string, and any name the schema does not know, stay
    text (an unknown name is reported later by :func:`validate_parameters`).
    """
    spec = schema.get(name)
    type_name = spec.get("type", "string") if spec is not None else "string"
    coerce = _COERCERS.get(type_name, _COERCERS["string"])
    try:
        return coerce(text)
    except ValueError as err:
        if spec is not None and spec.get("secret", False):
            raise ParameterError([FieldViolation(name, f"cannot read the value as {type_name}")]) from None
        raise ParameterError([FieldViolation(name, f"cannot read {text!r} as {type_name}: {err}")]) from err


def _parse_integer(text: str) -> int:
    number = _parse_number(text)
    if not _is_integer(number):  # "3.0" is a whole number written as a float; "3.5" is not
        raise ValueError("not a whole number")
    return int(number)


def _parse_number(text: str) -> int | float:
    stripped = text.strip()
    try:
        return int(stripped, 10)
    except ValueError:
        pass
    try:
        number = float(stripped)
    except ValueError:
        raise ValueError("not a number") from None  # float()'s own message repeats the text
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _parse_boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError("expected true/false, yes/no or 1/0")


def _parse_json_of(kind: type, label: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"invalid JSON ({err.msg} at position {err.pos})") from None
        if not isinstance(value, kind):
            raise ValueError(f"expected a JSON {label}, got {describe_value(value)}")
        return value

    return parse


_COERCERS: dict[str, Callable[[str], Any]] = {
    "string": lambda text: text,
    "integer": _parse_integer,
    "number": _parse_number,
    "boolean": _parse_boolean,
    "array": _parse_json_of(list, "array"),
    "object": _parse_json_of(dict, "object"),
}


def secret_names(schema: Mapping[str, Mapping[str, Any]]) -> frozenset[str]:
    """Names of the parameters marked ``secret: true``."""
    return frozenset(name for name, spec in schema.items() if spec.get("secret", False))


def redact(schema: Mapping[str, Mapping[str, Any]], params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with every secret value replaced by ``"********"``."""
    secrets = secret_names(schema)
    return {name: (REDACTED if name in secrets else value) for name, value in params.items()}
