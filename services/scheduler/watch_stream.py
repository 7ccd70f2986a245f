"""What GetExecution and WatchExecution send: a snapshot (the execution, its children's summary and
first page), then, for a watch, one message per change of the execution or of a child.

A watch used to resend the execution with every child on each change: a 100,000-item workflow
made each message 7 MB (over the 4 MiB limit) and each re-read cost the whole list. Now each
change costs a message of one child, and a re-read costs the execution with its children's
count by state (one statement on PostgreSQL) and the versions of the children changed lately;
when some did, their rows and the count again. Measured with 20,000 no-op items on a loaded
two-core machine: 25.7 s watched against 24.1 s polled, every message under 520 bytes.

Which children changed is read from `updated_at` (`ChildChanges`): every read asks for the
versions written since the newest one seen, less CHANGE_SLACK_S for writes that committed later
than they were stamped; a version seen already is not sent again. A write that commits more than
the slack after its stamp is still counted in the summary, only its own message is skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from attune.config import Settings
from attune.execution.v1 import execution_pb2
from attune.grpcutil.errors import NotFound, quoted
from attune.states import TERMINAL
from attune.storage import Database
from attune.storage.schema import executions
from attune_services.scheduler.children import (
    DEFAULT_CHILDREN_PAGE,
    bounded_columns,
    children_budget,
    children_page,
    children_summary,
    read_with_summary,
)
from attune_services.scheduler.views import (
    CHILD_RESULT_INLINE_BYTES,
    execution_view,
    main_result_inline_bytes,
    with_terminal_fields,
)
from attune_services.scheduler.watchers import ExecutionWatchers

#: Seconds a child's write may commit after the time it stamped and still get its own message.
CHANGE_SLACK_S = 2.0
#: A watch of a workflow pauses this many times what its last re-read cost: one watcher stays a
#: small share of the scheduler however many children change (a plain execution has no pause).
#: The cost leaves out the time its messages waited for the client (gRPC flow control): a slow
#: reader (measured: 570 µs a message for a CLI on a loaded machine) would otherwise make the
#: watch pause for minutes while the scheduler idles.
WATCH_COST_FACTOR = 4.0
#: The longest such pause, in seconds.
MAX_PAUSE_S = 2.0
# Changed children read per statement.
_CHANGED_BATCH = 500


class ChildChanges:
    """Which children changed since the last look, from the versions (state, updated_at) read."""

    def __init__(self, *, start: float, slack: float = CHANGE_SLACK_S) -> None:
        self._slack = slack
        self._newest = start
        self._seen: dict[str, tuple[str, float]] = {}

    @property
    def since(self) -> float:
        """Read the versions written at or after this time next."""
        return self._newest - self._slack

    def take(self, versions: Iterable[tuple[str, str, float]]) -> list[str]:
        """The ids among `versions` (id, state, updated_at) not seen in that version before."""
        changed = []
        for execution_id, state, updated_at in versions:
            if self._seen.get(execution_id) != (state, updated_at):
                self._seen[execution_id] = (state, updated_at)
                changed.append(execution_id)
            self._newest = max(self._newest, updated_at)
        since = self.since
        self._seen = {key: seen for key, seen in self._seen.items() if seen[1] >= since}
        return changed


def page_size_of(requested: int, settings: Settings) -> int:
    """The children page size for a request's page_size (0: the default)."""
    return min(requested or DEFAULT_CHILDREN_PAGE, settings.max_page_size)


async def read_watched(
    db: Database, execution_id: str, settings: Settings
) -> tuple[dict[str, Any], execution_pb2.ChildrenSummary]:
    """The execution a Get or Watch is about, its result whole up to `main_result_inline_bytes`,
    and its children's summary."""
    row, summary = await read_with_summary(db, execution_id, main_result_inline_bytes(settings.max_message_bytes))
    if row is None:
        raise NotFound(f"no execution {quoted(execution_id)}")
    return row, summary


async def snapshot(
    db: Database, row: dict[str, Any], summary: execution_pb2.ChildrenSummary, *, page_size: int, settings: Settings
) -> execution_pb2.GetExecutionResponse:
    """The execution with its children's summary and first page, within the message limit."""
    view = execution_view(row, inline_bytes=main_result_inline_bytes(settings.max_message_bytes))
    if not summary.total:
        return execution_pb2.GetExecutionResponse(execution=view, children_summary=summary)
    budget = children_budget(settings.max_message_bytes, view, summary)
    page = await children_page(db, row["id"], size=page_size, after="", budget=budget)
    return execution_pb2.GetExecutionResponse(
        execution=view, children=page.children, children_summary=summary, next_page_token=page.next_page_token
    )


