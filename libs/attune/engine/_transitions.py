"""What happens when a task run ends: record its result, fire matching ``next`` entries."""

from __future__ import annotations

from typing import Any

from ._event import EndedRun, Event, clipped
from ._runs import drop_items, retry_run, transition_into
from ._states import CANCELLED, FAILED, SUCCEEDED
from .context import run_context
from .errors import ExpressionError
from .expressions import NestedExpressionError, compile_template, render
from .spec import ENGINE_COMMANDS, TaskSpec


def run_finished(ev: Event, ended: EndedRun) -> None:
    """Fire every ``next`` entry whose ``when`` holds, in order (docs/workflows.md, Semantic rules 2, 3, 7).

    Each fired entry applies its publish list in order, then schedules its ``do``
    targets and carries out its engine command (``continue``, ``fail``, ``noop``, ``retry``).
    A failed run not handled by a fired entry with a task, ``fail`` or ``noop`` (or retried)
    fails the workflow, saying why the run failed.
    """
    task, run_state, result = ended.task, ended.state, ended.result
    state, name = ev.state, task.name
    state.set_value("res:" + name, result)
    ctx = run_context(state, run_state, result)
    handled = retried = False
    for transition in task.next:
        holds = _when_holds(ev, task, transition.origin, transition.when, ctx)
        if holds is None:
            drop_items(ev, ended)
            return  # the workflow failed: never silently skip or fire
        if not holds:
            continue
        for var, expr in transition.publish:
            try:
                value = render(expr, ctx)
            except NestedExpressionError as err:
                ev.fail(f'task "{name}", field {transition.publish_field}.{var}{err.subpath}: {err.detail}')
                drop_items(ev, ended)
                return
            except ExpressionError as err:
                ev.fail(f'task "{name}", field {transition.publish_field}.{var}: {err}')
                drop_items(ev, ended)
                return
            state.set_value("v:" + var, value)
        for target in transition.do:
            if target not in ENGINE_COMMANDS:
                handled = True
                transition_into(ev, target, name)
            elif target == "fail":
                handled = True
                if state.closing is None:
                    state.update_meta(fail_output=True)  # the output_map is rendered on this failure
                ev.fail(f'task "{name}" requested fail (transition {transition.origin})')
            elif target == "noop":
                handled = True
            elif target == "retry" and not retried:
                retried = retry_run(ev, ended)
            # `continue`, or a retry with no attempt left: the run's state stands
    if retried:
        return  # the run goes on with its next attempt: its transitions fire again when it ends
    drop_items(ev, ended)
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
