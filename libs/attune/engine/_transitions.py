"""What happens when a task run ends: record its result, fire matching ``next`` entries."""

from __future__ import annotations

from typing import Any

from ._event import Event
from ._runs import transition_into
from ._states import CANCELLED, FAILED, SUCCEEDED
from .context import run_context
from .errors import ExpressionError
from .expressions import NestedExpressionError, compile_template, render
from .spec import TaskSpec


def run_finished(ev: Event, task: TaskSpec, run: int, run_state: str, result: Any) -> None:
    """Fire every ``next`` entry whose ``when`` holds, in order (docs/workflows.md, Semantic rules 2, 3, 7).

    Each fired entry applies its publish list in order, then schedules its ``do``
    targets. A failed run not handled by a fired entry with a ``do`` fails the workflow.
    """
    state, name = ev.state, task.name
    state.set_value("res:" + name, result)
    ctx = run_context(state, run_state, result)
    handled = False
    for transition in task.next:
        holds = _when_holds(ev, task, transition.origin, transition.when, ctx)
        if holds is None:
            return  # the workflow failed: never silently skip or fire
        if not holds:
            continue
        for var, expr in transition.publish:
            try:
                value = render(expr, ctx)
            except NestedExpressionError as err:
                ev.fail(f'task "{name}", field {transition.publish_field}.{var}{err.subpath}: {err.detail}')
                return
            except ExpressionError as err:
                ev.fail(f'task "{name}", field {transition.publish_field}.{var}: expression {expr!r}: {err}')
                return
            state.set_value("v:" + var, value)
        if transition.do:
            handled = True
            for target in transition.do:
                transition_into(ev, target, name)
    # once the workflow is stopping, a child ending "cancelled" is the stop working, not a new failure
    expected = state.closing is not None and (run_state == CANCELLED or state.closing != FAILED)
    if run_state != SUCCEEDED and not handled and not expected:
        ev.fail(f'task "{name}" (run {run}) ended {run_state} and no transition handled it')


def _when_holds(ev: Event, task: TaskSpec, origin: str, when: str | bool | None, ctx: dict[str, Any]) -> bool | None:
    """Whether the entry fires; None when ``when`` failed (the workflow is then failed)."""
    if when is None:
        return True
    if isinstance(when, bool):
        return when
    try:  # parse_workflow guarantees a string `when` is a template
        return bool(compile_template(when).evaluate(ctx))
    except ExpressionError as err:
        ev.fail(f'task "{task.name}", field {origin}.when: expression {when!r}: {err}')
        return None
