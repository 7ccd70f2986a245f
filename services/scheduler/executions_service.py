"""ExecutionService: requests, queries, cancel and watch of executions."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa

from attune.config import Settings
from attune.execution.v1 import execution_pb2, execution_pb2_grpc
from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto
from attune.grpcutil.errors import NotFound, invalid_field, quoted, rpc_errors
from attune.grpcutil.server import RpcContext
from attune.states import TERMINAL
from attune.storage import Database
from attune.storage.schema import executions
from attune_services.scheduler.cancel import Canceller
from attune_services.scheduler.pages import key_after, page_token
from attune_services.scheduler.request_log import RequestLog, logged_request
from attune_services.scheduler.requests import ExecutionRequests
from attune_services.scheduler.views import execution_view, with_terminal_fields
from attune_services.scheduler.watchers import ExecutionWatchers

WATCH_COST_FACTOR = 4.0
DEFAULT_PAGE_SIZE = 50
_RPC = execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"].methods_by_name


class ExecutionServicer(execution_pb2_grpc.ExecutionServiceServicer):
    """Serves attune.execution.v1.ExecutionService."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        requests: ExecutionRequests,
        canceller: Canceller,
        watchers: ExecutionWatchers,
        request_log: RequestLog,
    ) -> None:
        self._db = db
        self._request_log = request_log
        self._settings = settings
        self._watchers = watchers
        self._requests = requests
        self._canceller = canceller

    @rpc_errors
    async def RequestExecution(
        self, request: execution_pb2.RequestExecutionRequest, context: RpcContext
    ) -> execution_pb2.RequestExecutionResponse:
        """Validates and stores one execution in "scheduling"."""
        if not math.isfinite(request.timeout_seconds) or request.timeout_seconds < 0:
            raise invalid_field("timeout_seconds", "must be a finite number of seconds, not negative")
        row = await self._requests.request(
            request.action_ref,
            dict_from_struct(request.parameters, field="parameters"),
            request_id=request.request_id,
            timeout=request.timeout_seconds,
        )
        return execution_pb2.RequestExecutionResponse(execution=execution_view(row))

    @rpc_errors
    async def GetExecution(
        self, request: execution_pb2.GetExecutionRequest, context: RpcContext
    ) -> execution_pb2.GetExecutionResponse:
        """One execution with its direct children, oldest first."""
        row, children = await self._snapshot(_required_id(request.id))
        return execution_pb2.GetExecutionResponse(
            execution=execution_view(row), children=[execution_view(c) for c in children]
        )

    @rpc_errors
    async def ListExecutions(
        self, request: execution_pb2.ListExecutionsRequest, context: RpcContext
    ) -> execution_pb2.ListExecutionsResponse:
        """Newest first; the page token is bound to the filters (see `pages.py`). The request
        guard has held page_size and state to their limits."""
        size = min(request.page_size or DEFAULT_PAGE_SIZE, self._settings.max_page_size)
        filters: dict[str, str | int] = {
            "state": request.state,
            "action_ref": request.action_ref,
            "parent_id": request.parent_id,
        }
        after = key_after(request.page_token, "executions", filters)
        query = sa.select(executions).order_by(executions.c.id.desc()).limit(size + 1)
        if request.state:
            query = query.where(executions.c.state == execution_state_from_proto(request.state))
        if request.action_ref:
            query = query.where(executions.c.action_ref == request.action_ref)
        if request.parent_id:
            query = query.where(executions.c.parent_id == request.parent_id)
        if after:
            query = query.where(executions.c.id < after)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        page = rows[:size]
        token = page_token(page[-1]["id"] if len(rows) > size else "", "executions", filters)
        return execution_pb2.ListExecutionsResponse(executions=[execution_view(r) for r in page], next_page_token=token)

    @rpc_errors
    async def CancelExecution(
        self, request: execution_pb2.CancelExecutionRequest, context: RpcContext
    ) -> execution_pb2.CancelExecutionResponse:
        """Cancels per where the execution is (see `cancel.py`). A retried request_id returns the
        original response (not the state now, nor "already cancelled").

        A cancel is several steps, not one transaction (the compare-and-set to canceling, then a
        message to the worker, the coordinator or the completion service), so its response is
        logged once the cancel is durable. A crash in between leaves no log row: the retry cancels
        again, which is harmless, and is logged then. Of two concurrent retries, the first response
        stored is the one both return."""
        logged = logged_request(_RPC["CancelExecution"], request, execution_pb2.CancelExecutionResponse)
        if (original := await self._request_log.original(logged)) is not None:
            return original
        row = await self._canceller.cancel(_required_id(request.id))
        return await self._request_log.record(
            logged, execution_pb2.CancelExecutionResponse(execution=execution_view(row))
        )

    @rpc_errors
    async def WatchExecution(
        self, request: execution_pb2.WatchExecutionRequest, context: RpcContext
    ) -> AsyncIterator[execution_pb2.WatchExecutionResponse]:
        """A snapshot whenever the execution or a child changed; ends once the execution is terminal."""
        _required_id(request.id)
        seen: Any = None
        row: dict[str, Any] | None = None
        with self._watchers.watching(request.id) as changed:
            while True:
                changed.clear()  # before the read: a change committed after it wakes the wait below
                began = time.perf_counter()
                final = self._watchers.final_of(request.id)
                if final is not None and row is not None and row["runner_type"] != "workflow":
                    # Ended, and a plain action has no children: the feed carried what the
                    # completion service stored, so the last view needs no read (one statement
                    # less on the path of every `attune run --wait`).
                    row = with_terminal_fields(row, final)
                    yield execution_pb2.WatchExecutionResponse(execution=execution_view(row))
                    return
                row, children = await self._snapshot(request.id)
                signature = [(r["id"], r["state"], r["updated_at"]) for r in (row, *children)]
                if signature != seen:
                    seen = signature
                    yield execution_pb2.WatchExecutionResponse(
                        execution=execution_view(row), children=[execution_view(c) for c in children]
                    )
                if row["state"] in TERMINAL:
                    return
                # A snapshot of a wide workflow is rebuilt in full on each change: pausing
                # WATCH_COST_FACTOR times what the last one cost keeps one watcher to a small share of
                # the scheduler however many children change (a plain execution has no pause).
                pause = (time.perf_counter() - began) * WATCH_COST_FACTOR if children else 0.0
                try:
                    async with asyncio.timeout(self._watchers.recheck_interval):
                        await changed.wait()
                except TimeoutError:
                    pass
                if pause > 0:
                    await asyncio.sleep(pause)

    async def _snapshot(self, execution_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The execution and its direct children, oldest first, in one statement (one consistent
        snapshot; on PostgreSQL without BEGIN/ROLLBACK either): every watch re-reads on each
        change it is woken for, so this is on the path of every execution someone follows."""
        if not self._db.is_sqlite:
            async with self._db.asyncpg() as raw:
                rows = [dict(record) for record in await raw.fetch(_SNAPSHOT_PG, execution_id)]
        else:
            query = (
                sa.select(executions)
                .where(sa.or_(executions.c.id == execution_id, executions.c.parent_id == execution_id))
                .order_by(executions.c.created_at, executions.c.id)
            )
            async with self._db.read() as conn:
                rows = [dict(r) for r in (await conn.execute(query)).mappings()]
        row = next((r for r in rows if r["id"] == execution_id), None)
        if row is None:
            raise NotFound(f"no execution {quoted(execution_id)}")
        return row, [r for r in rows if r["id"] != execution_id]


def _required_id(execution_id: str) -> str:
    """`id` of a request, which must name an execution."""
    if not execution_id:
        raise invalid_field("id", "is required")
    return execution_id


_SNAPSHOT_PG = (
    "SELECT * FROM executions WHERE id = $1 "
    "UNION ALL (SELECT * FROM executions WHERE parent_id = $1 ORDER BY created_at, id)"
)
