"""Delivers workflow children's outcomes to the coordinator, durably (docs/architecture.md, Durability).

`outcome_outbox` rows are written in the same transaction as the terminal state, stamped with
this replica's lease id (attune.storage.leases). The forwarder sends them as TaskOutcome batches
on one long-lived CoordinatorService.ReportOutcomes stream and deletes a row only once the
coordinator acks it; until then the row stays, so a coordinator that is down or restarting gets
everything when it returns. Rows committed by this process are sent at once.

What is re-sent, and when: everything unacked goes again on each new stream, and a new stream
waits for the channel to connect (`wait_for_ready`), so outcomes move again as soon as the
channel reaches the coordinator (its reconnect backoff: attune.grpcutil.channel). A poll every
second queues this replica's own rows it lost track of, and takes over the rows of replicas
whose lease has expired (a stopped one releases its lease: at once), never a live replica's.
Rows unacked on a live stream for RESEND_UNACKED_S go again (a safety net: the coordinator
applies an outcome again by itself while its database is away, so that only covers what it
could not apply at all).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import grpc
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from attune import metrics
from attune.background import BackgroundTask
from attune.common.v1 import common_pb2
from attune.config import Settings
from attune.grpcutil.channel import open_channel
from attune.grpcutil.convert import execution_state_to_proto
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune.logs import ThrottledLog
from attune.results import fit_result, result_limit
from attune.storage import Database, log_failed_round
from attune.storage.batching import GroupCommitter
from attune.storage.leases import ReplicaLease, owned_by_dead_replica
from attune.storage.schema import executions, outcome_outbox
from attune_services.completion.store import Outcome

log = logging.getLogger(__name__)
_failures = ThrottledLog(log)

#: The ReportOutcomes stream to the coordinator.
_OutcomeStream = grpc.aio.StreamStreamCall[
    coordinator_pb2.ReportOutcomesRequest, coordinator_pb2.ReportOutcomesResponse
]

POLL_SECONDS = 1.0
#: A new stream is opened at most this long after the last one ended (it then waits for the
#: channel to connect).
RECONNECT_MAX_S = 1.0
#: Rows sent on a live stream and not acked for this long are sent again.
RESEND_UNACKED_S = 30.0
#: The `service_leases` kind of completion replicas.
LEASE_KIND = "completion"
#: Acknowledged rows are deleted in batches gathered over this long: a chain's outcomes arrive
#: one at a time, and a statement per row cost as much as storing the result. A row that outlives
#: a crash here is sent again, and the coordinator acks duplicates without applying them.
DELETE_LINGER_S = 0.05
_READ_BATCH = 1000
# Space kept in each message for what is not an outcome's result.
_MESSAGE_MARGIN = 64 * 1024


class OutcomeForwarder:
    """Owns the ReportOutcomes stream; `notify(items)` after outbox rows are committed."""

    def __init__(
        self, db: Database, settings: Settings, *, lease: ReplicaLease, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self._db = db
        self._settings = settings
        self._lease = lease  # this replica's: its id is on the rows it commits (see `_poll`)
        self._claimed_at = 0.0  # monotonic time of the last claim of dead replicas' rows
        self._poll_seconds = poll_seconds
        # Known outbox rows not yet on the stream, in order: the outcome when the store handed it
        # over, None when it must be read from the database (polled, or re-sent after a break).
        self._pending: dict[str, Outcome | None] = {}
        self._in_flight: dict[str, float] = {}  # sent on the current stream, not acked: id -> sent at
        self._wake = asyncio.Event()
        self._forgetting: set[asyncio.Task[None]] = set()
        self._connected = False
        self._stopping = False
        self._deleter: GroupCommitter[str, None] = GroupCommitter(self._delete, linger=DELETE_LINGER_S)
        self._loop = BackgroundTask("outcome-forwarder", self._run)
        self._channel: grpc.aio.Channel | None = None

    def notify(self, items: Iterable[str | Outcome]) -> None:
        """Outbox rows were committed (each given as its outcome, or as the execution id to read
        it by): send them now."""
        for item in items:
            execution_id, outcome = (item, None) if isinstance(item, str) else (item.id, item)
            if execution_id not in self._in_flight:
                self._pending[execution_id] = outcome
        self._wake.set()

    def start(self) -> None:
        """Starts the background loop."""
        self._channel = open_channel(self._settings.coordinator_address, self._settings)
        self._lease.on_regained = self._regained
        self._loop.start()

    async def drain(self) -> None:
        """Waits until what this process committed is acked, unless the coordinator is away
        (not acking on the current stream): the rows are durable and go out after a restart."""
        while (self._pending or self._in_flight) and self._connected:
            await asyncio.sleep(self._settings.poll_interval)

    async def close(self) -> None:
        """Stops the loop and closes the channel; unacked rows stay for the next run."""
        self._stopping = True
        await self._loop.stop()
        await self._deleter.close()
        if self._channel is not None:
            await self._channel.close()

    async def _run(self) -> None:
        retry = self._settings.retry_interval
        backoff, failures = retry, 0
        while not self._stopping:
            started = time.monotonic()
            error: grpc.aio.AioRpcError | None = None
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as err:
                error = err
            except Exception as err:
                log_failed_round(_failures, "outcome forwarding", err)
            healthy = self._connected or time.monotonic() - started > 10 * retry
            if error is not None and (healthy or failures == 0):  # once per outage, not per retry
                log.warning(
                    "coordinator stream at %s ended: %s %s",
                    self._settings.coordinator_address,
                    error.code().name,
                    error.details(),
                )
            failures = 0 if healthy else failures + 1
            self._connected = False
            # What was on the broken stream goes again on the next one.
            for execution_id in self._in_flight:
                self._pending.setdefault(execution_id, None)
            self._in_flight.clear()
            if healthy:
                backoff = retry  # it had been working: retry promptly
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)
            metrics.reconnects.get("ReportOutcomes").inc()

    async def _session(self) -> None:
        assert self._channel is not None
        # Waits for the channel to connect rather than failing at once: the stream starts, and
        # what is unacked goes again, the moment the coordinator is reachable.
        call = coordinator_pb2_grpc.CoordinatorServiceStub(self._channel).ReportOutcomes(wait_for_ready=True)
        receiver = asyncio.create_task(self._receive(call))
        sender = asyncio.create_task(self._send(call))
        try:
            done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises the stream's error
        finally:
            for task in (receiver, sender):
                task.cancel()
            await asyncio.gather(receiver, sender, return_exceptions=True)
            call.cancel()

    async def _receive(self, call: _OutcomeStream) -> None:
        async for response in call:
            if not self._connected:
                self._connected = True
            ids = list(response.acked_execution_ids)
            if ids:
                task = asyncio.create_task(self._forget(ids))
                self._forgetting.add(task)
                task.add_done_callback(self._forgetting.discard)
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "coordinator closed the stream"
        )

    async def _forget(self, ids: list[str]) -> None:
        try:
            await self._deleter.submit_many(ids)
        except Exception as err:
            log.error("deleting %d acked outbox rows failed: %s", len(ids), err)
            return
        for execution_id in ids:
            self._in_flight.pop(execution_id, None)
            self._pending.pop(execution_id, None)

    async def _send(self, call: _OutcomeStream) -> None:
        next_poll = 0.0
        while True:
            now = time.monotonic()
            if now >= next_poll:
                await self._poll()
                next_poll = now + self._poll_seconds
            if self._pending and not self._lease.valid:
                pass  # a peer may take these rows over meanwhile: sent once the lease is renewed
            elif self._pending:
                batch = list(self._pending.items())[:_READ_BATCH]
                for execution_id, _ in batch:
                    del self._pending[execution_id]
                outcomes = [
                    _task_outcome(known, self._settings.max_message_bytes) for _, known in batch if known is not None
                ]
                unknown = [execution_id for execution_id, known in batch if known is None]
                if unknown:
                    outcomes += await self._load(unknown)
                sent_at = time.monotonic()
                for chunk in _chunks(outcomes, self._settings.max_message_bytes - _MESSAGE_MARGIN):
                    for outcome in chunk:
                        self._in_flight[outcome.execution_id] = sent_at
                    await call.write(coordinator_pb2.ReportOutcomesRequest(outcomes=chunk))
                continue
            self._wake.clear()
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that arrives
                # as the event is set, and the loop would never stop.
                async with asyncio.timeout(max(0.0, next_poll - time.monotonic())):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _poll(self) -> None:
        """Takes over the rows of replicas whose lease has expired (every third of a lease time,
        and only with a `steady` lease of its own), then queues its own rows nobody is sending:
        claimed ones, ones it lost track of, and ones unacked for RESEND_UNACKED_S. Fresh rows are
        left to the stream they are on their way to."""
        claimed: set[str] = set()
        if self._lease.steady and time.monotonic() - self._claimed_at >= self._lease.ttl / 3:
            async with self._db.write() as conn:
                claimed = await _claim(conn, owner=self._lease.id, unowned_before=time.time() - 2 * self._poll_seconds)
            self._claimed_at = time.monotonic()
        resend_before = time.monotonic() - RESEND_UNACKED_S
        fresh_after = time.time() - 2 * self._poll_seconds
        for execution_id, created_at in await self._own_rows():
            if execution_id in self._pending or (created_at > fresh_after and execution_id not in claimed):
                continue
            sent_at = self._in_flight.get(execution_id)
            if sent_at is None or sent_at < resend_before:
                self._in_flight.pop(execution_id, None)
                self._pending.setdefault(execution_id, None)

    async def _own_rows(self) -> list[tuple[str, float]]:
        """This replica's outbox rows, oldest first (up to _READ_BATCH): execution id, created_at."""
        o = outcome_outbox
        async with self._db.read() as conn:
            rows = await conn.execute(
                sa.select(o.c.execution_id, o.c.created_at)
                .where(o.c.owner == self._lease.id)
                .order_by(o.c.created_at)
                .limit(_READ_BATCH)
            )
            return [(row.execution_id, row.created_at) for row in rows]

    async def _regained(self) -> None:
        """This replica's lease was renewed after a lapse: rows a peer took over meanwhile leave
        the queue (those on the stream are acked once, whoever sends them)."""
        own = {execution_id for execution_id, _ in await self._own_rows()}
        for execution_id in [i for i in self._pending if i not in own]:
            del self._pending[execution_id]

    async def _load(self, ids: Sequence[str]) -> list[coordinator_pb2.TaskOutcome]:
        """The outcomes of these outbox rows; rows whose execution is gone are deleted."""
        if self._db.is_sqlite:
            async with self._db.read() as conn:
                rows: Sequence[Any] = (await conn.execute(_LOAD.where(outcome_outbox.c.execution_id.in_(ids)))).all()
        else:  # one round trip on the asyncpg connection: this read is on every workflow step's path
            async with self._db.asyncpg() as raw:
                rows = [Outcome(*record) for record in await raw.fetch(_LOAD_PG, list(ids))]
        outcomes = [_task_outcome(row, self._settings.max_message_bytes) for row in rows]
        orphans = set(ids) - {row.id for row in rows}
        if orphans:
            log.warning("outbox rows without an execution dropped: %s", sorted(orphans))
            await self._deleter.submit_many(sorted(orphans))
        return outcomes

    async def _delete(self, ids: list[str]) -> list[None]:
        unique = sorted(set(ids))
        if self._db.is_sqlite:
            async with self._db.write() as conn:
                await conn.execute(outcome_outbox.delete().where(outcome_outbox.c.execution_id.in_(unique)))
        else:
            async with self._db.asyncpg() as raw:
                await raw.execute("DELETE FROM outcome_outbox WHERE execution_id = any($1::text[])", unique)
        return [None] * len(ids)


