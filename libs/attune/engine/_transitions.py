"""What happens when a task run ends: record its result, fire matching ``next`` entries."""

from __future__ import annotations

from typing import Any

from ._event import EndedRun, Event, clipped
from ._runs import transition_into
from ._states import CANCELLED, FAILED, SUCCEEDED
from .context import run_context
from .errors import ExpressionError
from .expressions import NestedExpressionError, compile_template, render
from .spec import TaskSpec


def run_finished(ev: Event, ended: EndedRun) -> None:
    """Fire every ``next`` entry whose ``when`` holds, in order (docs/workflows.md, Semantic rules 2, 3, 7).

    Each fired entry applies its publish list in order, then schedules its ``do``
    targets. A failed run not handled by a fired entry with a ``do`` fails the workflow,
    saying why the run failed.
    """
    task, run_state, result = ended.task, ended.state, ended.result
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
                ev.fail(f'task "{name}", field {transition.publish_field}.{var}: {err}')
                return
            state.set_value("v:" + var, value)
        if transition.do:
            handled = True
            for target in transition.do:
                transition_into(ev, target, name)
    # once the workflow is stopping, a child ending "cancelled" is the stop working, not a new failure
    expected = state.closing is not None and (run_state == CANCELLED or state.closing != FAILED)
    if run_state != SUCCEEDED and not handled and not expected:
        ev.fail(_unhandled(ended))


def _unhandled(ended: EndedRun) -> str:
    """``task "t" (run 1) ended failed[ after 3 attempts] and no transition handled it[: why]``."""
    text = f'task "{ended.task.name}" (run {ended.run}) ended {ended.state}'
    if ended.attempts > 1:
        text += f" after {ended.attempts} attempts"
    text += " and no transition handled it"
    return text if not ended.reason else f"{text}: {clipped(ended.reason)}"


def _when_holds(ev: Event, task: TaskSpec, origin: str, when: str | bool | None, ctx: dict[str, Any]) -> bool | None:
    """Whether the entry fires; None when ``when`` failed (the workflow is then failed)."""
    if when is None:
        return True
    if isinstance(when, bool):
        return when
    try:  # parse_workflow guarantees a string `when` is a template
        return bool(compile_template(when).evaluate(ctx))
    except ExpressionError as err:
        ev.fail(f'task "{task.name}", field {origin}.when: {err}')
        return None
