"""Evaluation contexts: what names a template can see at each point.

Namespaces: ``parameters``; ``vars`` (aliases ``workflow``, ``variables``);
``task.<name>`` — the latest *result* of that task (so ``task.build.stdout``);
``item``/``index`` inside with_items (``item`` a ``{name: value}`` mapping for named item
variables); and, in ``next``/``publish``/``retry.when``,
``succeeded() failed() timed_out() cancelled() completed() result()`` about the
task run just ended. Views read state entries lazily: building a context is O(1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ._bounds import LIMITS_NAME
from ._data import Function
from ._states import ABANDONED, CANCELLED, FAILED, SUCCEEDED, TIMEOUT
from .errors import ExpressionError
from .expressions import GLOBALS
from .state import WorkflowState

__all__ = ["FAILED_STATES", "base_context", "run_context"]

FAILED_STATES = frozenset({FAILED, ABANDONED})
_RUN_FUNCTIONS = ("succeeded", "failed", "timed_out", "cancelled", "completed", "result")


class _EntryView(Mapping[str, Any]):
    """Read-only mapping over state entries ``<prefix><name>``."""

    __slots__ = ("_prefix", "_state", "_what")

    def __init__(self, state: WorkflowState, prefix: str, what: str) -> None:
        self._state, self._prefix, self._what = state, prefix, what

    def __getitem__(self, name: str) -> Any:
        box = self._state.get(self._prefix + name)
        if box is None:
            raise KeyError(name)
        return box["value"]

    def __iter__(self) -> Iterator[str]:
        n = len(self._prefix)
        return iter([k[n:] for k in self._state.keys_with_prefix(self._prefix)])

    def __len__(self) -> int:
        return len(self._state.keys_with_prefix(self._prefix))

    def missing_hint(self, name: str) -> str:
        return f"{self._what} {name!r} is undefined"

    def __repr__(self) -> str:
        return repr(dict(self))


_MISSING = object()


def _unavailable(name: str) -> Callable[[], Any]:
    def call() -> Any:
        raise ExpressionError(f"{name}() is only available in next, publish and retry.when")

    return call


_BASE: dict[str, Any] = {**GLOBALS, **{name: Function(name, _unavailable(name)) for name in _RUN_FUNCTIONS}}


def base_context(state: WorkflowState, *, item: Any = _MISSING, index: int | None = None) -> dict[str, Any]:
    """Names visible everywhere (vars, input, with_items, output_map)."""
    variables = _EntryView(state, "v:", "variable")
    ctx = dict(_BASE)
    ctx["parameters"] = state.parameters
    ctx["vars"] = ctx["workflow"] = ctx["variables"] = variables
    ctx["task"] = _EntryView(state, "res:", "task result (the task has not run)")
    ctx[LIMITS_NAME] = state.template_limits
    if item is not _MISSING:
        ctx["item"] = item
        ctx["index"] = index
    return ctx


def run_context(
    state: WorkflowState, run_state: str, result: Any, *, item: Any = _MISSING, index: int | None = None
) -> dict[str, Any]:
    """Names for expressions about a run that just ended in ``run_state``."""
    ctx = base_context(state, item=item, index=index)
    ctx["succeeded"] = lambda: run_state == SUCCEEDED
    ctx["failed"] = lambda: run_state in FAILED_STATES
    ctx["timed_out"] = lambda: run_state == TIMEOUT
    ctx["cancelled"] = lambda: run_state == CANCELLED
    ctx["completed"] = lambda: True
    ctx["result"] = lambda: result
    return ctx


NO_ITEM: Any = _MISSING
