"""Collects spec problems with their location while a document is parsed."""

from __future__ import annotations

import math
from typing import Any

from .errors import SpecError
from .expressions import is_template, template_syntax_errors


class Problems:
    """Accumulates SpecErrors for one source file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[SpecError] = []

    def add(self, where: str, message: str) -> None:
        """Record a problem at ``where`` (already formatted, e.g. ``field vars.x``)."""
        self.errors.append(SpecError(self.source, where, message))

    def templates(self, value: Any, task: str | None, field: str) -> None:
        """Compile every template inside ``value``, recording syntax errors."""
        for path, message in template_syntax_errors(value, field):
            self.add(where(task, path), message)

    def expression(self, value: Any, task: str | None, field: str) -> bool:
        """Check ``value`` is a single template string; record problems. True if fine."""
        if not is_template(value):
            self.add(where(task, field), f"must be a {{{{ … }}}} expression, got {value!r}")
            return False
        before = len(self.errors)
        self.templates(value, task, field)
        return len(self.errors) == before


def where(task: str | None, field: str) -> str:
    """Format a location: ``task "x", field next[0].when`` or ``field vars.y``."""
    if task is None:
        return f"field {field}"
    return f'task "{task}", field {field}'


def is_number(value: Any) -> bool:
    """True for int/float but not bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_seconds(value: Any) -> bool:
    """True for a number of seconds a timer can wait: finite (not NaN or infinity) and a float."""
    if isinstance(value, float):
        return math.isfinite(value)
    return is_number(value) and abs(value) < 2**1000
