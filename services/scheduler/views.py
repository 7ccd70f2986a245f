"""The API view of an executions row: parameters with secrets redacted, result decoded."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeAlias

from sqlalchemy import RowMapping

from attune.common.v1 import common_pb2
from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_from_proto, execution_state_to_proto, struct_from_dict, timestamp
from attune.internal.completion.v1 import completion_pb2
from attune.packs import redact

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


def execution_view(row: ExecutionRow) -> execution_pb2.Execution:
    """An `Execution` message from a row of `executions`."""
    link = workflow_link_of(row)
    return execution_pb2.Execution(
        id=row["id"],
        action_ref=row["action_ref"],
        state=execution_state_to_proto(row["state"]),
        parameters=struct_from_dict(redacted_parameters(row)),
        result=_result_struct(row["result"]),
        error=row["error"] or "",
        parent_id=row["parent_id"] or "",
        link=link,
        worker_id=row["worker_id"] or "",
        trace_id=row["trace_id"] or "",
        timeout_seconds=row["timeout"] or 0.0,
        runner_type=row["runner_type"],
        created_at=timestamp(row["created_at"]),
        started_at=timestamp(row["started_at"]),
        finished_at=timestamp(row["finished_at"]),
        requested_by=row.get("requested_by") or "",
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
