"""Conversions between Python values and protobuf well-known types."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2


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
    return _ints_back(json_format.MessageToDict(struct))  # type: ignore[no-any-return]


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
