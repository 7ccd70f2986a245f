"""The worker's session with the scheduler: one WorkerService.Connect stream (docs/architecture.md, Services).

Up: a Hello (id, hostname, runtimes, capacity, the executions it still holds), then Started and
Released notices and Logs (live output, `logs.py`) — everything queued during one loop tick
coalesced into one message of each — and a Heartbeat when nothing else was sent for a heartbeat
interval. Releases that free no slot (no-ops) wait for the next message, or go instead of the
heartbeat. Down: Assignments and Cancellations, handed to callbacks, and LogAcks, handed to the
log shipper. A broken stream is reopened with backoff and a fresh Hello (and every log chunk not
acknowledged is sent again). Leaving, the worker says so (no more assignments) and half-closes
the stream once its runs' output is stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import grpc

from attune.background import BackgroundTask
from attune.config import Settings
from attune.grpcutil.reconnect import keep_session
from attune.internal.worker.v1 import worker_pb2, worker_pb2_grpc
from attune_services.worker.logs import LogShipper

log = logging.getLogger(__name__)


class SchedulerSession:
    """Holds the Connect stream; `started()` / `released()` queue notices for the next message."""

    def __init__(
        self,
        stub: worker_pb2_grpc.WorkerServiceStub,
        settings: Settings,
        *,
        hello: Callable[[], worker_pb2.Hello],
        running: Callable[[], Sequence[worker_pb2.StartedExecution]],
        on_assignments: Callable[[Sequence[worker_pb2.Assignment]], None],
        on_cancellations: Callable[[Sequence[str]], None],
        logs: LogShipper | None = None,
    ) -> None:
        self._stub = stub
        self._settings = settings
        self._hello = hello
        self._running = running
        self._on_assignments = on_assignments
        self._on_cancellations = on_cancellations
        self._logs = logs
        # A Logs message carries about this much output (well within the message limit).
        self._logs_message_bytes = max(1, settings.max_message_bytes // 4)
        self._started: list[worker_pb2.StartedExecution] = []
        self._released: list[str] = []
        self._deferred: list[str] = []  # releases that free no slot: sent with the next message
        self._wake = asyncio.Event()
        self._leaving = False
        self._loop = BackgroundTask("scheduler-session", self._run)
        self.welcomed = asyncio.Event()

    def started(self, execution_id: str, started_at: float) -> None:
        """Queues a start notice."""
        self._started.append(worker_pb2.StartedExecution(execution_id=execution_id, started_at=started_at))
        self._wake.set()

    def wake(self) -> None:
        """Something new to send (log chunks): the next message goes now."""
        self._wake.set()

    def released(self, execution_ids: Sequence[str], *, urgent: bool = True) -> None:
        """Queues slot releases (their results are durable at the completion service). Not
        `urgent` ones (executions holding no slot) go with the next message, at the latest
        instead of the next heartbeat."""
        if urgent:
            self._released.extend(execution_ids)
            self._wake.set()
        else:
            self._deferred.extend(execution_ids)

    def start(self) -> None:
        """Opens the session (and keeps reopening it until `leave`)."""
        self._loop.start()

    async def leave(self, timeout: float) -> None:
        """Says Leaving (the scheduler stops assigning work), and half-closes the stream once what
        is queued is sent and the output of every run is stored (waiting for that up to `timeout`
        here; the stream goes on meanwhile). Assignments already on their way are still delivered
        to `on_assignments`."""
        self._leaving = True
        self._wake.set()
        if not self.welcomed.is_set():
            await self.close()  # not connected: nobody to say goodbye to
            return
        await self._loop.join(timeout)  # still running after it: `close` ends it

    async def close(self) -> None:
        """Ends the session at once."""
        self._leaving = True
        await self._loop.stop()

    async def _run(self) -> None:
        await keep_session(
            self._session,
            retry=self._settings.retry_interval,
            stopping=lambda: self._leaving,
            describe_end=lambda err: (
                f"scheduler stream at {self._settings.scheduler_address} ended: {err.code().name} {err.details()}"
            ),
            log=log,
            stream="Connect",
            on_end=self.welcomed.clear,
        )

    async def _session(self) -> None:
        call = self._stub.Connect()
        try:
            # Releases queued before this stream concern the old session; the Hello lists what
            # is still held. Start notices may have been lost with the old stream: send them all.
            self._released.clear()
            self._deferred.clear()
            self._started = list(self._running())
            if self._logs is not None:
                self._logs.resend_all()  # the old stream's acks may never have come
            await call.write(worker_pb2.ConnectRequest(hello=self._hello()))
            if self._started or (self._logs is not None and self._logs.has_outgoing()):
                self._wake.set()
            receiver = asyncio.create_task(self._receive(call))
            sender = asyncio.create_task(self._send(call))
            try:
                done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
                if sender in done and not receiver.done():
                    # We half-closed: the scheduler ends the stream; assignments in flight arrive.
                    await receiver
            finally:
                for task in (receiver, sender):
                    task.cancel()
                await asyncio.gather(receiver, sender, return_exceptions=True)
        finally:
            call.cancel()

    async def _send(
        self, call: grpc.aio.StreamStreamCall[worker_pb2.ConnectRequest, worker_pb2.ConnectResponse]
    ) -> None:
        interval = self._settings.heartbeat_interval
        leave_sent = False
        while True:
            try:
                async with asyncio.timeout(interval):  # not wait_for: it can swallow a cancel (3.11)
                    await self._wake.wait()
            except TimeoutError:
                if not self._deferred:
                    await call.write(worker_pb2.ConnectRequest(heartbeat=worker_pb2.Heartbeat()))
                    continue
            self._wake.clear()
            if self._started:
                started, self._started = self._started, []
                await call.write(worker_pb2.ConnectRequest(started=worker_pb2.Started(executions=started)))
            if self._released or self._deferred:
                released, self._released, self._deferred = self._released + self._deferred, [], []
                await call.write(worker_pb2.ConnectRequest(released=worker_pb2.Released(execution_ids=released)))
            logs = self._logs
            while logs is not None and logs.has_outgoing():
                chunks = logs.take(self._logs_message_bytes)
                await call.write(worker_pb2.ConnectRequest(logs=worker_pb2.Logs(chunks=chunks)))
            if self._leaving and not leave_sent:
                await call.write(worker_pb2.ConnectRequest(leaving=worker_pb2.Leaving()))
                leave_sent = True
            idle = self._logs is None or self._logs.idle()
            if self._leaving and idle and not self._started and not self._released and not self._deferred:
                await call.done_writing()
                return

    async def _receive(
        self, call: grpc.aio.StreamStreamCall[worker_pb2.ConnectRequest, worker_pb2.ConnectResponse]
    ) -> None:
        async for message in call:
            kind = message.WhichOneof("kind")
            if kind == "assignments":
                self._on_assignments(message.assignments.assignments)
            elif kind == "cancellations":
                self._on_cancellations(message.cancellations.execution_ids)
            elif kind == "log_acks" and self._logs is not None:
                self._logs.acked(message.log_acks.acks)
            elif kind == "welcome":
                log.info("connected to scheduler", extra={"scheduler_id": message.welcome.scheduler_id})
                self.welcomed.set()
        if not self._leaving:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "scheduler closed the stream"
            )
