"""How the CLI shows things: the JSON contract (docs/architecture.md, Interfaces) and the text forms.

With ``--output json`` stdout carries exactly one JSON object, printed when the command ends
(:func:`emit_json`); everything else (progress, diagnostics) goes to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # imported where used: `attune --help` and a usage error need none of them
    from google.protobuf import timestamp_pb2

    from attune.execution.v1 import execution_pb2

TEXT = "text"
JSON = "json"
OUTPUT_FORMATS = (TEXT, JSON)


def state_of(execution: execution_pb2.Execution) -> str:
    """The execution's state in lower case ("succeeded")."""
    from attune.grpcutil.convert import execution_state_from_proto

    return execution_state_from_proto(execution.state)


def seconds_of(ts: timestamp_pb2.Timestamp) -> float | None:
    """Unix seconds of a timestamp, None when unset."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.seconds + ts.nanos / 1e9


def iso_of(ts: timestamp_pb2.Timestamp) -> str | None:
    """ISO-8601 UTC text of a timestamp, None when unset."""
    seconds = seconds_of(ts)
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")


def result_of(execution: execution_pb2.Execution) -> dict[str, Any] | None:
    """The result as a dict, None before the execution ends (or when it has none)."""
    if not execution.HasField("result"):
        return None
    from attune.grpcutil.convert import dict_from_struct

    return dict_from_struct(execution.result)


def child_json(child: execution_pb2.Execution) -> dict[str, Any]:
    """One child of the JSON contract: id, action_ref, state, [task], result, error; a result too
    large for a child's view is null, with result_truncated, result_size_bytes and result_preview
    (`attune execution result ID` writes it whole)."""
    entry: dict[str, Any] = {"id": child.id, "action_ref": child.action_ref, "state": state_of(child)}
    if child.HasField("link") and child.link.task_name:
        entry["task"] = child.link.task_name
    entry["result"] = result_of(child)
    if child.result_truncated:
        entry |= {
            "result_truncated": True,
            "result_size_bytes": child.result_size_bytes,
            "result_preview": child.result_preview,
        }
    entry["error"] = child.error or None
    return entry


def summary_json(summary: execution_pb2.ChildrenSummary) -> dict[str, Any]:
    """A children summary: {"total": N, "by_state": {"succeeded": N, ...}}."""
    from attune.grpcutil.convert import execution_state_from_proto

    by_state = {execution_state_from_proto(s.state): s.count for s in summary.by_state}
    return {"total": summary.total, "by_state": by_state}


def summary_text(summary: execution_pb2.ChildrenSummary) -> str:
    """A children summary in one line: "100000 children: 99990 succeeded, 10 running"."""
    from attune.grpcutil.convert import execution_state_from_proto

    counts = ", ".join(f"{s.count} {execution_state_from_proto(s.state)}" for s in summary.by_state)
    return f"{summary.total} children" + (f": {counts}" if counts else "")


def execution_json(
    execution: execution_pb2.Execution,
    children: Sequence[execution_pb2.Execution] = (),
    *,
    summary: execution_pb2.ChildrenSummary | None = None,
    next_page_token: str = "",
    result: Any = None,
) -> dict[str, Any]:
    """The JSON contract of docs/architecture.md, Interfaces: {id, action_ref, state, result, error,
    children}, and with a `summary` of children (an execution without children keeps the plain
    contract): children_summary ({total, by_state}) and, when `children` is not all of them,
    children_next_page_token (ListExecutions with parent_id). `result`
    replaces the execution's own when it carries only a preview (fetched whole)."""
    doc: dict[str, Any] = {
        "id": execution.id,
        "action_ref": execution.action_ref,
        "state": state_of(execution),
        "result": result if result is not None else result_of(execution),
        "error": execution.error or None,
        "children": [child_json(c) for c in children],
    }
    if execution.rerun_of:
        doc["rerun_of"] = execution.rerun_of
    if summary is not None and summary.total:
        doc["children_summary"] = summary_json(summary)
        if next_page_token:
            doc["children_next_page_token"] = next_page_token
    return doc


def failure_json(action_ref: str, error: str, execution_id: str | None = None) -> dict[str, Any]:
    """The JSON contract when there is no execution to show (unknown ref, bad parameters)."""
    return {"id": execution_id, "action_ref": action_ref, "state": None, "result": None, "error": error, "children": []}


class _JsonStdout:
    """Where a command's JSON object goes, and whether it went. In JSON mode `main.run` points
    ``sys.stdout`` at stderr while the command runs, so a stray ``print`` cannot break the one
    object; :func:`emit_json` writes to the real stdout kept here."""

    stream: TextIO | None = None
    emitted = False


def bind_json_stdout(stream: TextIO | None) -> None:
    """Starts a command: its JSON object goes to ``stream`` (None: ``sys.stdout``), none yet sent."""
    _JsonStdout.stream = stream
    _JsonStdout.emitted = False


def json_emitted() -> bool:
    """Whether this command has printed its JSON object."""
    return _JsonStdout.emitted


def json_stdout() -> TextIO:
    """The stream a JSON object goes to (the real stdout)."""
    return _JsonStdout.stream or sys.stdout


def emit_json(value: Any) -> None:
    """Prints the command's one JSON document on stdout."""
    out = json_stdout()
    out.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")
    out.flush()
    _JsonStdout.emitted = True


def progress(message: str) -> None:
    """A progress or diagnostic line on stderr."""
    print(message, file=sys.stderr, flush=True)


def execution_text(
    execution: execution_pb2.Execution,
    children: Sequence[execution_pb2.Execution] = (),
    *,
    summary: execution_pb2.ChildrenSummary | None = None,
    result: Any = None,
) -> str:
    """A human-readable description of an execution and its children (those given: the summary
    counts them all)."""
    summary_total = len(children) if summary is None else summary.total
    lines = [
        f"id:          {execution.id}",
        f"action:      {execution.action_ref}",
        f"state:       {state_of(execution)}",
    ]
    if execution.parent_id:
        lines.append(f"parent:      {execution.parent_id}")
    if execution.worker_id:
        lines.append(f"worker:      {execution.worker_id}")
    if execution.requested_by:
        lines.append(f"requested by: {execution.requested_by}")
    if execution.rerun_of:
        lines.append(f"rerun of:    {execution.rerun_of}")
    for label, ts in (
        ("created", execution.created_at),
        ("started", execution.started_at),
        ("finished", execution.finished_at),
    ):
        text = iso_of(ts)
        if text:
            lines.append(f"{label + ':':<13}{text}")
    if execution.error:
        lines.append(f"error:       {execution.error}")
    result = result if result is not None else result_of(execution)
    if result is not None:
        lines.append("result:")
        lines += ["  " + line for line in json.dumps(result, indent=2, default=str).splitlines()]
    if children:
        lines.append("children:" if len(children) == summary_total else f"children (first {len(children)}):")
        for child in children:
            task = f" task={child.link.task_name}" if child.HasField("link") and child.link.task_name else ""
            lines.append(f"  {child.id}  {child.action_ref:<28} {state_of(child):<10}{task}")
    if summary is not None and summary.total:
        lines.append(summary_text(summary))
    return "\n".join(lines)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain left-aligned text table."""
    cells = [[str(h) for h in headers]] + [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)
