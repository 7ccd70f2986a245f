"""Concurrency policies: ``concurrency: {limit, key, on_limit}`` in an action file.

At most ``limit`` executions of the action whose ``key`` renders the same run at once; the others
wait in order (``on_limit: queue``) or end ``cancelled`` (``on_limit: cancel``). The key is a
template over the parameters, rendered by the workflow engine's sandboxed templates when an
execution is requested (docs/operations.md, Concurrency policies). The scheduler enforces it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from attune.packs.parameters import describe_value

__all__ = [
    "MAX_CONCURRENCY_KEY_LENGTH",
    "MAX_CONCURRENCY_LIMIT",
    "ON_LIMIT",
    "ConcurrencyKeyError",
    "ConcurrencyPolicy",
    "check_concurrency",
]

#: Bounds of ``limit`` (an execution may hold one slot of at most this many).
MAX_CONCURRENCY_LIMIT = 10_000
#: Longest key template, and longest rendered key (the executions column holds 255 characters).
MAX_CONCURRENCY_TEMPLATE_LENGTH = 1024
MAX_CONCURRENCY_KEY_LENGTH = 255
ON_LIMIT = ("queue", "cancel")
_FIELDS = ("limit", "key", "on_limit")


class ConcurrencyKeyError(ValueError):
    """The key template could not be rendered over an execution's parameters."""


@dataclass(frozen=True, kw_only=True)
class ConcurrencyPolicy:
    """One action's policy; ``key`` is the template source ("" puts every execution under one key)."""

    limit: int
    key: str = ""
    on_limit: str = "queue"

    @property
    def queues(self) -> bool:
        """True when executions over the limit wait; False when they are cancelled."""
        return self.on_limit == "queue"

    def to_json(self) -> str:
        """The stored form (the actions table's `concurrency` column)."""
        return json.dumps({"limit": self.limit, "key": self.key, "on_limit": self.on_limit})

    @classmethod
    def from_json(cls, text: str | None) -> ConcurrencyPolicy | None:
        """The stored form read back (None: no policy)."""
        if not text:
            return None
        data = json.loads(text)
        return cls(limit=int(data["limit"]), key=str(data.get("key", "")), on_limit=str(data.get("on_limit", "queue")))

    def render_key(self, parameters: Mapping[str, Any]) -> str:
        """The key of an execution with these (validated) parameters; raises ConcurrencyKeyError."""
        from attune.engine import EngineError
        from attune.engine.expressions import GLOBALS, compile_template, is_template

        if not is_template(self.key):
            return self.key
        try:
            value = compile_template(self.key).evaluate({**GLOBALS, "parameters": dict(parameters)})
        except EngineError as err:
            raise ConcurrencyKeyError(f"concurrency.key: {err}") from err
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        if len(text) > MAX_CONCURRENCY_KEY_LENGTH:
            raise ConcurrencyKeyError(
                f"concurrency.key: renders {len(text)} characters, more than {MAX_CONCURRENCY_KEY_LENGTH}"
            )
        return text


def check_concurrency(value: Any) -> tuple[ConcurrencyPolicy | None, list[tuple[str, str]]]:
    """The policy an action file declares, or the problems with it as (field, message) pairs."""
    if value is None:
        return None, []
    if not isinstance(value, Mapping):
        return None, [("concurrency", f"must be a mapping with {', '.join(_FIELDS)}, got {describe_value(value)}")]
    problems: list[tuple[str, str]] = [
        (f"concurrency.{key}", f"unknown field (allowed: {', '.join(_FIELDS)})") for key in value if key not in _FIELDS
    ]
    limit = value.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CONCURRENCY_LIMIT:
        problems.append(
            (
                "concurrency.limit",
                f"must be a whole number from 1 to {MAX_CONCURRENCY_LIMIT}, got {describe_value(limit)}",
            )
        )
    on_limit = value.get("on_limit", "queue")
    if on_limit not in ON_LIMIT:
        problems.append(
            ("concurrency.on_limit", f"must be one of {', '.join(ON_LIMIT)}, got {describe_value(on_limit)}")
        )
    key = value.get("key", "")
    if not isinstance(key, str):
        problems.append(("concurrency.key", f"must be a template string, got {describe_value(key)}"))
    elif len(key) > MAX_CONCURRENCY_TEMPLATE_LENGTH:
        problems.append(("concurrency.key", f"longer than {MAX_CONCURRENCY_TEMPLATE_LENGTH} characters"))
    else:
        from attune.engine import EngineError
        from attune.engine.expressions import compile_template, is_template

        if is_template(key):
            try:
                compile_template(key)
            except EngineError as err:
                problems.append(("concurrency.key", str(err)))
    if problems or not isinstance(limit, int):
        return None, problems
    return ConcurrencyPolicy(limit=limit, key=str(key), on_limit=str(on_limit)), []
