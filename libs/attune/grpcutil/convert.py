"""Conversions between Python values and protobuf: well-known types, and execution / workflow
states to and from their proto enums."""

from __future__ import annotations

import json
from typing import Any, Literal, cast

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from attune.common.v1 import common_pb2
from attune.states import ExecutionState
from attune.workflow.v1 import workflow_pb2


def _ints_back(value: Any) -> Any:
    # Struct carries every number as a double; integral ones come back as int.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _ints_back(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints_back(v) for v in value]
    return value


def dict_from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A plain dict from a Struct, integral numbers as int."""
    plain: dict[str, Any] = _ints_back(json_format.MessageToDict(struct))
    return plain


def struct_from_dict(value: dict[str, Any] | None) -> struct_pb2.Struct:
    """A Struct from a JSON-compatible dict (None → empty)."""
    struct = struct_pb2.Struct()
    if value:
        struct.update(json.loads(json.dumps(value, default=str)))
    return struct


def timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    """A Timestamp from Unix seconds (None stays None)."""
    if seconds is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def dumps(value: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(value, separators=(",", ":"), default=str).encode()


def loads(data: bytes | str | None, default: Any = None) -> Any:
    """JSON from bytes or text; `default` for empty input."""
    if not data:
        return default
    return json.loads(data)


def execution_state_to_proto(state: str) -> common_pb2.ExecutionState:
    """ExecutionState.RUNNING (or "running" read from a row) → EXECUTION_STATE_RUNNING."""
    # types-protobuf types EnumTypeWrapper.Value as int; the generated stubs type the fields as the enum
    return cast(common_pb2.ExecutionState, common_pb2.ExecutionState.Value("EXECUTION_STATE_" + state.upper()))


def execution_state_from_proto(value: int) -> ExecutionState | Literal[""]:
    """EXECUTION_STATE_RUNNING → ExecutionState.RUNNING ("" for UNSPECIFIED); ValueError for a
    number the contract does not define (requests are held to known values by the request guard)."""
    if value == 0:
        return ""
    try:
        name = common_pb2.ExecutionState.Name(value)
    except ValueError as err:
        raise ValueError(f"{value} is not a known ExecutionState") from err
    return ExecutionState(name.removeprefix("EXECUTION_STATE_").lower())


def workflow_state_to_proto(state: str) -> workflow_pb2.WorkflowState:
    """ExecutionState.RUNNING (or "running" read from a row) → WORKFLOW_STATE_RUNNING."""
    # types-protobuf types EnumTypeWrapper.Value as int; the generated stubs type the fields as the enum
    return cast(workflow_pb2.WorkflowState, workflow_pb2.WorkflowState.Value("WORKFLOW_STATE_" + state.upper()))


def workflow_state_from_proto(value: int) -> ExecutionState | Literal[""]:
    """WORKFLOW_STATE_RUNNING → ExecutionState.RUNNING ("" for UNSPECIFIED); ValueError for a
    number the contract does not define."""
    if value == 0:
        return ""
    try:
        name = workflow_pb2.WorkflowState.Name(value)
    except ValueError as err:
        raise ValueError(f"{value} is not a known WorkflowState") from err
    return ExecutionState(name.removeprefix("WORKFLOW_STATE_").lower())
