"""Conversions between Python values and protobuf: well-known types, and execution / workflow
states to and from their proto enums."""

from __future__ import annotations

import json
import math
from typing import Any, Literal, cast

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from attune.common.v1 import common_pb2
from attune.grpcutil.errors import invalid_field
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


def dict_from_struct(struct: struct_pb2.Struct, *, field: str = "") -> dict[str, Any]:
    """A plain dict from a Struct, integral numbers as int. A NaN or an infinity, which a Struct
    may carry but JSON cannot, is InvalidArgument naming where it is, under `field` (the Struct's
    own path in its request, e.g. "parameters")."""
    try:
        plain: dict[str, Any] = _ints_back(json_format.MessageToDict(struct))
    except ValueError as err:  # json_format refuses a non-finite number
        where = _non_finite_number(struct, field)
        if where is None:
            raise
        raise invalid_field(where, "is not a finite number (JSON has no NaN or Infinity)") from err
    return plain


def _non_finite_number(struct: struct_pb2.Struct, field: str) -> str | None:
    """The path of a NaN or infinite number in `struct`, or None."""
    pending = [(f"{field}.{key}" if field else key, value) for key, value in struct.fields.items()]
    while pending:
        path, value = pending.pop()
        kind = value.WhichOneof("kind")
        if kind == "number_value" and not math.isfinite(value.number_value):
            return path
        if kind == "struct_value":
            pending += [(f"{path}.{key}", item) for key, item in value.struct_value.fields.items()]
        elif kind == "list_value":
            pending += [(f"{path}[{i}]", item) for i, item in enumerate(value.list_value.values)]
    return None


def struct_from_dict(value: dict[str, Any] | None) -> struct_pb2.Struct:
    """A Struct from a JSON-compatible dict (None → empty). What JSON has no number for becomes
    text, so that any client can print it: a NaN or infinite number (Python's json reads and
    writes them, as in a result `{"sum": Infinity}`) the string "NaN", "Infinity" or "-Infinity",
    an integer beyond a double its digits; any other value that is not JSON its `str`."""
    struct = struct_pb2.Struct()
    if not value:
        return struct
    text = json.dumps(value, default=str)
    # A bare NaN or Infinity is rare: only then is it parsed with a hook (the words in a string are left alone).
    plain = json.loads(text, parse_constant=str) if "NaN" in text or "Infinity" in text else json.loads(text)
    try:
        struct.update(plain)
    except OverflowError:  # an integer too large for a double, which a Struct's numbers are
        struct = struct_pb2.Struct()
        struct.update(json.loads(text, parse_constant=str, parse_int=_int_or_digits))
    return struct


def _int_or_digits(digits: str) -> int | str:
    number = int(digits)
    try:
        float(number)
    except OverflowError:
        return digits
    return number


def timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    """A Timestamp from Unix seconds (None stays None)."""
    if seconds is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def duration(seconds: float | None) -> duration_pb2.Duration | None:
    """A Duration from seconds; None for none (None or 0: a timeout of 0 means none)."""
    if not seconds:
        return None
    value = duration_pb2.Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


#: The most seconds a Duration may hold (about 10,000 years), as protobuf defines it.
MAX_DURATION_SECONDS = 315_576_000_000


def duration_seconds(value: duration_pb2.Duration, *, field: str) -> float:
    """Seconds of a request's Duration; InvalidArgument naming `field` for a negative one or one
    protobuf's Duration cannot hold (seconds and nanos of different signs, out of range)."""
    seconds, nanos = value.seconds, value.nanos
    if abs(seconds) > MAX_DURATION_SECONDS or abs(nanos) >= 1_000_000_000 or seconds * nanos < 0:
        raise invalid_field(field, "is not a valid Duration (seconds and nanos of one sign, within ±10,000 years)")
    if seconds < 0 or nanos < 0:
        raise invalid_field(field, "must not be negative")
    return seconds + nanos / 1e9


def timeout_of(message: Any, *, prefix: str = "") -> float:
    """The timeout in seconds a request message gives (a RequestExecutionRequest, an Action):
    its Duration `timeout` when set, which wins, else its deprecated `timeout_seconds`
    (validated by the request guard or the caller). Field names in errors start with `prefix`."""
    if message.HasField("timeout"):
        return duration_seconds(message.timeout, field=f"{prefix}timeout")
    return float(message.timeout_seconds)


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
