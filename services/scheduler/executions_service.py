"""ExecutionService: requests, queries, cancel and watch of executions."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator

from attune.config import Settings
from attune.execution.v1 import execution_pb2, execution_pb2_grpc
from attune.grpcutil.convert import dict_from_struct, timeout_of
from attune.grpcutil.errors import Unavailable, invalid_field, rpc_errors
from attune.grpcutil.server import RpcContext
from attune.security import caller
from attune.storage import Database
from attune_services.scheduler import interventions
from attune_services.scheduler.asks import Answers
from attune_services.scheduler.cancel import Canceller
from attune_services.scheduler.children import next_page
from attune_services.scheduler.history import list_page
from attune_services.scheduler.log_stream import LogStream
from attune_services.scheduler.logs import LogWakes
from attune_services.scheduler.pages import is_oldest_first
from attune_services.scheduler.pauses import Pauses
from attune_services.scheduler.request_log import RequestLog, logged_request
from attune_services.scheduler.requests import ExecutionRequests
from attune_services.scheduler.reruns import Reruns
from attune_services.scheduler.result_chunks import result_chunks
from attune_services.scheduler.retention import Purger
from attune_services.scheduler.run_wait import RunAndWait
from attune_services.scheduler.views import execution_view
from attune_services.scheduler.watch_stream import WatchStream, page_size_of, read_watched, snapshot
from attune_services.scheduler.watchers import ExecutionWatchers

DEFAULT_PAGE_SIZE = 50
#: The oldest a purge may reach back (~1,000 years): a cutoff any history is younger than.
MAX_PURGE_AGE_S = 1000 * 365 * 86400.0
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
        log_wakes: LogWakes | None = None,
        answers: Answers | None = None,
        pauses: Pauses | None = None,
    ) -> None:
        self._db = db
        self._pauses = pauses  # PauseExecution, ResumeExecution (pauses.py); None: refused as unavailable
        self._log_wakes = log_wakes or LogWakes()  # woken by the log writer (logs.py)
        self._request_log = request_log
        self._settings = settings
        self._watchers = watchers
        self._requests = requests
        self._canceller = canceller
        self._purger = Purger(db)
        self._answers = answers  # RespondToExecution (asks.py); None: refused as unavailable
        self._reruns = Reruns(db, requests)
        self._runs = RunAndWait(db=db, settings=settings, requests=requests, watchers=watchers)

    @rpc_errors
    async def RequestExecution(
        self, request: execution_pb2.RequestExecutionRequest, context: RpcContext
    ) -> execution_pb2.RequestExecutionResponse:
        """Validates and stores one execution in "scheduling". Its timeout: `timeout` when set,
        else the deprecated `timeout_seconds`."""
        if not math.isfinite(request.timeout_seconds) or request.timeout_seconds < 0:
            raise invalid_field("timeout_seconds", "must be a finite number of seconds, not negative")
        row = await self._requests.request(
            request.action_ref,
            dict_from_struct(request.parameters, field="parameters"),
            request_id=request.request_id,
            timeout=timeout_of(request),
        )
        return execution_pb2.RequestExecutionResponse(execution=execution_view(row))

    @rpc_errors
    async def RunExecution(
        self, request: execution_pb2.RunExecutionRequest, context: RpcContext
    ) -> execution_pb2.RunExecutionResponse:
        """Requests the execution and answers once it has ended (`run_wait.py`)."""
        return await self._runs.run(request)

    @rpc_errors
    async def RunExecutions(
        self, requests: AsyncIterator[execution_pb2.RunExecutionsRequest], context: RpcContext
    ) -> AsyncIterator[execution_pb2.RunExecutionsResponse]:
        """RunExecution for each request message, answered as they end (`run_wait.py`)."""
        async for answer in self._runs.run_many(requests):
            yield answer

    @rpc_errors
    async def RerunExecution(
        self, request: execution_pb2.RerunExecutionRequest, context: RpcContext
    ) -> execution_pb2.RerunExecutionResponse:
        """A new execution of an ended one, linked by rerun_of (see `reruns.py`)."""
        start = time.time()
        row = await self._reruns.rerun(request)
        interventions.record("RerunExecution", row, start=start, rerun_of=request.id)  # its span: requests.py
        return execution_pb2.RerunExecutionResponse(execution=execution_view(row))

    @rpc_errors
    async def GetExecution(
        self, request: execution_pb2.GetExecutionRequest, context: RpcContext
    ) -> execution_pb2.GetExecutionResponse:
        """One execution with its children's summary and first page, oldest first (`watch_stream.py`)."""
        row, summary = await read_watched(self._db, _required_id(request.id), self._settings)
        size = page_size_of(request.page_size, self._settings)
        return await snapshot(self._db, row, summary, page_size=size, settings=self._settings)

    @rpc_errors
    async def ListExecutions(
        self, request: execution_pb2.ListExecutionsRequest, context: RpcContext
    ) -> execution_pb2.ListExecutionsResponse:
        """Newest first; the page token is bound to the filters (see `pages.py`). The request
        guard has held page_size and state to their limits."""
        size = min(request.page_size or DEFAULT_PAGE_SIZE, self._settings.max_page_size)
        if is_oldest_first(request.page_token):  # a children page's token (children.py)
            views, more = await next_page(
                self._db, request, size=size, max_message_bytes=self._settings.max_message_bytes
            )
            return execution_pb2.ListExecutionsResponse(executions=views, next_page_token=more)
        page, token = await list_page(self._db, request, size)  # history.py
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
        start = time.time()
        logged = logged_request(_RPC["CancelExecution"], request, execution_pb2.CancelExecutionResponse)
        if (original := await self._request_log.original(logged)) is not None:
            return original
        row = await self._canceller.cancel(_required_id(request.id))
        interventions.record("CancelExecution", row, start=start)
        return await self._request_log.record(
            logged, execution_pb2.CancelExecutionResponse(execution=execution_view(row))
        )

    @rpc_errors
    async def PauseExecution(
        self, request: execution_pb2.PauseExecutionRequest, context: RpcContext
    ) -> execution_pb2.PauseExecutionResponse:
        """Pauses a running workflow (see `pauses.py`); a retried request_id returns the original response."""
        start = time.time()
        logged = logged_request(_RPC["PauseExecution"], request, execution_pb2.PauseExecutionResponse)
        if (original := await self._request_log.original(logged)) is not None:
            return original
        row = await self._pausing().pause(_required_id(request.id))
        interventions.record("PauseExecution", row, start=start)
        return await self._request_log.record(
            logged, execution_pb2.PauseExecutionResponse(execution=execution_view(row))
        )

    @rpc_errors
    async def ResumeExecution(
        self, request: execution_pb2.ResumeExecutionRequest, context: RpcContext
    ) -> execution_pb2.ResumeExecutionResponse:
        """Resumes a paused workflow (see `pauses.py`); a retried request_id returns the original response."""
        start = time.time()
        logged = logged_request(_RPC["ResumeExecution"], request, execution_pb2.ResumeExecutionResponse)
        if (original := await self._request_log.original(logged)) is not None:
            return original
        row = await self._pausing().resume(_required_id(request.id))
        interventions.record("ResumeExecution", row, start=start)
        return await self._request_log.record(
            logged, execution_pb2.ResumeExecutionResponse(execution=execution_view(row))
        )

    def _pausing(self) -> Pauses:
        if self._pauses is None:
            raise Unavailable("this scheduler does not pause workflows")
        return self._pauses

    @rpc_errors
    async def RespondToExecution(
        self, request: execution_pb2.RespondToExecutionRequest, context: RpcContext
    ) -> execution_pb2.RespondToExecutionResponse:
        """Answers a pending ask (see `asks.py`). Logged once the answer is durable, as a cancel:
        a retry returns the original response, not "no longer pending"."""
        start = time.time()
        logged = logged_request(_RPC["RespondToExecution"], request, execution_pb2.RespondToExecutionResponse)
        if (original := await self._request_log.original(logged)) is not None:
            return original
        if self._answers is None:
            raise Unavailable("this scheduler does not take answers")
        answer = dict_from_struct(request.answer, field="answer")
        row = await self._answers.respond(_required_id(request.id), answer, caller.current())
        interventions.record("RespondToExecution", row, start=start)
        return await self._request_log.record(
            logged, execution_pb2.RespondToExecutionResponse(execution=execution_view(row))
        )

    @rpc_errors
    async def PurgeExecutions(
        self, request: execution_pb2.PurgeExecutionsRequest, context: RpcContext
    ) -> execution_pb2.PurgeExecutionsResponse:
        """Purges ended executions older than older_than_seconds, in batches (see `retention.py`)."""
        if not 0 < request.older_than_seconds <= MAX_PURGE_AGE_S:  # also refuses NaN
            raise invalid_field(
                "older_than_seconds", f"must be a number of seconds, more than 0, at most {MAX_PURGE_AGE_S:.0f}"
            )
        purged = await self._purger.purge(cutoff=time.time() - request.older_than_seconds)
        return execution_pb2.PurgeExecutionsResponse(purged=purged)

    @rpc_errors
    async def WatchExecution(
        self, request: execution_pb2.WatchExecutionRequest, context: RpcContext
    ) -> AsyncIterator[execution_pb2.WatchExecutionResponse]:
        """A snapshot, then a message per change of the execution or a child; ends once the
        execution is terminal (`watch_stream.py`)."""
        stream = WatchStream(
            db=self._db,
            settings=self._settings,
            watchers=self._watchers,
            execution_id=_required_id(request.id),
            page_size=request.page_size,
        )
        async for message in stream.messages():
            yield message

    @rpc_errors
    async def GetExecutionResult(
        self, request: execution_pb2.GetExecutionResultRequest, context: RpcContext
    ) -> AsyncIterator[execution_pb2.GetExecutionResultResponse]:
        """The whole result in chunks (`result_chunks.py`)."""
        chunks = result_chunks(self._db, _required_id(request.id), max_message_bytes=self._settings.max_message_bytes)
        async for chunk in chunks:
            yield chunk

    @rpc_errors
    async def WatchExecutionLogs(
        self, request: execution_pb2.WatchExecutionLogsRequest, context: RpcContext
    ) -> AsyncIterator[execution_pb2.WatchExecutionLogsResponse]:
        """The output from after_seq, live, until the execution has ended (`log_stream.py`)."""
        stream = LogStream(
            db=self._db, settings=self._settings, watchers=self._watchers, wakes=self._log_wakes, request=request
        )
        async for message in stream.messages():
            yield message


def _required_id(execution_id: str) -> str:
    """`id` of a request, which must name an execution."""
    if not execution_id:
        raise invalid_field("id", "is required")
    return execution_id
