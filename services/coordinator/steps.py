"""A workflow held in memory, and the translation of engine Steps into the rows of a StepWrite."""

from __future__ import annotations

from dataclasses import dataclass

from attune.engine import (
    CancelTask,
    CancelTimer,
    CompiledWorkflow,
    FinishWorkflow,
    SetTimer,
    StartTask,
    Step,
    WorkflowState,
)
from attune_services.coordinator.rows import NewTaskRun, StepWrite, TimerRow, WorkflowFinish
from attune_services.coordinator.secrets import WorkflowSecrets


@dataclass
class LoadedWorkflow:
    """A running workflow held in memory between events (the database stays the truth)."""

    id: str
    action_ref: str
    compiled: CompiledWorkflow
    state: WorkflowState
    version: int  # of its workflow_executions row
    depth: int
    traceparent: str
    next_seq: int  # seq of the next task run
    #: Its secret values and how its rows hide them; None for a workflow without secrets.
    secrets: WorkflowSecrets | None = None


def add_step(write: StepWrite, loaded: LoadedWorkflow, step: Step, now: float) -> None:
    """Adds one event's Step to `write` (several steps of one workflow may share a write: later
    changes of an entry or a timer replace earlier ones)."""
    write.entries.update(step.changed)
    for command in step.commands:
        if isinstance(command, StartTask):
            key = command.key
            write.new_runs.append(
                NewTaskRun(
                    key.as_str(),
                    loaded.next_seq,
                    key.task,
                    key.run,
                    key.item,
                    key.attempt,
                    command.action_ref,
                    {"input": command.input, "timeout": command.timeout},
                    now,
                )
            )
            loaded.next_seq += 1
        elif isinstance(command, CancelTask):
            write.cancel_runs.append(command.key.as_str())
        elif isinstance(command, SetTimer):
            write.timers[command.timer_id] = TimerRow(command.fire_at, command.purpose)
        elif isinstance(command, CancelTimer):
            write.timers[command.timer_id] = None
        elif isinstance(command, FinishWorkflow):
            write.status = command.status
            write.finish = WorkflowFinish(command.status, command.result, command.error, now)
