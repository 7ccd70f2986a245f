"""What WatchExecutionLogs sends: an execution's stored output from a position, then what is stored
while it runs, until it has ended and everything is sent (docs/operations.md, Live output).

Each round reads, in this order, the states of the executions followed (the watched one and, with
include_children, every descendant found so far: new ones are found in the same read), then each
one's chunks after the last seq sent (one statement per `_IDS_PER_STATEMENT` executions). The
last chunk of a run's output is an empty one of stream "end" (`services/worker/logs.py`): an
execution is drained once it has ended and that chunk was read; one that ran no process (a no-op,
a workflow, one never given to a worker) once it has ended; one whose worker never sent the end
(it was killed) once it ended over `END_GRACE_S` ago and nothing more came. The watch ends when
the watched execution and every descendant are drained.

Between rounds it waits to be woken: by the log writer when output of a followed execution was
stored here, by the execution watchers when the execution or a child changed state; else it
re-reads after the watchers' recheck interval (output stored by another scheduler replica). A
workflow's watch pauses a multiple of what its round cost, as WatchExecution does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from attune.config import Settings
from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import timestamp
from attune.grpcutil.errors import NotFound, invalid_field, quoted
from attune.states import TERMINAL
from attune.storage import Database
from attune.storage.schema import execution_logs, executions
from attune_services.scheduler.logs import END_STREAM, MAX_SEQ, LogWakes
from attune_services.scheduler.watch_stream import MAX_PAUSE_S, WATCH_COST_FACTOR
from attune_services.scheduler.watchers import ExecutionWatchers

#: How long after an execution ended the end of its output may still be on its way: a worker
#: re-sends it after a reconnect (ATTUNE_RETRY_INTERVAL, doubling), within seconds.
END_GRACE_S = 10.0
#: Runner types whose executions run no process, so write no output.
_SILENT_RUNNERS = frozenset({"noop", "ask", "workflow"})
#: children_after holds at most this many positions.
MAX_POSITIONS = 10_000
#: Chunks read per statement (each at most 64 KiB).
_CHUNKS_PER_READ = 64
#: Executions whose chunks one statement reads; parents whose children one statement reads.
_IDS_PER_STATEMENT = 100
_STREAMS = {
    "stdout": execution_pb2.LOG_STREAM_STDOUT,
    "stderr": execution_pb2.LOG_STREAM_STDERR,
}


@dataclass(eq=False)
class _Followed:
    """One execution whose output the watch sends."""

    task_name: str  # "" for the watched execution
    after: int  # the last seq sent
    runner_type: str = ""
    ended: bool = False  # as of the last read of states
    finished_at: float | None = None
    assigned: bool = True  # given to a worker (one never assigned ran nothing)
    complete: bool = False  # its end-of-output chunk was read
    drained: bool = False  # ended, and everything stored was sent

    def may_drain(self, now: float) -> bool:
        """Ended, and no more output can come (see the module docstring)."""
        if not self.ended:
            return False
        if self.complete or self.runner_type in _SILENT_RUNNERS or not self.assigned:
            return True
        return self.finished_at is None or now - self.finished_at > END_GRACE_S


def check_request(request: execution_pb2.WatchExecutionLogsRequest) -> None:
    """INVALID_ARGUMENT for a request out of bounds."""
    if not request.id:
        raise invalid_field("id", "is required")
    if request.after_seq < 0:
        raise invalid_field("after_seq", "must not be negative")
    if len(request.children_after) > MAX_POSITIONS:
        raise invalid_field("children_after", f"holds at most {MAX_POSITIONS} positions")
    if request.children_after and not request.include_children:
        raise invalid_field("children_after", "needs include_children")


class LogStream:
    """The messages of one WatchExecutionLogs call."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        watchers: ExecutionWatchers,
        wakes: LogWakes,
        request: execution_pb2.WatchExecutionLogsRequest,
    ) -> None:
        check_request(request)
        self._db = db
        self._settings = settings
        self._watchers = watchers
        self._wakes = wakes
        self._id = request.id
        self._children = request.include_children
        self._stored_only = request.stored_only
        # A seq beyond what the column holds means "after everything" (and must not reach the query).
        self._resume = {p.execution_id: min(max(0, p.seq), MAX_SEQ) for p in request.children_after}
        self._followed: dict[str, _Followed] = {
            self._id: _Followed(task_name="", after=min(request.after_seq, MAX_SEQ))
        }

    async def messages(self) -> AsyncIterator[execution_pb2.WatchExecutionLogsResponse]:
        """The chunks, in seq order per execution, until the end (see the module docstring)."""
        with self._watchers.watching(self._id) as changed:
            self._wakes.add([self._id], changed)
            try:
                while True:
                    changed.clear()  # before the reads: a change after them wakes the wait below
                    began = time.perf_counter()
                    found = await self._read_states()
                    self._wakes.add(found, changed)
                    sent, full = 0, False
                    waited = 0.0
                    for chunks, more in await self._read_chunks():
                        full = full or more
                        for message in chunks:
                            sent += 1
                            before = time.perf_counter()
                            yield message
                            waited += time.perf_counter() - before
                    if all(f.drained for f in self._followed.values()):
                        return
                    if sent or full:
                        continue  # more may be stored already: read again before waiting
                    if self._stored_only:
                        return
                    await self._wait(changed, cost=time.perf_counter() - began - waited)
            finally:
                self._wakes.remove(list(self._followed), changed)

    async def _wait(self, changed: asyncio.Event, *, cost: float) -> None:
        try:
            async with asyncio.timeout(self._watchers.recheck_interval):
                await changed.wait()
        except TimeoutError:
            pass
        if self._children and len(self._followed) > 1:
            await asyncio.sleep(min(cost * WATCH_COST_FACTOR, MAX_PAUSE_S))

    async def _read_states(self) -> list[str]:
        """Reads whether each followed execution has ended; with include_children, finds the
        descendants not followed yet (returned) and follows them."""
        e = executions.c
        async with self._db.read() as conn:
            root = (
                await conn.execute(
                    sa.select(e.state, e.runner_type, e.finished_at, e.worker_id).where(e.id == self._id)
                )
            ).first()
            if root is None:
                raise NotFound(f"no execution {quoted(self._id)}")
            watched = self._followed[self._id]
            watched.ended, watched.runner_type = root.state in TERMINAL, root.runner_type
            watched.finished_at, watched.assigned = root.finished_at, root.worker_id is not None
            if not self._children:
                return []
            found: list[str] = []
            parents = [i for i, f in self._followed.items() if not f.drained and f.runner_type == "workflow"]
            while parents:
                below: list[str] = []
                for start in range(0, len(parents), _IDS_PER_STATEMENT):
                    query = sa.select(
                        e.id, e.parent_id, e.state, e.runner_type, e.task_name, e.item_index, e.finished_at, e.worker_id
                    ).where(e.parent_id.in_(parents[start : start + _IDS_PER_STATEMENT]))
                    for row in await conn.execute(query):
                        followed = self._followed.get(row.id)
                        if followed is None:
                            followed = self._followed[row.id] = _Followed(
                                task_name=_task_name(self._followed[row.parent_id].task_name, row),
                                after=self._resume.get(row.id, 0),
                                runner_type=row.runner_type,
                            )
                            found.append(row.id)
                        followed.ended, followed.finished_at = row.state in TERMINAL, row.finished_at
                        followed.assigned = row.worker_id is not None
                        if not followed.drained and row.runner_type == "workflow":
                            below.append(row.id)
                parents = below
            return found

    async def _read_chunks(self) -> list[tuple[list[execution_pb2.WatchExecutionLogsResponse], bool]]:
        """The chunks stored after what was sent, per statement: (messages, whether the statement
        hit its row limit). An execution ended before this read that had nothing more is drained."""
        active = [(i, f) for i, f in self._followed.items() if not f.drained]
        now = time.time()
        batches = []
        for start in range(0, len(active), _IDS_PER_STATEMENT):
            part = active[start : start + _IDS_PER_STATEMENT]
            rows = await self._chunks_of(part)
            full = len(rows) >= _CHUNKS_PER_READ
            seen: set[str] = set()
            messages = []
            for row in rows:
                followed = self._followed[row.execution_id]
                if row.seq <= followed.after:
                    continue
                followed.after = row.seq
                seen.add(row.execution_id)
                if row.stream == END_STREAM:
                    followed.complete = True
                else:
                    messages.append(_message(row, followed.task_name))
            if not full:
                for execution_id, followed in part:
                    # Its end chunk is its last: read now, nothing can follow it.
                    if (execution_id not in seen or followed.complete) and followed.may_drain(now):
                        followed.drained = True
            batches.append((messages, full))
        return batches

    async def _chunks_of(self, part: Sequence[tuple[str, _Followed]]) -> Sequence[Any]:
        c = execution_logs.c
        after = sa.or_(*(sa.and_(c.execution_id == i, c.seq > f.after) for i, f in part))
        query = (
            sa.select(c.execution_id, c.seq, c.stream, c.written_at, c.data)
            .where(after)
            .order_by(c.execution_id, c.seq)
            .limit(_CHUNKS_PER_READ)
        )
        async with self._db.read() as conn:
            return (await conn.execute(query)).all()


def _task_name(parent_task: str, row: Any) -> str:
    """A descendant's task: its task name, `[item]` for a with-items item, under its parent's."""
    name = row.task_name or row.id
    if row.item_index is not None and row.item_index >= 0:
        name = f"{name}[{row.item_index}]"
    return f"{parent_task}.{name}" if parent_task else name


def _message(row: Any, task_name: str) -> execution_pb2.WatchExecutionLogsResponse:
    return execution_pb2.WatchExecutionLogsResponse(
        execution_id=row.execution_id,
        seq=row.seq,
        stream=_STREAMS.get(row.stream, execution_pb2.LOG_STREAM_UNSPECIFIED),
        written_at=timestamp(row.written_at),
        data=bytes(row.data),
        task_name=task_name,
    )
