"""The answer schema of an ask (`core.ask`): the inline form of action parameters, or a JSON
Schema object read as that form. Shared by the scheduler (which validates answers) and the CLI
(which types `-p key=value` by it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["inline_answer_schema"]


def inline_answer_schema(raw: Any) -> Any:
    """A JSON Schema object (``{type: object, properties, required}``) as inline fields
    (``{name: {type, required, ...}}``); anything else as given (checked as the inline form)."""
    if not isinstance(raw, Mapping) or raw.get("type") != "object" or not isinstance(raw.get("properties"), Mapping):
        return raw
    listed = raw.get("required")
    required: list[Any] = listed if isinstance(listed, list) else []
    return {
        name: {**spec, "required": name in required} if isinstance(spec, Mapping) else spec
        for name, spec in raw["properties"].items()
    }