class WatchStream:
    """The messages of one WatchExecution call."""

    def __init__(
        self, *, db: Database, settings: Settings, watchers: ExecutionWatchers, execution_id: str, page_size: int
    ) -> None:
        self._db = db
        self._settings = settings
        self._watchers = watchers
        self._id = execution_id
        self._page_size = page_size_of(page_size, settings)
        self._changes = ChildChanges(start=time.time())
        self._inline = main_result_inline_bytes(settings.max_message_bytes)

    async def messages(self) -> AsyncIterator[execution_pb2.WatchExecutionResponse]:
        """A snapshot, then a message per change, until the execution is terminal."""
        row: dict[str, Any] | None = None
        last: execution_pb2.WatchExecutionResponse | None = None
        with self._watchers.watching(self._id) as changed:
            while True:
                changed.clear()  # before the read: a change committed after it wakes the wait below
                began = time.perf_counter()
                final = self._watchers.final_of(self._id)
                if final is not None and row is not None and last is not None and not self._has_children(row, last):
                    # Ended, and a plain action has no children: the feed carried what the
                    # completion service stored, so the last view needs no read (one statement
                    # less on the path of every `attune run --wait`).
                    view = execution_view(with_terminal_fields(row, final), inline_bytes=self._inline)
                    yield execution_pb2.WatchExecutionResponse(
                        execution=view, children_summary=last.children_summary, is_change=True
                    )
                    return
                fresh, summary = await read_watched(self._db, self._id, self._settings)
                # Read after the execution: a child's change before the execution ended is seen.
                versions = await self._child_versions() if self._has_children(fresh, last) else []
                waited = 0.0  # in this cycle, for the client to take messages
                if last is None:
                    first = await snapshot(self._db, fresh, summary, page_size=self._page_size, settings=self._settings)
                    if not versions and first.children_summary.total:  # not a workflow, yet a parent
                        versions = await self._child_versions()
                    self._changes.take(versions)  # shown by the snapshot
                    last = execution_pb2.WatchExecutionResponse(
                        execution=first.execution,
                        children=first.children,
                        children_summary=first.children_summary,
                        next_page_token=first.next_page_token,
                    )
                    yield last
                else:
                    async for message in self._changes_since(last, row, fresh, summary, versions):
                        last = message
                        sent = time.perf_counter()
                        yield message
                        waited += time.perf_counter() - sent
                row = fresh
                if row["state"] in TERMINAL:
                    return
                cost = time.perf_counter() - began - waited
                pause = min(cost * WATCH_COST_FACTOR, MAX_PAUSE_S) if row["runner_type"] == "workflow" else 0.0
                try:
                    async with asyncio.timeout(self._watchers.recheck_interval):
                        await changed.wait()
                except TimeoutError:
                    pass
                if pause > 0:
                    await asyncio.sleep(pause)

    async def _changes_since(
        self,
        last: execution_pb2.WatchExecutionResponse,
        before: dict[str, Any] | None,
        row: dict[str, Any],
        summary: execution_pb2.ChildrenSummary,
        versions: Sequence[tuple[str, str, float]],
    ) -> AsyncIterator[execution_pb2.WatchExecutionResponse]:
        """A message per child that changed (with the execution as last sent: its own change
        comes after its children's), then one for the execution if it changed."""
        changed_ids = self._changes.take(versions)
        if changed_ids:
            # Counted again after the versions were read: the summary includes every change sent.
            summary = await children_summary(self._db, self._id)
            for start in range(0, len(changed_ids), _CHANGED_BATCH):
                for child in await self._children(changed_ids[start : start + _CHANGED_BATCH]):
                    yield execution_pb2.WatchExecutionResponse(
                        execution=last.execution, children=[child], children_summary=summary, is_change=True
                    )
                await asyncio.sleep(0)  # a write that does not block never yields: let the others run
        if before is None or _version(before) != _version(row):
            view = execution_view(row, inline_bytes=self._inline)
            yield execution_pb2.WatchExecutionResponse(execution=view, children_summary=summary, is_change=True)

    @staticmethod
    def _has_children(row: dict[str, Any], last: execution_pb2.WatchExecutionResponse | None) -> bool:
        """Whether children's changes are worth reading: a workflow's, or any execution's that
        had children when the watch began (only a workflow's are requested in practice)."""
        return row["runner_type"] == "workflow" or (last is not None and last.children_summary.total > 0)

    async def _child_versions(self) -> list[tuple[str, str, float]]:
        c = executions.c
        query = sa.select(c.id, c.state, c.updated_at).where(
            c.parent_id == self._id, c.updated_at >= self._changes.since
        )
        async with self._db.read() as conn:
            return [(r.id, r.state, r.updated_at) for r in await conn.execute(query)]

    async def _children(self, ids: Sequence[str]) -> list[execution_pb2.Execution]:
        query = (
            sa.select(*bounded_columns(self._db, CHILD_RESULT_INLINE_BYTES))
            .where(executions.c.id.in_(ids))
            .order_by(executions.c.id)
        )
        async with self._db.read() as conn:
            return [execution_view(r) for r in (await conn.execute(query)).mappings()]


def _version(row: dict[str, Any]) -> tuple[str, float]:
    return row["state"], row["updated_at"]
