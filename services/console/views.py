"""The API's JSON views of the scheduler's messages (docs/console.md, HTTP API).

Timestamps are ISO 8601 in UTC (``2026-12-05T19:42:06.123Z``) or null; states are the lower-case
names of `attune.states.ExecutionState`; Structs become plain JSON objects.
"""

from __future__ import annotations

import datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto, workflow_state_from_proto
from attune.registry.v1 import registry_pb2
from attune.workflow.v1 import workflow_pb2

JSON = dict[str, Any]


def iso(message: Message, field: str) -> str | None:
    """The timestamp `field` of `message` as ISO 8601 UTC; None when unset."""
    if not message.HasField(field):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    moment = datetime.datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plain(struct: struct_pb2.Struct) -> JSON:
    """A Struct as a JSON object."""
    return dict_from_struct(struct)


def action_summary(action: registry_pb2.Action) -> JSON:
    """ACTION_SUMMARY: what the packs page lists of an action."""
    return {
        "ref": action.ref,
        "pack": action.pack,
        "name": action.name,
        "label": action.label,
        "description": action.description,
        "runner_type": action.runner_type,
        "enabled": action.enabled,
        "parameters": plain(action.parameters),
    }


def action_view(action: registry_pb2.Action) -> JSON:
    """ACTION: the summary, the rest of its fields and a workflow action's definition."""
    return {
        **action_summary(action),
        "timeout_seconds": action.timeout_seconds,
        "tags": list(action.tags),
        "workflow_file": action.workflow_file,
        "definition": action.definition or None,
        "updated_at": iso(action, "updated_at"),
        "updated_by": action.updated_by,
    }


def pack_view(pack: registry_pb2.Pack, actions: list[registry_pb2.Action]) -> JSON:
    """A pack with its actions' summaries."""
    return {
        "ref": pack.ref,
        "label": pack.label,
        "version": pack.version,
        "description": pack.description,
        "actions": [action_summary(a) for a in actions],
    }


def state_name(value: int) -> str:
    """An ExecutionState enum value as its lower-case name ("" when unset)."""
    return str(execution_state_from_proto(value))


def execution_summary(execution: execution_pb2.Execution) -> JSON:
    """EXECUTION_SUMMARY: what the executions page lists."""
    return {
        "id": execution.id,
        "action_ref": execution.action_ref,
        "state": state_name(execution.state),
        "parent_id": execution.parent_id or None,
        "created_at": iso(execution, "created_at"),
        "started_at": iso(execution, "started_at"),
        "finished_at": iso(execution, "finished_at"),
        "requested_by": execution.requested_by,
    }


def execution_view(execution: execution_pb2.Execution, workflow: JSON | None) -> JSON:
    """The execution page's whole view: the summary, parameters, result, error and, for a
    workflow, its run (`workflow_view`)."""
    if execution.result_truncated:
        result: Any = {"truncated": True, "preview": execution.result_preview, "size": execution.result_size_bytes}
    else:
        result = plain(execution.result) if execution.HasField("result") else None
    return {
        **execution_summary(execution),
        "parameters": plain(execution.parameters),
        "result": result,
        "error": execution.error or None,
        "is_workflow": execution.runner_type == "workflow",
        "workflow": workflow,
    }


def task_run_view(run: workflow_pb2.TaskRun) -> JSON:
    """One task run of a workflow."""
    return {
        "task_name": run.task_name,
        "run": run.run,
        "item_index": run.item_index,
        "attempt": run.attempt,
        "state": state_name(run.state),
        "child_execution_id": run.child_execution_id or None,
        "action_ref": run.action_ref,
        "started_at": iso(run, "started_at"),
        "finished_at": iso(run, "finished_at"),
    }


def workflow_state_name(value: int) -> str:
    """A WorkflowState enum value as its lower-case name ("" when unset)."""
    return str(workflow_state_from_proto(value))


def graph_view(graph: registry_pb2.WorkflowGraph) -> JSON:
    """GRAPH: the tasks and transitions of a workflow, as graph.js draws them."""
    return {
        "nodes": [
            {"name": n.name, "action": n.action, "with_items": n.with_items, "join": n.join or None}
            for n in graph.nodes
        ],
        "edges": [{"from": e.from_task, "to": e.to_task, "kind": e.kind, "label": e.label} for e in graph.edges],
    }


def problem_view(problem: registry_pb2.WorkflowProblem) -> JSON:
    """One validation problem; line and column null when unknown."""
    return {
        "task": problem.task or None,
        "field": problem.field,
        "message": problem.message,
        "line": problem.line or None,
        "column": problem.column or None,
    }
