"""What one event writes, as rows: the StepWrite of a step and its parts, and what applying it
did (no I/O here)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class StepOutcome(enum.StrEnum):
    """What applying one StepWrite in a batch did."""

    APPLIED = "applied"
    CONFLICT = "conflict"  # the version moved on: recompute from a fresh load
    EXISTS = "exists"  # a create for a workflow that is already recorded


def dump_json(value: Any) -> str:
    """Compact JSON text, as stored in the Text columns."""
    return json.dumps(value, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class NewWorkflow:
    """The workflow_executions row of a workflow being started."""

    id: str
    action_ref: str
    definition_digest: str
    depth: int
    traceparent: str
    created_at: float


@dataclass(frozen=True)
class NewTaskRun:
    """A task_runs row for one StartTask."""

    run_key: str
    seq: int
    task_name: str
    run: int
    item_index: int | None
    attempt: int
    action_ref: str
    request: dict[str, Any]
    started_at: float


@dataclass(frozen=True)
class EndedRun:
    """A task run whose child reached a terminal state (or could not be created)."""

    run_key: str
    state: str
    finished_at: float
    #: The child whose outcome ended the run ("" when there was none: refused, cancelled first).
    #: Recorded with the end, so a run's child is known even before the lingering record of
    #: dispatched children (carrier.py) is written.
    child_execution_id: str = ""


class RunRef(NamedTuple):
    """A task run by its primary key. A NamedTuple, not a dataclass: the carrier keys its queues
    by it, and a tuple hashes in C."""

    workflow_id: str
    run_key: str


@dataclass(frozen=True, slots=True)
class DefinitionRow:
    """A compiled definition to store once, under its content digest (`workflow_definitions`)."""

    digest: str
    compiled_json: str


@dataclass(frozen=True, slots=True)
class TimerRow:
    """A `workflow_timers` row to set: when the timer fires and what for."""

    fire_at: float
    purpose: str


@dataclass(frozen=True, slots=True)
class WorkflowFinish:
    """How a workflow ended, as its row records it: status, result, error, finished_at."""

    status: str
    result: Any
    error: str | None
    at: float


@dataclass(frozen=True, slots=True)
class DispatchedChild:
    """A child execution the scheduler accepted for a task run (recorded in `task_runs`)."""

    workflow_id: str
    run_key: str
    child_execution_id: str


@dataclass
class StepWrite:
    """Everything one event changed for one workflow."""

    workflow_id: str
    #: The version the step was computed from; the row moves to version + 1. None: no CAS
    #: (a write that touches no engine state, e.g. recording a duplicate's end time).
    expected_version: int | None
    #: False: only check the version (nothing in the engine state changed).
    bump: bool = True
    status: str | None = None
    create: NewWorkflow | None = None
    definition: DefinitionRow | None = None  # stored once
    entries: dict[str, Any] = field(default_factory=dict)  # value None deletes the entry
    new_runs: list[NewTaskRun] = field(default_factory=list)
    ended_runs: list[EndedRun] = field(default_factory=list)
    cancel_runs: list[str] = field(default_factory=list)
    timers: dict[str, TimerRow | None] = field(default_factory=dict)  # by timer id; None deletes
    finish: WorkflowFinish | None = None
    #: The traceparent of the span that computed the step: the parent of the children it
    #: requests (and of its finish). Empty: the workflow's own.
    traceparent: str = ""