_e = executions
_LOAD = sa.select(
    _e.c.id,
    _e.c.workflow_execution_id,
    _e.c.task_name,
    _e.c.task_run,
    _e.c.item_index,
    _e.c.attempt,
    _e.c.state,
    _e.c.result,
    _e.c.error,
).select_from(outcome_outbox.join(_e, _e.c.id == outcome_outbox.c.execution_id))
_LOAD_PG = (
    "SELECT e.id, e.workflow_execution_id, e.task_name, e.task_run, e.item_index, e.attempt, e.state, e.result,"
    " e.error FROM outcome_outbox o JOIN executions e ON e.id = o.execution_id"
    " WHERE o.execution_id = any($1::text[])"
)


async def _claim(conn: AsyncConnection, *, owner: str, unowned_before: float) -> set[str]:
    """Makes `owner` the owner of the rows of completion replicas without a live lease, and of
    rows without an owner (from before leases) older than `unowned_before`; their execution ids.
    One UPDATE: of two replicas claiming at once, each row goes to one."""
    o = outcome_outbox
    dead = owned_by_dead_replica(o.c.owner, LEASE_KIND, time.time())
    unowned = sa.and_(o.c.owner.is_(None), o.c.created_at < unowned_before)
    rows = await conn.execute(sa.update(o).where(sa.or_(dead, unowned)).values(owner=owner).returning(o.c.execution_id))
    return set(rows.scalars())


