"""Live output on the shared cluster (docs/operations.md, Live output): WatchExecutionLogs gets a
line before the execution ends and ends after it; `attune execution tail` prefixes a workflow's
lines with their task; a scheduler restart mid-run loses no line."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_from_proto
from attune.states import TERMINAL
from tests.cli.e2e import attune
from tests.integration.cluster import Cluster, ClusterFactory
from tests.support.polling import eventually

LOGPACK = Path(__file__).parent / "packs" / "logpack"


async def _registered(cluster: Cluster) -> None:
    await cluster.register_pack(LOGPACK)  # the same files again change nothing


async def _state(cluster: Cluster, execution_id: str) -> str:
    request = execution_pb2.GetExecutionRequest(id=execution_id)
    got = await cluster.executions.GetExecution(request, timeout=10, wait_for_ready=True)
    return execution_state_from_proto(got.execution.state)


def _text(chunks: list[execution_pb2.WatchExecutionLogsResponse], stream: int) -> str:
    return b"".join(c.data for c in chunks if c.stream == stream).decode()


async def test_watch_gets_a_line_before_the_end_and_ends_after_it(cluster: Cluster) -> None:
    await _registered(cluster)
    execution = await cluster.request("logpack.lines", {"count": 3, "pause": 1.0})
    call = cluster.executions.WatchExecutionLogs(execution_pb2.WatchExecutionLogsRequest(id=execution.id))
    messages = aiter(call)
    chunks = [await asyncio.wait_for(anext(messages), 20)]
    assert chunks[0].data.startswith(b"line 1\n")
    assert await _state(cluster, execution.id) not in TERMINAL  # two more lines 1 s apart to come
    async with asyncio.timeout(30):
        chunks += [c async for c in messages]
    assert await _state(cluster, execution.id) == "succeeded"  # ended before the stream did
    assert _text(chunks, execution_pb2.LOG_STREAM_STDOUT) == "line 1\nline 2\nline 3\n"
    assert _text(chunks, execution_pb2.LOG_STREAM_STDERR) == "line done\n"
    assert [c.seq for c in chunks] == list(range(1, len(chunks) + 1))
    # Resuming after the first chunk gives the rest, and ends at once: the execution has ended.
    resumed = [
        c
        async for c in cluster.executions.WatchExecutionLogs(
            execution_pb2.WatchExecutionLogsRequest(id=execution.id, after_seq=1), timeout=10
        )
    ]
    assert [c.seq for c in resumed] == [c.seq for c in chunks[1:]]


async def test_tail_of_a_workflow_prefixes_each_line_with_its_task(cluster: Cluster) -> None:
    await _registered(cluster)
    reply = await cluster.run("logpack.two", timeout=60)
    assert execution_state_from_proto(reply.execution.state) == "succeeded"
    tail = await attune("execution", "tail", reply.execution.id, env=cluster.cli_env())
    assert tail.code == 0, tail.stderr
    assert tail.stdout.splitlines() == [
        "first: alpha 1",
        "first: alpha 2",
        "first: alpha 3",
        "second: beta 1",
        "second: beta 2",
        "second: beta 3",
    ]
    assert "first: alpha done" in tail.stderr.splitlines()
    assert "second: beta done" in tail.stderr.splitlines()
    # Following an ended workflow ends at once; --output json gives one object with every line.
    followed = await attune("execution", "tail", reply.execution.id, "-f", "--output", "json", env=cluster.cli_env())
    assert followed.code == 0, followed.stderr
    doc = followed.json()
    assert doc["id"] == reply.execution.id
    assert [(line["task"], line["stream"], line["text"]) for line in doc["lines"] if line["task"] == "second"] == [
        ("second", "stdout", "beta 1"),
        ("second", "stdout", "beta 2"),
        ("second", "stdout", "beta 3"),
        ("second", "stderr", "beta done"),
    ]


# On a private cluster (restarting the shared one's scheduler would disturb other tests), and on
# PostgreSQL only: the path is the same on SQLite, and a cluster start costs seconds.
@pytest.mark.parametrize("fresh_cluster", ["postgres"], indirect=True)
async def test_a_scheduler_restart_mid_run_loses_no_line(fresh_cluster: ClusterFactory) -> None:
    cluster = await fresh_cluster()
    await cluster.start(workers=1)
    await cluster.register_bundled_packs()
    await _registered(cluster)
    execution = await cluster.request("logpack.lines", {"count": 8, "pause": 0.3})

    async def running() -> bool:
        return await _state(cluster, execution.id) == "running"

    await eventually(running, within=20, interval=0.05, what="the action to run")
    await asyncio.sleep(0.6)  # a line or two written and stored
    # Frozen, the scheduler reads nothing: the lines written meanwhile are sent into the socket and
    # never acknowledged. Killed, it loses them; only the worker's resend after reconnecting saves them.
    cluster.signal("scheduler", signal.SIGSTOP)
    await asyncio.sleep(1.0)
    cluster.kill("scheduler")
    await cluster.start_service("scheduler")

    async def all_stored() -> str | None:
        if await _state(cluster, execution.id) not in TERMINAL:
            return None
        request = execution_pb2.WatchExecutionLogsRequest(id=execution.id, stored_only=True)
        chunks = [c async for c in cluster.executions.WatchExecutionLogs(request, timeout=10, wait_for_ready=True)]
        text = _text(chunks, execution_pb2.LOG_STREAM_STDOUT)
        return text if text.count("\n") == 8 else None

    text = await eventually(all_stored, within=60, interval=0.2, what="the run to end and every line to be stored")
    assert text == "".join(f"line {i}\n" for i in range(1, 9))
    assert await _state(cluster, execution.id) == "succeeded"
