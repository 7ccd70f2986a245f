"""The workflow state machine: events in, changed entries and commands out.

Pure and deterministic: no I/O and no clock but the ``now`` each event is given.
Every event returns a ``Step``; events that do not apply (a duplicate
``task_ended``, a timer already cancelled, anything after the workflow finished)
return an empty Step.

The workflow ``timeout`` is a timer set by ``start`` (``SetTimer`` with timer id
``workflow-timeout``); when it fires the workflow ends ``timeout`` at once and
``CancelTask`` is issued for every running child. ``cancel`` instead waits: the
workflow is ``canceling`` until its running children end, then ``cancelled``.

``pause`` holds back every launch and task timer (``Event.hold``): the workflow is ``pausing``
while children it started still run, then ``paused``; ``resume`` makes the held launches and
re-arms the held timers with their remaining time. A nested workflow that is paused counts as
idle for its parent (``child_paused``). A workflow that closes (fails, is cancelled) while paused
stops being paused: its held launches end ``cancelled`` without having started, and its paused
nested workflows are cancelled.
"""

from __future__ import annotations

from attune.states import TERMINAL

from ._event import Event
from ._runs import attempt_ended, timer_elapsed, transition_into
from ._states import CANCELING, CANCELLED, FAILED, PAUSED, PAUSING, RUNNING, SUCCEEDED, TIMEOUT
from ._transitions import run_finished
from .commands import CancelTask, CancelTimer, FinishWorkflow, SetTimer, Step, TaskEnded, TaskRunKey, command_from_dict
from .context import base_context
from .errors import ExpressionError, WorkflowStateError
from .expressions import NestedExpressionError, render
from .graph import CompiledWorkflow
from .state import WorkflowState

__all__ = [
    "WORKFLOW_TIMEOUT_TIMER",
    "cancel",
    "child_paused",
    "pause",
    "resume",
    "start",
    "task_ended",
    "timer_fired",
]

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
    if timer is None or state.get("hold:t:" + timer_id) is not None:
        return Step()  # unknown, or held while paused (it fired before its cancel took effect)
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


def pause(wf: CompiledWorkflow, state: WorkflowState, *, now: float) -> Step:
    """Pause the workflow: nothing new starts, task timers stop with their remaining time; it is
    ``pausing`` until its running children end, then ``paused``. A workflow that is closing
    (failing, canceling) or already paused is left as it is."""
    if state.finished or state.closing is not None or state.meta.get("paused"):
        return Step()
    ev = Event(wf, state, now)
    state.take_changes()
    state.update_meta(paused=True)
    ev.paused = True
    for timer_id in sorted(state.timers):
        timer = state.get("t:" + timer_id)
        purpose = "delay" if timer["purpose"] == "delay" else "retry"
        ev.hold(SetTimer(timer_id, timer["fire_at"], purpose))
        ev.emit(CancelTimer(timer_id))
    return _settle(ev)


def child_paused(wf: CompiledWorkflow, state: WorkflowState, key: TaskRunKey, *, now: float) -> Step:
    """The nested workflow a running task run started is paused: a pausing workflow whose every
    running child is held or paused is ``paused`` itself (docs/workflows.md, Nesting)."""
    run_key = key.as_str()
    if state.finished or not state.meta.get("paused") or run_key not in state.running:
        return Step()
    paused_children = state.meta.get("paused_children", [])
    if run_key in paused_children:
        return Step()
    ev = Event(wf, state, now)
    state.take_changes()
    state.update_meta(paused_children=[*paused_children, run_key])
    return _settle(ev)


def resume(wf: CompiledWorkflow, state: WorkflowState, *, now: float) -> Step:
    """Resume a paused workflow where it stopped: the held launches are made, the held timers
    set again for their remaining time."""
    if state.finished or not state.meta.get("paused"):
        return Step()
    ev = Event(wf, state, now)
    state.take_changes()
    state.update_meta(paused=False, status=RUNNING, paused_children=[])
    ev.paused = False
    for key in sorted(state.keys_with_prefix("hold:")):
        held = state.get(key)
        state.delete(key)
        if key.startswith("hold:k:"):
            ev.emit(command_from_dict(held))
            continue
        timer_id = key[len("hold:t:") :]
        timer = state.get("t:" + timer_id)
        if timer is not None:
            fire_at = now + held["remaining"]
            state.set("t:" + timer_id, {**timer, "fire_at": fire_at})
            ev.emit(SetTimer(timer_id, fire_at, held["purpose"]))
    return _settle(ev)


def _fire_paused(ev: Event) -> None:
    """``_settle``'s transitions of a paused workflow (kept off the hot path): one that closes on
    the way stops being paused."""
    state = ev.state
    if state.closing is not None:
        _unpause_closing(ev)
    while ev.ended:
        run_finished(ev, ev.ended.popleft())
        if ev.paused and state.closing is not None:
            _unpause_closing(ev)


def _unpause_closing(ev: Event) -> None:
    """A paused workflow that closes is no longer paused: its held launches end cancelled (they
    never started), its held timers were dropped with the pending work."""
    state = ev.state
    state.update_meta(paused=False, **({} if state.status == CANCELING else {"status": RUNNING}))
    ev.paused = False
    for timer_key in state.keys_with_prefix("hold:t:"):
        state.delete(timer_key)
    if ev.wf.spec.cancellation_policy != "cancel_running":  # else cancel_running() asked already
        # A paused nested workflow would wait for a resume that cannot come: it is cancelled.
        for run_key in state.meta.get("paused_children", ()):
            if run_key in state.running:
                ev.emit(CancelTask(TaskRunKey.parse(run_key)))
    state.update_meta(paused_children=[])
    for run_key in sorted(state.held):
        state.delete("hold:k:" + run_key)
        attempt_ended(
            ev, TaskEnded(TaskRunKey.parse(run_key), CANCELLED, None, "never started: the workflow closed while paused")
        )


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
    state = ev.state
    if ev.paused:
        _fire_paused(ev)
    else:
        while ev.ended:
            run_finished(ev, ev.ended.popleft())
    if ev.paused and not state.finished:
        # Held launches are not running, nor are paused nested workflows: paused once the
        # children it started have ended or paused.
        idle = [k for k in state.meta.get("paused_children", ()) if k in state.running]
        if len(idle) != len(state.meta.get("paused_children", ())):
            state.update_meta(paused_children=idle)
        state.update_meta(status=PAUSED if len(state.running) == len(state.held) + len(idle) else PAUSING)
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
