"""An execution's children as the API shows them: a summary by state, pages oldest first that
ListExecutions continues, results previewed when large and streamed whole, and a watch that
sends changes rather than snapshots (services/scheduler/children.py, watch_stream.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_from_proto
from attune.internal.execution.v1 import execution_pb2 as child_pb2
from attune.states import ExecutionState
from attune_services.scheduler.children import page_within, summary_of
from attune_services.scheduler.pages import is_oldest_first, key_after, page_token
from attune_services.scheduler.views import CHILD_RESULT_INLINE_BYTES, RESULT_PREVIEW_BYTES, execution_view
from attune_services.scheduler.watch_stream import ChildChanges
from tests.scheduler.harness import Cluster, start_cluster
from tests.support.polling import eventually

ID = "0" * 31


@pytest.fixture
async def demo(database_url: str) -> AsyncIterator[Cluster]:
    """The scheduler with the core pack; children stay scheduled (no worker) until a result comes."""
    running = await start_cluster(database_url, schedule_timeout=60.0)
    try:
        await running.register_bundled("core")
        yield running
    finally:
        await running.stop()


async def children_of(demo: Cluster, parent_id: str, count: int) -> list[str]:
    """`count` children of `parent_id` requested as the coordinator does, oldest first."""
    ids = []
    for index in range(count):  # one call each: ids are time-ordered, so each is newer than the last
        request = child_pb2.ChildExecutionRequest(
            action_ref="core.noop",
            parameters_json=b"{}",
            request_id=f"{parent_id}-{index}",
            parent_id=parent_id,
            link=common_pb2.WorkflowLink(
                workflow_execution_id=parent_id, task_name="each", run=1, item_index=index, attempt=1
            ),
            depth=1,
        )
        response = await demo.children.RequestChildExecutions(
            child_pb2.RequestChildExecutionsRequest(children=[request])
        )
        ids.append(response.children[0].execution_id)
        await asyncio.sleep(0.002)
    return ids


def row(execution_id: str, **fields: Any) -> dict[str, Any]:
    """An executions row as a query returns it."""
    return {
        "id": execution_id,
        "action_ref": "core.noop",
        "runner_type": "noop",
        "state": "succeeded",
        "parameters": "{}",
        "secret_names": "[]",
        "result": None,
        "error": None,
        "parent_id": "p",
        "workflow_execution_id": None,
        "worker_id": None,
        "trace_id": None,
        "timeout": None,
        "created_at": 1.0,
        "started_at": None,
        "finished_at": None,
        **fields,
    }


def test_a_view_carries_a_small_result_whole_and_a_large_one_as_a_preview() -> None:
    small = execution_view(row("a", result=json.dumps({"stdout": "hi"})))
    assert not small.result_truncated and small.result.fields["stdout"].string_value == "hi"
    assert small.result_size_bytes == len(json.dumps({"stdout": "hi"}))
    text = json.dumps({"stdout": "é" * CHILD_RESULT_INLINE_BYTES})
    large = execution_view(row("b", result=text))
    assert large.result_truncated and not large.HasField("result")
    assert large.result_size_bytes == len(text.encode())
    assert text.startswith(large.result_preview) and len(large.result_preview.encode()) <= RESULT_PREVIEW_BYTES
    assert not execution_view(row("b", result=text), inline_bytes=len(text.encode())).result_truncated


def test_a_page_ends_before_the_child_that_would_pass_its_budget() -> None:
    rows = [row(f"{i:032x}", parameters=json.dumps({"blob": "x" * 1000})) for i in range(5)]
    page = page_within(rows, "p", size=4, budget=2500)
    assert [c.id for c in page.children] == [rows[0]["id"], rows[1]["id"]]
    assert key_after(page.next_page_token, "children", {"parent_id": "p"}) == rows[1]["id"]
    whole = page_within(rows[:3], "p", size=4, budget=10**6)
    assert len(whole.children) == 3 and whole.next_page_token == ""
    one = page_within(rows, "p", size=4, budget=10)  # a single child always fits in a message
    assert len(one.children) == 1 and one.next_page_token


def test_summary_counts_by_state_in_state_machine_order() -> None:
    summary = summary_of({"succeeded": 3, "running": 2, "failed": 0})
    assert summary.total == 5
    assert [(execution_state_from_proto(s.state), s.count) for s in summary.by_state] == [
        ("running", 2),
        ("succeeded", 3),
    ]


def test_a_children_token_says_it_is_oldest_first_and_is_bound_to_its_parent() -> None:
    token = page_token(ID + "1", "children", {"parent_id": "p"}, oldest_first=True)
    assert is_oldest_first(token) and not is_oldest_first(page_token(ID + "1", "executions", {}))
    assert not is_oldest_first("") and not is_oldest_first("not a token")
    assert key_after(token, "children", {"parent_id": "p"}) == ID + "1"
    with pytest.raises(Exception, match="page_token"):
        key_after(token, "children", {"parent_id": "q"})


def test_child_changes_are_each_version_once_and_forget_what_is_past_the_slack() -> None:
    changes = ChildChanges(start=100.0, slack=2.0)
    assert changes.since == 98.0
    assert changes.take([("a", "running", 99.0), ("b", "scheduled", 100.5)]) == ["a", "b"]
    assert changes.since == 98.5
    # Read again within the slack: nothing new; a new version of one is.
    assert changes.take([("a", "running", 99.0), ("b", "succeeded", 101.0)]) == ["b"]
    assert changes.take([("b", "succeeded", 101.0), ("c", "running", 110.0)]) == ["c"]
    assert changes.since == 108.0


async def test_get_pages_children_oldest_first_and_list_continues_them(demo: Cluster) -> None:
    parent = await demo.request("core.noop")
    ids = await children_of(demo, parent.id, 5)
    got = await demo.executions.GetExecution(execution_pb2.GetExecutionRequest(id=parent.id, page_size=2))
    assert [c.id for c in got.children] == ids[:2] and got.next_page_token
    assert got.children_summary.total == sum(s.count for s in got.children_summary.by_state) == 5
    seen, token = list(got.children), got.next_page_token
    while token:
        page = await demo.executions.ListExecutions(
            execution_pb2.ListExecutionsRequest(parent_id=parent.id, page_size=2, page_token=token)
        )
        seen += page.executions
        token = page.next_page_token
    assert [c.id for c in seen] == ids
    # The token is the parent's: with another filter it is refused, naming page_token.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await demo.executions.ListExecutions(
            execution_pb2.ListExecutionsRequest(
                parent_id=parent.id, action_ref="core.noop", page_token=got.next_page_token
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in (refused.value.details() or "")
    # Without page_size, every child of a small parent, and no token.
    everything = await demo.get(parent.id)
    assert [c.id for c in everything.children] == ids and not everything.next_page_token
    # The plain execution's own Get: no children.
    leaf = await demo.get(ids[0])
    assert leaf.children_summary.total == 0 and not leaf.children


async def test_a_large_result_is_previewed_in_lists_and_streamed_whole(demo: Cluster) -> None:
    parent = await demo.request("core.noop")
    (child,) = await children_of(demo, parent.id, 1)
    text = json.dumps({"stdout": "y" * (2 * 1024 * 1024), "exit_code": 0})
    await demo.submit_result(child, "succeeded", result=text.encode())
    got = await eventually(lambda: _terminal(demo, child), within=10, what=lambda: f"child {child} to end")
    # Over a quarter of the message limit: a preview even where it is the execution asked for.
    assert got.execution.result_truncated and got.execution.result_size_bytes == len(text)
    listed = await demo.executions.ListExecutions(execution_pb2.ListExecutionsRequest(parent_id=parent.id))
    assert listed.executions[0].result_truncated and listed.executions[0].result_preview.startswith('{"stdout": "yyy')
    assert (await demo.get(parent.id)).children[0].result_truncated
    chunks = [c async for c in demo.executions.GetExecutionResult(execution_pb2.GetExecutionResultRequest(id=child))]
    assert [len(c.data) for c in chunks] == [1024 * 1024, 1024 * 1024, len(text) - 2 * 1024 * 1024]
    assert {c.total_bytes for c in chunks} == {len(text)}
    assert b"".join(c.data for c in chunks).decode() == text
    # No result yet: an empty stream; no such execution: NOT_FOUND.
    assert [
        c async for c in demo.executions.GetExecutionResult(execution_pb2.GetExecutionResultRequest(id=parent.id))
    ] == []
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        async for _ in demo.executions.GetExecutionResult(execution_pb2.GetExecutionResultRequest(id="missing")):
            pass
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def _terminal(demo: Cluster, execution_id: str) -> execution_pb2.GetExecutionResponse | None:
    got = await demo.get(execution_id)
    return got if execution_state_from_proto(got.execution.state) == "succeeded" else None


async def test_watch_sends_a_snapshot_then_one_message_per_change(demo: Cluster) -> None:
    parent = await demo.request("core.noop")
    ids = await children_of(demo, parent.id, 3)
    messages: list[execution_pb2.WatchExecutionResponse] = []

    async def watch() -> None:
        request = execution_pb2.WatchExecutionRequest(id=parent.id, page_size=2)
        async for message in demo.executions.WatchExecution(request):
            messages.append(message)

    watcher = asyncio.create_task(watch())
    await eventually(lambda: bool(messages), within=10, what="the first message")
    first = messages[0]
    assert not first.is_change and [c.id for c in first.children] == ids[:2] and first.next_page_token
    assert first.children_summary.total == 3
    await demo.submit_result(ids[2], "succeeded")
    await eventually(
        lambda: any(ids[2] in [c.id for c in m.children] for m in messages[1:]), within=10, what="the child's change"
    )
    change = next(m for m in messages[1:] if m.children)
    assert change.is_change and [c.id for c in change.children] == [ids[2]]
    assert execution_state_from_proto(change.children[0].state) == "succeeded"
    counts = {execution_state_from_proto(s.state): s.count for s in change.children_summary.by_state}
    assert counts[ExecutionState.SUCCEEDED] == 1
    await demo.submit_result(parent.id, "succeeded")
    await asyncio.wait_for(watcher, timeout=10)
    last = messages[-1]
    assert last.is_change and not last.children and execution_state_from_proto(last.execution.state) == "succeeded"
    assert all(m.children_summary.total == 3 for m in messages)
