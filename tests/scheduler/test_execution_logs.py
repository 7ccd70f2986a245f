"""Live output in the scheduler, on PostgreSQL and SQLite: the log writer stores a worker's chunks
and acknowledges them, and a resend stores nothing twice; WatchExecutionLogs' stream reads them
from a position, a workflow's tasks' with their names, and ends once an ended execution is drained."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from attune.config import Settings
from attune.execution.v1 import execution_pb2
from attune.grpcutil.errors import InvalidArgument
from attune.internal.worker.v1 import worker_pb2
from attune.states import ExecutionState
from attune.storage import Database
from attune.storage.schema import execution_logs, executions
from attune_services.bench.history_seed import execution_row
from attune_services.scheduler.log_stream import LogStream
from attune_services.scheduler.logs import LogWakes, LogWriter
from attune_services.scheduler.sessions import WorkerSession
from attune_services.scheduler.watchers import ExecutionWatchers


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.close()


def _chunk(execution_id: str, seq: int, data: bytes, stream: str = "stdout") -> worker_pb2.LogChunk:
    return worker_pb2.LogChunk(execution_id=execution_id, seq=seq, stream=stream, written_at=time.time(), data=data)


async def _acks(session: WorkerSession) -> list[tuple[str, int]]:
    message = await asyncio.wait_for(session.outbox.get(), 10)
    assert message is not None
    return [(a.execution_id, a.seq) for a in message.log_acks.acks]


async def test_chunks_are_stored_acknowledged_and_a_resend_is_stored_once(db: Database) -> None:
    wakes = LogWakes()
    woken = asyncio.Event()
    wakes.add(["e1"], woken)
    writer = LogWriter(db, wakes)
    session = WorkerSession(worker_id="w", hostname="h", runtimes=frozenset(), capacity=1, held=frozenset())
    try:
        await writer.add(session, [_chunk("e1", 1, b"a\n"), _chunk("e1", 2, b"b\n"), _chunk("e2", 1, b"x")])
        assert sorted(await _acks(session)) == [("e1", 2), ("e2", 1)]
        assert woken.is_set()
        # After a reconnect the worker sends what it has no ack for, and more.
        await writer.add(session, [_chunk("e1", 2, b"CHANGED\n"), _chunk("e1", 3, b"c\n")])
        assert await _acks(session) == [("e1", 3)]
        await writer.add(session, [_chunk("e1", 4, b"d", stream="bogus")])  # dropped, yet acked
        assert await _acks(session) == [("e1", 4)]
    finally:
        await writer.stop()
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(execution_logs).order_by("execution_id", "seq"))).all()
    assert [(r.execution_id, r.seq, bytes(r.data)) for r in rows] == [
        ("e1", 1, b"a\n"),
        ("e1", 2, b"b\n"),
        ("e1", 3, b"c\n"),
        ("e2", 1, b"x"),
    ]


async def _messages(db: Database, **request: object) -> list[execution_pb2.WatchExecutionLogsResponse]:
    stream = LogStream(
        db=db,
        settings=Settings(),
        watchers=ExecutionWatchers(Settings()),
        wakes=LogWakes(),
        request=execution_pb2.WatchExecutionLogsRequest(**request),  # type: ignore[arg-type]
    )
    async with asyncio.timeout(10):
        return [m async for m in stream.messages()]


async def test_an_ended_workflows_output_is_read_from_a_position_with_task_names(db: Database) -> None:
    now = time.time()
    top = execution_row(now, runner_type="workflow", action_ref="x.flow")
    nested = execution_row(now + 0.001, runner_type="workflow", parent_id=top["id"], task_name="inner")
    leaf = execution_row(now + 0.002, runner_type="shell", parent_id=nested["id"], task_name="say")
    item = {**execution_row(now + 0.003, runner_type="shell", parent_id=top["id"], task_name="each"), "item_index": 2}
    logs = [(leaf["id"], seq, "stdout", b"leaf %d\n" % seq) for seq in (1, 2, 3)]
    logs += [(leaf["id"], 4, "end", b""), (item["id"], 1, "stdout", b"item\n"), (item["id"], 2, "end", b"")]
    async with db.write() as conn:
        await conn.execute(sa.insert(executions), [top, nested, leaf, item])
        await conn.execute(
            sa.insert(execution_logs),
            [{"execution_id": i, "seq": s, "stream": t, "written_at": now, "data": d} for i, s, t, d in logs],
        )
    got = await _messages(db, id=top["id"], include_children=True)
    assert sorted((m.task_name, m.seq, m.data) for m in got) == [
        ("each[2]", 1, b"item\n"),
        ("inner.say", 1, b"leaf 1\n"),
        ("inner.say", 2, b"leaf 2\n"),
        ("inner.say", 3, b"leaf 3\n"),
    ]
    resumed = await _messages(
        db,
        id=top["id"],
        include_children=True,
        children_after=[execution_pb2.ExecutionLogPosition(execution_id=leaf["id"], seq=2)],
    )
    assert sorted((m.task_name, m.seq) for m in resumed) == [("each[2]", 1), ("inner.say", 3)]
    assert await _messages(db, id=top["id"]) == []  # the workflow itself wrote nothing
    assert [m.seq for m in await _messages(db, id=leaf["id"], after_seq=1)] == [2, 3]


async def test_without_its_end_chunk_an_execution_ended_long_ago_is_drained(db: Database) -> None:
    """The worker died before sending the end, or the output predates it: the watch ends anyway."""
    row = execution_row(time.time() - 3600, runner_type="shell")
    async with db.write() as conn:
        await conn.execute(sa.insert(executions), [row])
        await conn.execute(
            sa.insert(execution_logs),
            [{"execution_id": row["id"], "seq": 1, "stream": "stdout", "written_at": 1.0, "data": b"last words"}],
        )
    assert [m.data for m in await _messages(db, id=row["id"])] == [b"last words"]


async def test_a_running_executions_stored_output_is_sent_and_the_stream_ends(db: Database) -> None:
    row = execution_row(time.time(), runner_type="shell", state=ExecutionState.RUNNING)
    async with db.write() as conn:
        await conn.execute(sa.insert(executions), [row])
        await conn.execute(
            sa.insert(execution_logs),
            [{"execution_id": row["id"], "seq": 1, "stream": "stderr", "written_at": 1.0, "data": b"so far"}],
        )
    got = await _messages(db, id=row["id"], stored_only=True)
    assert [(m.stream, m.data, m.written_at.seconds) for m in got] == [(execution_pb2.LOG_STREAM_STDERR, b"so far", 1)]
    assert await _messages(db, id=row["id"], after_seq=2**62, stored_only=True) == []  # beyond any seq
    with pytest.raises(InvalidArgument):
        await _messages(db, id=row["id"], after_seq=-1)
