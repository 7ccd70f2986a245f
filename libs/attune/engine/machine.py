"""The workflow state machine: events in, changed entries and commands out.

Pure and deterministic: no I/O and no clock but the ``now`` each event is given.
Every event returns a ``Step``; events that do not apply (a duplicate
``task_ended``, a timer already cancelled, anything after the workflow finished)
return an empty Step.

The workflow ``timeout`` is a timer set by ``start`` (``SetTimer`` with timer id
``workflow-timeout``); when it fires the workflow ends ``timeout`` at once and
``CancelTask`` is issued for every running child. ``cancel`` instead waits: the
workflow is ``canceling`` until its running children end, then ``cancelled``.
"""

from __future__ import annotations

from attune.states import TERMINAL

from ._event import Event
from ._runs import attempt_ended, timer_elapsed, transition_into
from ._states import CANCELING, CANCELLED, FAILED, SUCCEEDED, TIMEOUT
from ._transitions import run_finished
from .commands import CancelTimer, FinishWorkflow, SetTimer, Step, TaskEnded
from .context import base_context
from .errors import ExpressionError, WorkflowStateError
from .expressions import NestedExpressionError, render
from .graph import CompiledWorkflow
from .state import WorkflowState

__all__ = ["WORKFLOW_TIMEOUT_TIMER", "cancel", "start", "task_ended", "timer_fired"]

WORKFLOW_TIMEOUT_TIMER = "workflow-timeout"
TASK_END_STATES = TERMINAL


def start(wf: CompiledWorkflow, state: WorkflowState, *, now: float) -> Step:
    """Start the workflow: check the nesting cap, render ``vars``, set the timeout, run entry tasks."""
    if state.finished or state.meta["started"]:
        return Step()
    ev = Event(wf, state, now)
    state.take_changes()
    state.update_meta(started=True)
    depth, cap = state.meta["depth"], state.meta["depth_cap"]
    if depth > cap:
        ev.fail(f"workflow nesting depth {depth} is over the cap of {cap}")
    else:
        _render_vars(ev)
    if state.closing is None:
        if wf.spec.timeout is not None:
            state.update_meta(timeout_timer=True)
            ev.emit(SetTimer(WORKFLOW_TIMEOUT_TIMER, now + wf.spec.timeout, "workflow_timeout"))
        for name in wf.entry:
            transition_into(ev, name, None)
    return _settle(ev)


def task_ended(wf: CompiledWorkflow, state: WorkflowState, ended: TaskEnded, *, now: float) -> Step:
    """A child execution ended (succeeded | failed | timeout | cancelled | abandoned)."""
    if ended.state not in TASK_END_STATES:
        raise WorkflowStateError(
            f"task {ended.key.as_str()} cannot end {ended.state!r}: "
            f"expected one of {', '.join(sorted(TASK_END_STATES))}"
        )
    if state.finished or state.get("k:" + ended.key.as_str()) is None:
        return Step()
    ev = Event(wf, state, now)
    state.take_changes()
    attempt_ended(ev, ended)
    return _settle(ev)


def timer_fired(wf: CompiledWorkflow, state: WorkflowState, timer_id: str, *, now: float) -> Step:
    """A timer set by an earlier ``SetTimer`` fired (unknown or cancelled ids are ignored)."""
    if state.finished:
        return Step()
    ev = Event(wf, state, now)
    state.take_changes()
    if timer_id == WORKFLOW_TIMEOUT_TIMER:
        if not state.meta["timeout_timer"]:
            return Step()
        return _time_out(ev)
    timer = state.get("t:" + timer_id)
    if timer is None:
        return Step()
    state.delete("t:" + timer_id)
    timer_elapsed(ev, timer)
    return _settle(ev)


def cancel(wf: CompiledWorkflow, state: WorkflowState, *, now: float) -> Step:
    """Cancel the workflow: drop pending work, cancel running children under ``cancel_running``,
    and end ``cancelled`` once the running ones have ended."""
    if state.finished or state.status == CANCELING:
        return Step()
    ev = Event(wf, state, now)
    state.take_changes()
    state.update_meta(status=CANCELING, closing=CANCELLED)
    ev.drop_pending()
    if wf.spec.cancellation_policy == "cancel_running":
        ev.cancel_running()
    return _settle(ev)


