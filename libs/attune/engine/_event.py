"""The working context of one event, and the ways a workflow stops scheduling."""

from __future__ import annotations

from .commands import CancelTask, CancelTimer, Command, TaskRunKey
from .graph import CompiledWorkflow
from .state import WorkflowState


class Event:
    """One event being applied: the workflow, its state, the time, commands so far."""

    __slots__ = ("commands", "now", "state", "wf")

    def __init__(self, wf: CompiledWorkflow, state: WorkflowState, now: float) -> None:
        self.wf, self.state, self.now = wf, state, now
        self.commands: list[Command] = []

    def emit(self, command: Command) -> None:
        self.commands.append(command)

    def fail(self, message: str) -> None:
        """Record an error; the first one stops all scheduling (DESIGN §4 points 3, 7, 11)."""
        state = self.state
        errors = [*state.meta["errors"], message]
        if state.closing is None:
            state.update_meta(closing="failed", errors=errors)
            self.drop_pending()
            if self.wf.spec.cancellation_policy == "cancel_running":
                self.cancel_running()
        else:
            state.update_meta(errors=errors)

    def drop_pending(self) -> None:
        """Forget every pending timer (task delays, retry waits): nothing new will start."""
        for timer_id in sorted(self.state.timers):
            self.state.delete("t:" + timer_id)
            self.emit(CancelTimer(timer_id))

    def cancel_running(self) -> None:
        """Ask for every running child to be cancelled."""
        for key in sorted(self.state.running):
            self.emit(CancelTask(TaskRunKey.parse(key)))
