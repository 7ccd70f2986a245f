"""Execution parameters from the command line: ``-p key=value`` typed by the action's schema,
merged over ``--params-json``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from attune_services.cli.errors import CliError

# What the server answers for the same problem: the CLI finds it first, from the action's schema.
INVALID_ARGUMENT = "INVALID_ARGUMENT"


def split_assignment(text: str) -> tuple[str, str]:
    """``"key=value"`` → ``("key", "value")``; the value may contain ``=``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise CliError(f"-p {text!r}: expected key=value", code=INVALID_ARGUMENT)
    return key.strip(), value


def parse_params_json(text: str | None) -> dict[str, Any]:
    """The object given with ``--params-json`` ({} when absent)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise CliError(f"--params-json: not valid JSON: {err}", code=INVALID_ARGUMENT) from err
    if not isinstance(value, dict):
        raise CliError(f"--params-json: expected a JSON object, got {type(value).__name__}", code=INVALID_ARGUMENT)
    return value


def build_parameters(
    schema: Mapping[str, Mapping[str, Any]], assignments: Sequence[str], params_json: str | None
) -> dict[str, Any]:
    """``--params-json`` first, then each ``-p`` typed by ``schema`` on top (later wins)."""
    params = parse_params_json(params_json)
    if not assignments:
        return params
    from attune.packs import ParameterError, coerce_cli_value  # the pack library: only when -p needs it

    problems: list[str] = []
    for text in assignments:
        key, value = split_assignment(text)
        try:
            params[key] = coerce_cli_value(schema, key, value)
        except ParameterError as err:
            problems += [str(v) for v in err.violations]
    if problems:
        raise CliError("; ".join(problems), violations=problems, code=INVALID_ARGUMENT)
    return params
