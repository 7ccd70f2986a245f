"""The API view of an executions row: parameters with secrets redacted, result decoded — or, when
it is larger than the view may carry, a preview of it (GetExecutionResult streams it whole).

How much of a result a view carries depends on where it goes: a child or a list entry carries
up to CHILD_RESULT_INLINE_BYTES, the execution a Get or Watch is about up to a quarter of the
message limit (`main_result_inline_bytes`), so that a response with a page of children, whose
parameters may be large too, stays under the limit."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeAlias

from sqlalchemy import RowMapping

from attune.common.v1 import common_pb2
from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import (
    duration,
    execution_state_from_proto,
    execution_state_to_proto,
    struct_from_dict,
    timestamp,
)
from attune.internal.completion.v1 import completion_pb2
from attune.packs import redact

#: A result up to this size (JSON bytes) is carried whole in a child's or a list entry's view.
CHILD_RESULT_INLINE_BYTES = 16 * 1024
#: The head of a larger result a view carries as text (bytes of its JSON).
RESULT_PREVIEW_BYTES = 4 * 1024


def main_result_inline_bytes(max_message_bytes: int) -> int:
    """A result up to this size is carried whole in the view of the execution a Get or Watch is about."""
    return max_message_bytes // 4


# An executions row read by column name: a RowMapping from a query, or a dict built from one.
ExecutionRow: TypeAlias = RowMapping | Mapping[str, Any]


def redacted_parameters(row: ExecutionRow) -> dict[str, Any]:
    """The row's parameters with every secret value replaced (the row remembers which are secret)."""
    params = json.loads(row["parameters"] or "{}")
    secrets = json.loads(row["secret_names"] or "[]")
    return redact({name: {"secret": True} for name in secrets}, params)


def _result_struct(text: str | None) -> Any:
    if not text:
        return None
    value = json.loads(text)
    return struct_from_dict(value if isinstance(value, dict) else {"data": value})


def workflow_link_of(row: ExecutionRow) -> common_pb2.WorkflowLink | None:
    """The workflow task run an executions row belongs to; None for a top-level execution."""
    if not row.get("workflow_execution_id"):
        return None
    return common_pb2.WorkflowLink(
        workflow_execution_id=row["workflow_execution_id"],
        task_name=row["task_name"] or "",
        run=row["task_run"] or 0,
        item_index=-1 if row["item_index"] is None else row["item_index"],
        attempt=row["attempt"] or 0,
    )


def result_fields(row: ExecutionRow, inline_bytes: int) -> dict[str, Any]:
    """The result fields of a view: the result whole when it is at most `inline_bytes`, else its
    preview. A row read by `bounded_columns` (children.py) holds a result over the limit already
    cut to its preview, with its size in `result_size`."""
    text: str | None = row["result"]
    if not text:
        return {}
    size = row.get("result_size") or len(text.encode())
    if size <= inline_bytes:
        return {"result": _result_struct(text), "result_size_bytes": size}
    preview = text.encode()[:RESULT_PREVIEW_BYTES].decode("utf-8", "ignore")
    return {"result_size_bytes": size, "result_truncated": True, "result_preview": preview}


def execution_view(row: ExecutionRow, *, inline_bytes: int = CHILD_RESULT_INLINE_BYTES) -> execution_pb2.Execution:
    """An `Execution` message from a row of `executions`, its result whole up to `inline_bytes`."""
    link = workflow_link_of(row)
    return execution_pb2.Execution(
        id=row["id"],
        action_ref=row["action_ref"],
        state=execution_state_to_proto(row["state"]),
        parameters=struct_from_dict(redacted_parameters(row)),
        **result_fields(row, inline_bytes),
        error=row["error"] or "",
        parent_id=row["parent_id"] or "",
        link=link,
        worker_id=row["worker_id"] or "",
        trace_id=row["trace_id"] or "",
        timeout_seconds=row["timeout"] or 0.0,
        timeout=duration(row["timeout"]),
        runner_type=row["runner_type"],
        created_at=timestamp(row["created_at"]),
        started_at=timestamp(row["started_at"]),
        finished_at=timestamp(row["finished_at"]),
        requested_by=row.get("requested_by") or "",
        rerun_of=row.get("rerun_of") or "",
    )


def with_terminal_fields(row: ExecutionRow, final: completion_pb2.ExecutionResult) -> dict[str, Any]:
    """An executions row as the completion service's compare-and-set left it, from the row read
    before and the terminal fields it stored (WatchCompleted carries them)."""
    return {
        **row,
        "state": execution_state_from_proto(final.state),
        "result": final.result_json.decode() or None,
        "error": final.error or None,
        "started_at": row["started_at"] or final.started_at or None,
        "finished_at": final.finished_at,
    }
