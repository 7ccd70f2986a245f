"""Execution and workflow states as the lower-case strings stored in the database, and their
mapping to the proto enums."""

from __future__ import annotations

from typing import cast

from attune.common.v1 import common_pb2
from attune.workflow.v1 import workflow_pb2

REQUESTED = "requested"
SCHEDULING = "scheduling"
SCHEDULED = "scheduled"
RUNNING = "running"
CANCELING = "canceling"
SUCCEEDED = "succeeded"
FAILED = "failed"
TIMEOUT = "timeout"
CANCELLED = "cancelled"
ABANDONED = "abandoned"

TERMINAL = frozenset({SUCCEEDED, FAILED, TIMEOUT, CANCELLED, ABANDONED})
ACTIVE = frozenset({REQUESTED, SCHEDULING, SCHEDULED, RUNNING, CANCELING})
WORKFLOW_TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, TIMEOUT})


def execution_state_to_proto(state: str) -> common_pb2.ExecutionState:
    """ "running" → EXECUTION_STATE_RUNNING."""
    # types-protobuf types EnumTypeWrapper.Value as int; the generated stubs type the fields as the enum
    return cast(common_pb2.ExecutionState, common_pb2.ExecutionState.Value("EXECUTION_STATE_" + state.upper()))


def execution_state_from_proto(value: int) -> str:
    """EXECUTION_STATE_RUNNING → "running" ("" for UNSPECIFIED)."""
    name = common_pb2.ExecutionState.Name(value)  # type: ignore[arg-type]
    return "" if value == 0 else name.removeprefix("EXECUTION_STATE_").lower()


def workflow_state_to_proto(state: str) -> workflow_pb2.WorkflowState:
    """ "running" → WORKFLOW_STATE_RUNNING."""
    # types-protobuf types EnumTypeWrapper.Value as int; the generated stubs type the fields as the enum
    return cast(workflow_pb2.WorkflowState, workflow_pb2.WorkflowState.Value("WORKFLOW_STATE_" + state.upper()))


def workflow_state_from_proto(value: int) -> str:
    """WORKFLOW_STATE_RUNNING → "running" ("" for UNSPECIFIED)."""
    name = workflow_pb2.WorkflowState.Name(value)  # type: ignore[arg-type]
    return "" if value == 0 else name.removeprefix("WORKFLOW_STATE_").lower()
