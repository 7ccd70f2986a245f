"""Traces that explain a run: a nested workflow's spans, received by a real OTLP/gRPC receiver,
form one tree (docs/operations.md, Tracing) — one trace, one root, no orphans, each execution's
span covering its whole life under the workflow step that created it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from attune.grpcutil.convert import execution_state_from_proto
from attune.storage import Database
from attune.storage.schema import executions
from tests.integration.cluster import Cluster, ClusterFactory
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.polling import eventually

TRACEPACK = Path(__file__).parent / "packs" / "tracepack"
STEP_SPANS = {"workflow.start", "workflow.advance"}


async def _rows_of_trace(cluster: Cluster, trace_id: str) -> list[Any]:
    db = Database(cluster.database_url)
    try:
        async with db.read() as conn:
            query = sa.select(executions).where(executions.c.trace_id == trace_id)
            return list((await conn.execute(query)).mappings().all())
    finally:
        await db.close()


def runs_of(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == "execution.run"]


def _orphans(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    ids = {s.span_id for s in spans}
    return [s for s in spans if s.parent_span_id and s.parent_span_id not in ids]


@pytest.mark.parametrize("fresh_cluster", ["postgres"], indirect=True)
async def test_a_nested_workflow_is_one_tree_of_spans_in_an_otlp_receiver(fresh_cluster: ClusterFactory) -> None:
    receiver = OtlpReceiver()
    await receiver.start()
    try:
        cluster = await fresh_cluster(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="50")
        await cluster.start(workers=0)
        await cluster.start_worker("worker-1", OTEL_SERVICE_NAME="edge-worker")
        await cluster.register_bundled_packs()
        await cluster.register_pack(TRACEPACK)
        reply = await cluster.run("tracepack.tree", timeout=60)
        top = reply.execution
        assert execution_state_from_proto(top.state) == "succeeded", top.error
        rows = {row["id"]: row for row in await _rows_of_trace(cluster, top.trace_id)}
        # tree, nested (examples.nested: inner_sequence (greet, shout), inner_echo (echo)),
        # items ×2, risky, recover
        assert len(rows) == 11, sorted((r["action_ref"], r["task_name"]) for r in rows.values())

        def complete() -> list[ReceivedSpan] | None:
            spans = receiver.trace(top.trace_id)
            ended = {s.attributes.get("attune.execution.id") for s in spans if s.name == "attune.execution"}
            return spans if ended >= set(rows) and not _orphans(spans) else None

        spans = await eventually(
            complete,
            within=30,
            interval=0.1,
            what=lambda: f"every execution span, no orphan: {_orphans(receiver.trace(top.trace_id))}",
        )
    finally:
        await receiver.stop()

    assert {s.trace_id for s in receiver.spans if s.attributes.get("attune.execution.id") in rows} == {top.trace_id}
    by_id = {s.span_id: s for s in spans}
    [root] = [s for s in spans if not s.parent_span_id]
    execution_spans = {s.attributes["attune.execution.id"]: s for s in spans if s.name == "attune.execution"}
    assert len(execution_spans) == len(rows)
    assert root is execution_spans[top.id] and root.kind == "INTERNAL" and root.service == "attune-completion"
    assert root.attributes["attune.action.ref"] == "tracepack.tree"
    assert root.attributes["attune.execution.state"] == "succeeded" and root.status == "UNSET"
    # The root covers the run: from the request to the end of its last task.
    assert root.start_ns <= min(s.start_ns for s in spans)
    assert root.end_ns >= max(s.end_ns for s in execution_spans.values())
    assert root.start_ns == int(rows[top.id]["created_at"] * 1e9)

    for execution_id, span in execution_spans.items():
        row = rows[execution_id]
        assert span.span_id == row["traceparent"].split("-")[2], "the stored traceparent names the span"
        assert span.attributes["attune.execution.state"] == row["state"]
        if execution_id == top.id:
            continue
        # Every task's execution span hangs under the step of its workflow that created it.
        step = by_id[span.parent_span_id]
        assert step.name in STEP_SPANS and step.service == "attune-coordinator", (row["task_name"], step)
        assert step.attributes["attune.execution.id"] == row["workflow_execution_id"] == row["parent_id"]
        assert step.kind == "CONSUMER" and step.attributes["messaging.system"] == "attune"
        assert step.start_ns <= span.start_ns
        assert span.attributes["attune.task.name"] == row["task_name"]
        assert span.attributes["attune.task.run"] == row["task_run"]
        assert span.attributes["attune.task.attempt"] == row["attempt"]
        assert span.attributes.get("attune.task.item") == row["item_index"]
        # A workflow's own steps hang under its execution span.
        assert by_id[step.parent_span_id] is execution_spans[row["parent_id"]]

    [risky] = [r for r in rows.values() if r["task_name"] == "risky"]
    assert risky["state"] == "failed" and risky["error"]
    failed = execution_spans[risky["id"]]
    assert (failed.status, failed.status_message) == ("ERROR", risky["error"])
    assert {s.status for i, s in execution_spans.items() if i != risky["id"]} == {"UNSET"}
    assert sorted(
        s.attributes["attune.task.item"] for s in execution_spans.values() if "attune.task.item" in s.attributes
    ) == [0, 1]

    # Kinds and attribute names follow the RPC and messaging conventions.
    [request] = [s for s in spans if s.parent_span_id == root.span_id and s.kind == "SERVER"]
    assert request.name == "attune.execution.v1.ExecutionService/RequestExecution"
    assert (request.attributes["rpc.system"], request.attributes["rpc.method"]) == ("grpc", "RequestExecution")
    runs = runs_of(spans)
    assert len(runs) == 7 and {(s.kind, s.service) for s in runs} == {("CONSUMER", "edge-worker")}
    for run in runs:  # each processes the assignment the scheduler's dispatch sent
        dispatch = by_id[run.parent_span_id]
        assert (dispatch.name, dispatch.kind, dispatch.service) == (
            "execution.dispatch",
            "PRODUCER",
            "attune-scheduler",
        )
        assert dispatch.attributes["messaging.operation.type"] == "send"
        assert by_id[dispatch.parent_span_id] is execution_spans[run.attributes["attune.execution.id"]]
    assert {s.service for s in spans} == {"attune-scheduler", "attune-coordinator", "attune-completion", "edge-worker"}

    # The trace file carries the same spans with their times and status.
    lines = {s["span_id"]: s for s in cluster.spans() if s["trace_id"] == top.trace_id}
    line = lines[failed.span_id]
    assert (line["status"], line["status_message"], line["kind"]) == ("ERROR", risky["error"], "INTERNAL")
    assert line["start"] == pytest.approx(risky["created_at"]) and line["end"] == pytest.approx(risky["finished_at"])


async def test_execution_spans_in_the_trace_file_on_each_store(cluster: Cluster) -> None:
    reply = await cluster.run("examples.single_echo", {"message": "traced"})
    failed = await cluster.run("core.local", {"cmd": "exit 3"})
    [child] = reply.children
    ids = {reply.execution.id, child.id, failed.execution.id}

    def ended() -> dict[str, dict[str, Any]] | None:
        found = {s["attributes"]["attune.execution.id"]: s for s in cluster.spans() if s["name"] == "attune.execution"}
        return found if ids <= set(found) else None

    found = await eventually(ended, within=10, interval=0.05, what="the execution spans")
    workflow, task, error = found[reply.execution.id], found[child.id], found[failed.execution.id]
    assert workflow["parent_id"] is None and workflow["trace_id"] == task["trace_id"] == reply.execution.trace_id
    [step] = [s for s in cluster.spans() if s["span_id"] == task["parent_id"]]
    assert step["name"] == "workflow.start" and step["parent_id"] == workflow["span_id"]
    assert workflow["start"] <= step["start"] <= task["start"] <= task["end"] <= workflow["end"]
    assert (workflow["status"], task["status"], task["attributes"]["attune.task.name"]) == ("UNSET", "UNSET", "echo")
    assert (error["status"], error["status_message"]) == ("ERROR", failed.execution.error)
