"""WorkerService.Connect: one bidirectional stream per worker.

The first message is a Hello; the scheduler takes the worker's lease (leases.py), answers
Welcome, then streams Assignments, Cancellations and LogAcks from the worker's outbox while a
reader task applies Started, Released, Leaving and Heartbeat messages as they arrive and hands
Logs to the log writer (logs.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import grpc
import sqlalchemy as sa

from attune.grpcutil.errors import rpc_errors
from attune.grpcutil.server import RpcContext
from attune.internal.worker.v1 import worker_pb2, worker_pb2_grpc
from attune.states import ExecutionState
from attune.storage import Database
from attune.storage.schema import executions
from attune_services.scheduler.dispatch import Dispatcher
from attune_services.scheduler.leases import WorkerLeases
from attune_services.scheduler.logs import LogWriter
from attune_services.scheduler.sessions import WorkerSession

log = logging.getLogger(__name__)


class WorkerServicer(worker_pb2_grpc.WorkerServiceServicer):
    """Serves attune.internal.worker.v1.WorkerService."""

    def __init__(
        self, db: Database, dispatcher: Dispatcher, scheduler_id: str, leases: WorkerLeases, logs: LogWriter
    ) -> None:
        self._db = db
        self._logs = logs
        self._leases = leases
        self._dispatcher = dispatcher
        self._scheduler_id = scheduler_id

    @rpc_errors
    async def Connect(
        self, request_iterator: AsyncIterator[worker_pb2.ConnectRequest], context: RpcContext
    ) -> AsyncIterator[worker_pb2.ConnectResponse]:
        """A worker's session (see the proto)."""
        try:
            first = await anext(request_iterator)
        except StopAsyncIteration:
            return
        if first.WhichOneof("kind") != "hello" or not first.hello.worker_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a Hello with a worker_id")
        hello = first.hello
        session = WorkerSession(
            worker_id=hello.worker_id,
            hostname=hello.hostname,
            runtimes=frozenset(hello.runtimes),
            capacity=max(hello.capacity, 1),
            held=frozenset(hello.execution_ids),
        )
        await self._take_lease(session)
        self._dispatcher.attach(session)
        log.info(
            "worker connected",
            extra={"worker_id": session.worker_id, "runtimes": sorted(session.runtimes), "capacity": session.capacity},
        )
        reader = asyncio.create_task(self._read(session, request_iterator), name=f"worker-{session.worker_id}")
        try:
            yield worker_pb2.ConnectResponse(welcome=worker_pb2.Welcome(scheduler_id=self._scheduler_id))
            await self._resend_cancellations(session)
            while True:
                message = await session.outbox.get()
                if message is None:
                    break
                yield message
        finally:
            reader.cancel()
            self._dispatcher.detach(session)
            log.info("worker disconnected", extra={"worker_id": session.worker_id})

    async def _read(self, session: WorkerSession, request_iterator: AsyncIterator[worker_pb2.ConnectRequest]) -> None:
        try:
            async for message in request_iterator:
                session.last_seen = time.monotonic()
                kind = message.WhichOneof("kind")
                if kind == "started":
                    try:
                        await self._dispatcher.started(
                            [(e.execution_id, e.started_at) for e in message.started.executions]
                        )
                    except Exception:
                        log.exception("recording started executions failed", extra={"worker_id": session.worker_id})
                elif kind == "released":
                    self._dispatcher.released(session, message.released.execution_ids)
                elif kind == "logs":
                    await self._logs.add(session, message.logs.chunks)  # waits while its queue is full
                elif kind == "leaving":
                    session.leaving = True  # no more work; its output still comes on this stream
        except asyncio.CancelledError:
            raise
        except grpc.RpcError:
            pass
        except Exception:
            log.exception("worker session failed", extra={"worker_id": session.worker_id})
        finally:
            session.close()

    async def _take_lease(self, session: WorkerSession) -> None:
        """Takes the worker's lease before any work goes to it, so that every replica sees it
        alive here. If the database refused, the sweep's renewal either inserts it or, finding
        another's, closes this stream: the worker connects again."""
        try:
            await self._leases.take(session)
        except Exception:
            log.exception("taking the lease of a connecting worker failed", extra={"worker_id": session.worker_id})

    async def _resend_cancellations(self, session: WorkerSession) -> None:
        """A reconnecting worker learns which of its executions were cancelled while it was away."""
        if not session.held:
            return
        async with self._db.read() as conn:
            ids = list(
                (
                    await conn.execute(
                        sa.select(executions.c.id).where(
                            executions.c.id.in_(list(session.held)), executions.c.state == ExecutionState.CANCELING
                        )
                    )
                ).scalars()
            )
        if ids:
            self._dispatcher.send_cancellations(session.worker_id, ids)