def _task_outcome(row: Outcome | Any, max_message_bytes: int) -> coordinator_pb2.TaskOutcome:
    # A nested workflow's result may be stored larger than a message (ATTUNE_MAX_WORKFLOW_RESULT_BYTES):
    # its parent gets it cut down as an action's would be, so that the outcome still travels.
    return coordinator_pb2.TaskOutcome(
        execution_id=row.id,
        link=common_pb2.WorkflowLink(
            workflow_execution_id=row.workflow_execution_id or "",
            task_name=row.task_name or "",
            run=row.task_run or 0,
            item_index=-1 if row.item_index is None else row.item_index,
            attempt=row.attempt or 0,
        ),
        state=execution_state_to_proto(row.state),
        result_json=fit_result((row.result or "").encode(), result_limit(max_message_bytes)),
        error=row.error or "",
    )


def _chunks(outcomes: list[coordinator_pb2.TaskOutcome], max_bytes: int) -> Iterable[list[coordinator_pb2.TaskOutcome]]:
    """Outcomes grouped so that each message stays under `max_bytes`."""
    chunk: list[coordinator_pb2.TaskOutcome] = []
    size = 0
    for outcome in outcomes:
        item = outcome.ByteSize() + 8
        if chunk and size + item > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(outcome)
        size += item
    if chunk:
        yield chunk