def _render_vars(ev: Event) -> None:
    ctx = base_context(ev.state)
    for name, expr in ev.wf.spec.vars:
        try:
            ev.state.set_value("v:" + name, render(expr, ctx))
        except NestedExpressionError as err:
            ev.fail(f"field vars.{name}{err.subpath}: {err.detail}")
            return
        except ExpressionError as err:
            ev.fail(f"field vars.{name}: {err}")
            return


def _time_out(ev: Event) -> Step:
    state = ev.state
    timeout = ev.wf.spec.timeout
    state.update_meta(
        closing=TIMEOUT,
        timeout_timer=False,
        errors=[*state.meta["errors"], f"workflow timed out after {timeout:g}s"],
    )
    ev.drop_pending()
    ev.cancel_running()
    _finish(ev, TIMEOUT)
    return Step(state.take_changes(), ev.commands)


def _settle(ev: Event) -> Step:
    """Fire the transitions of every run that ended during the event, then finish the workflow
    if nothing is running and no timer is pending (nothing hangs)."""
    while ev.ended:
        run_finished(ev, ev.ended.popleft())
    state = ev.state
    if not state.finished and not state.running and not state.timers:
        closing = state.closing
        if closing is None:
            _check_joins(ev)
        if state.closing is None:
            _succeed(ev)
        else:
            _finish(ev, state.closing)
    return Step(state.take_changes(), ev.commands)


def _check_joins(ev: Event) -> None:
    """A join that some arrivals reached but can no longer be met fails the workflow."""
    state = ev.state
    for name in sorted(state.open_joins):
        task = ev.wf.tasks[name]
        sources = ev.wf.inbound[name]
        generation = state.get("jgen:" + name, 0)
        arrived = [s for s in sources if state.get(f"ja:{name}/{s}") == generation]
        wanted = "all" if task.join == "all" else str(task.join)
        ev.fail(
            f'join task "{name}" waited for {wanted} of [{", ".join(sources)}] '
            f"but only [{', '.join(arrived)}] arrived; it can no longer run"
        )


def _succeed(ev: Event) -> None:
    ctx = base_context(ev.state)
    output: dict[str, object] = {"succeeded": True}
    for name, expr in ev.wf.spec.output_map:
        try:
            output[name] = render(expr, ctx)
        except NestedExpressionError as err:
            ev.fail(f"field output_map.{name}{err.subpath}: {err.detail}")
            _finish(ev, FAILED)
            return
        except ExpressionError as err:
            ev.fail(f"field output_map.{name}: {err}")
            _finish(ev, FAILED)
            return
    _finish(ev, SUCCEEDED, output)


def _failed_output(ev: Event, errors: list[str]) -> dict[str, object]:
    """The ``output_map`` of a workflow a ``do: fail`` ended, over the published variables (an
    ``error`` key stays the engine's). A template error leaves the whole output out and is
    added to ``errors``."""
    ctx = base_context(ev.state)
    output: dict[str, object] = {}
    for name, expr in ev.wf.spec.output_map:
        try:
            value = render(expr, ctx)
        except NestedExpressionError as err:
            errors.append(f"field output_map.{name}{err.subpath}: {err.detail}")
            return {}
        except ExpressionError as err:
            errors.append(f"field output_map.{name}: {err}")
            return {}
        if name != "error":
            output[name] = value
    return output


def _finish(ev: Event, status: str, result: dict[str, object] | None = None) -> None:
    state = ev.state
    error = None
    if status != SUCCEEDED:
        errors = list(state.meta["errors"])
        if status == CANCELLED:
            errors.insert(0, "workflow cancelled")
        more = state.meta.get("errors_more", 0)
        if more:
            errors.append(f"and {more} more error{'s' if more > 1 else ''}")
        output: dict[str, object] = {}
        if status == FAILED and state.meta.get("fail_output"):
            output = _failed_output(ev, errors)  # `do: fail`: what the handler published is kept
        error = "; ".join(errors)
        result = {"succeeded": False, "error": error, **output}
    if state.meta["timeout_timer"]:
        ev.emit(CancelTimer(WORKFLOW_TIMEOUT_TIMER))
    state.update_meta(status=status, timeout_timer=False)
    ev.emit(FinishWorkflow(status, dict(result or {}), error))
