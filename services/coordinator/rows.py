"""What one event writes, as rows: the StepWrite of a step and its parts (no I/O here)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Outcomes of one StepWrite in a batch.
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
    definition: tuple[str, str] | None = None  # (digest, compiled JSON), stored once
    entries: dict[str, Any] = field(default_factory=dict)  # value None deletes the entry
    new_runs: list[NewTaskRun] = field(default_factory=list)
    ended_runs: list[EndedRun] = field(default_factory=list)
    cancel_runs: list[str] = field(default_factory=list)
    timers: dict[str, tuple[float, str] | None] = field(default_factory=dict)  # None deletes
    finish: tuple[str, Any, str | None, float] | None = None  # status, result, error, at
