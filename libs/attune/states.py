"""Execution and workflow states: one `StrEnum` whose members are the lower-case strings stored in
the database, carried in JSON and compared against rows. A member *is* its string
(`ExecutionState.FAILED == "failed"`, `json.dumps` writes `"failed"`, drivers bind it as text), so
using the enum changes nothing that is stored or sent.

This module imports nothing heavy, so the pure engine can use it too; the mapping to the proto
enums lives in `attune.grpcutil.convert`.
"""

from __future__ import annotations

import enum

__all__ = ["ACTIVE", "TERMINAL", "WORKFLOW_STATUSES", "WORKFLOW_TERMINAL", "ExecutionState"]


class ExecutionState(enum.StrEnum):
    """The state of an execution; a workflow's status is one of `WORKFLOW_STATUSES`."""

    REQUESTED = "requested"
    SCHEDULING = "scheduling"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    CANCELING = "canceling"
    #: Waiting for an answer (a `core.ask`): no worker slot held; RespondToExecution or the timeout ends it.
    PENDING = "pending"
    #: A paused workflow whose running tasks are finishing; nothing new starts (docs/workflows.md, Pause and resume).
    PAUSING = "pausing"
    #: A paused workflow with nothing running; ResumeExecution continues it, CancelExecution ends it.
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"


#: States an execution never leaves.
TERMINAL = frozenset(
    {
        ExecutionState.SUCCEEDED,
        ExecutionState.FAILED,
        ExecutionState.TIMEOUT,
        ExecutionState.CANCELLED,
        ExecutionState.ABANDONED,
    }
)
#: States of an execution that is not finished yet.
ACTIVE = frozenset(
    {
        ExecutionState.REQUESTED,
        ExecutionState.SCHEDULING,
        ExecutionState.SCHEDULED,
        ExecutionState.RUNNING,
        ExecutionState.CANCELING,
        ExecutionState.PENDING,
        ExecutionState.PAUSING,
        ExecutionState.PAUSED,
    }
)
#: How a workflow ends.
WORKFLOW_TERMINAL = frozenset(
    {ExecutionState.SUCCEEDED, ExecutionState.FAILED, ExecutionState.CANCELLED, ExecutionState.TIMEOUT}
)
#: Every status a workflow row holds.
WORKFLOW_STATUSES = frozenset(
    {
        ExecutionState.RUNNING,
        ExecutionState.CANCELING,
        ExecutionState.PAUSING,
        ExecutionState.PAUSED,
        *WORKFLOW_TERMINAL,
    }
)
