"""The working context of one event, and the ways a workflow stops scheduling."""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

from ._states import FAILED
from .commands import CancelTask, CancelTimer, Command, SetTimer, StartTask, TaskRunKey
from .graph import CompiledWorkflow
from .spec import TaskSpec
from .state import WorkflowState

#: At most this many errors are listed in a workflow's error; the rest are only counted.
MAX_ERRORS = 20
#: A child's error quoted in a workflow's error is cut to this many characters.
MAX_REASON = 1000
#: Each error of a workflow is cut to this many characters (a template error can quote data).
MAX_ERROR = 2 * MAX_REASON


class EndedRun(NamedTuple):
    """A task run that ended (all its attempts or items), waiting for its transitions to fire.

    ``attempts`` is how many attempts the run took; ``reason`` why it did not succeed (the last
    attempt's error, or which item failed and why), None when unknown.

    A NamedTuple, not a frozen dataclass: one is made per ended run, and building a frozen
    dataclass costs ~0.5 µs against ~0.2 µs (3 % of an event on the engine's chain benchmark)."""

    task: TaskSpec
    run: int
    state: str
    result: Any
    attempts: int = 1
    reason: str | None = None
    #: The last attempt's input, kept for ``do: retry`` (None when no transition can retry).
    input: dict[str, Any] | None = None


def clipped(text: str, limit: int = MAX_REASON) -> str:
    """``text``, or its head and tail around a marker when it is longer than ``limit``: a nested
    workflow's error ends with the innermost cause, so the tail is kept too."""
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 5, limit * 3 // 5
    return f"{text[:head]} … [{len(text) - head - tail} characters cut] … {text[-tail:]}"


class Event:
    """One event being applied: the workflow, its state, the time, commands so far, and the
    task runs that ended during it and still wait for their transitions."""

    __slots__ = ("commands", "ended", "now", "paused", "state", "wf")

    def __init__(self, wf: CompiledWorkflow, state: WorkflowState, now: float) -> None:
        self.wf, self.state, self.now = wf, state, now
        self.commands: list[Command] = []
        self.ended: deque[EndedRun] = deque()
        #: A paused workflow holds back what would start something (docs/workflows.md, Pause and resume).
        self.paused: bool = state.meta.get("paused", False)

    def emit(self, command: Command) -> None:
        if self.paused and self.hold(command):
            return
        self.commands.append(command)

    def hold(self, command: Command) -> bool:
        """Keeps a launch or a task timer for ``resume`` instead of emitting it (True when held):
        the task run stays running in the state (``k:``), so nothing finishes the workflow early;
        a timer keeps its remaining time."""
        if isinstance(command, StartTask):
            self.state.set("hold:k:" + command.key.as_str(), command.to_dict())
            return True
        if isinstance(command, SetTimer) and command.purpose != "workflow_timeout":
            remaining = max(0.0, command.fire_at - self.now)
            self.state.set("hold:t:" + command.timer_id, {"remaining": remaining, "purpose": command.purpose})
            return True
        return False

    def run_ended(
        self,
        task: TaskSpec,
        run: int,
        state: str,
        result: Any,
        attempts: int = 1,
        reason: str | None = None,
        input: dict[str, Any] | None = None,
    ) -> None:
        """Queue a run that ended; the machine fires its transitions once the current one is done.

        A run can end inside another run's transitions (an empty ``with_items`` ends at once), so
        firing it right here would recurse once per such task: a long chain of them would overflow
        the stack. The queue keeps the depth constant, and lets every transition of one ended run
        (its publishes included) apply before anything it started is evaluated.
        """
        self.ended.append(EndedRun(task, run, state, result, attempts, reason, input))

    def fail(self, message: str) -> None:
        """Record an error; the first one stops all scheduling (docs/workflows.md, Semantic rules 3, 7, 11).

        Each is cut to MAX_ERROR characters and past MAX_ERRORS errors they are only counted, so
        the workflow's error stays bounded."""
        state = self.state
        meta = state.meta
        if len(meta["errors"]) < MAX_ERRORS:
            change: dict[str, Any] = {"errors": [*meta["errors"], clipped(message, MAX_ERROR)]}
        else:
            change = {"errors_more": meta.get("errors_more", 0) + 1}
        if state.closing is None:
            state.update_meta(closing=FAILED, **change)
            self.drop_pending()
            if self.wf.spec.cancellation_policy == "cancel_running":
                self.cancel_running()
        else:
            state.update_meta(**change)

    def drop_pending(self) -> None:
        """Forget every pending timer (task delays, retry waits): nothing new will start."""
        for timer_id in sorted(self.state.timers):
            self.state.delete("t:" + timer_id)
            self.state.delete("hold:t:" + timer_id)
            self.emit(CancelTimer(timer_id))

    def cancel_running(self) -> None:
        """Ask for every running child to be cancelled."""
        for key in sorted(self.state.running):
            if key not in self.state.held:  # a launch held while paused never started
                self.emit(CancelTask(TaskRunKey.parse(key)))
