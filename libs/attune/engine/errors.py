"""Errors raised by the workflow engine — one small class per kind of problem.

Spec problems are collected (not raised one by one) so a pack author sees every
mistake in a file at once; each names the file, the task and the field path.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CompiledWorkflowError",
    "EngineError",
    "ExpressionError",
    "ExpressionSyntaxError",
    "SpecError",
    "WorkflowSpecError",
    "WorkflowStateError",
]


class EngineError(Exception):
    """Base class of every error the engine raises."""


@dataclass(frozen=True)
class SpecError:
    """One problem in a workflow document.

    ``path`` names the place, e.g. ``task "deploy", field next[1].when``.
    """

    source: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.path}: {self.message}"


class WorkflowSpecError(EngineError):
    """A workflow document is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class ExpressionError(EngineError):
    """A template could not be evaluated (undefined name, type error, ...)."""


class ExpressionSyntaxError(ExpressionError):
    """A template is not valid Jinja syntax."""


class CompiledWorkflowError(EngineError):
    """A serialised compiled workflow cannot be loaded."""


class WorkflowStateError(EngineError):
    """State entries are malformed or an event does not fit the state."""
