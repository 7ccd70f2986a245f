"""Carrying committed commands out: child requests and cancellations to the scheduler, finished
workflows' results to the completion service.

Everything here is already durable in the coordinator's tables before it is queued (an outbox):
`task_runs.dispatched = false`, `task_runs.cancel_requested`, `workflow_executions.finish_reported
= false`. The queues are an in-memory index of those rows; a failed call leaves its items queued
and retries after `retry_interval`.

Each replica holds a lease (attune.storage.leases) and records its id on the rows it commits
(`task_runs.owner`, `workflow_executions.result_owner`). `recover()` at start and `sweep()`,
every third of a lease time, take over the rows of replicas whose lease has expired or was
released (replicas share nothing but the database), never a live replica's: however slow it is,
its commands are sent once. Requests are idempotent downstream all the same (request_id per task
run, SubmitResult per execution), so sending one again after a crash never runs a task twice.

Only what may succeed later is sent again (`RETRIED`): an answer that would be the same every
time ends the item. A child request the scheduler refuses that way fails its task run with the
reason ("not started: …"), instead of keeping its workflow "running" forever; the batch it came
in is split first, so the child that caused the refusal is the only one to fail (`_not_taken`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
import sqlalchemy as sa

from attune.background import BackgroundTask
from attune.common.v1 import common_pb2
from attune.config import Settings
from attune.grpcutil.convert import dumps, execution_state_to_proto
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.internal.execution.v1 import execution_pb2 as child_pb2
from attune.internal.execution.v1 import execution_pb2_grpc as child_pb2_grpc
from attune.logs import ThrottledLog
from attune.results import fit_result
from attune.security.sealing import Sealer
from attune.states import ExecutionState
from attune.storage import Database, log_failed_round
from attune.storage.batching import GroupCommitter
from attune.storage.leases import ReplicaLease
from attune.storage.schema import task_runs
from attune_services.coordinator.child_requests import ChildRequester
from attune_services.coordinator.commands import PendingChild, PendingFinish, Refusal
from attune_services.coordinator.pg_steps import mark_dispatched_asyncpg
from attune_services.coordinator.rows import DispatchedChild, RunRef
from attune_services.coordinator.secrets import open_request
from attune_services.coordinator.store import (
    Claimed,
    Outbox,
    claim_outbox,
    mark_dispatched,
    mark_finish_reported,
    read_outbox,
)

log = logging.getLogger(__name__)
# While a peer or the database is away every round fails alike: one line per kind per interval.
_repeats = ThrottledLog(log)

#: Children per batch of child requests, such batches in flight at once, and results submitted
#: concurrently.
DISPATCH_BATCH = 500
DISPATCH_WINDOW = 4
#: Child cancels in flight at once (see `_cancel`).
CANCEL_WINDOW = 128
FINISH_BATCH = 64
#: Accepted children are recorded in batches gathered over this long (see `_record`).
RECORD_LINGER_S = 0.05
#: The sweep takes over rows without an owner (from before leases) at least this many retry
#: intervals old (and one recovery interval); it queues its own rows it does not hold once they
#: are this many retry intervals old (and a second): younger ones may be on their way to its queues.
SWEEP_GRACE_RETRIES = 4
#: The `service_leases` kind of coordinator replicas.
LEASE_KIND = "coordinator"
#: Codes that say the peer could not answer now (down or stopping, slow, the call cut short): the
#: child request or cancel is sent again after `retry_interval`. Any other code is the peer's
#: answer and would be the same next time: INTERNAL and UNKNOWN (a bug, or a row the database
#: refuses), RESOURCE_EXHAUSTED (in Attune only a message or its metadata over a size limit),
#: INVALID_ARGUMENT, PERMISSION_DENIED (a deployment fault, loud in every workflow it fails)...
RETRIED = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
)
#: A workflow's result is also sent again on INTERNAL and UNKNOWN: refused for good, the workflow's
#: execution would stay running forever, where a completion service fixed and restarted takes it.
RESULT_RETRIED = RETRIED | {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


class Carrier:
    """Three loops (dispatch, cancel, finish) draining durable queues."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        lease: ReplicaLease,
        children: child_pb2_grpc.ChildExecutionServiceStub,
        completion: completion_pb2_grpc.CompletionServiceStub,
        sealer: Sealer | None = None,
    ) -> None:
        self._db = db
        self._lease = lease  # this replica's: its id is recorded on what it commits (see `sweep`)
        self._sealer = sealer  # opens the sealed requests of task runs holding a secret
        self._settings = settings
        self._completion = completion
        self._children: dict[RunRef, PendingChild] = {}
        self._in_flight: set[RunRef] = set()
        self._alone: set[RunRef] = set()  # asked for in a call of their own (see `_not_taken`)
        self._recording: set[RunRef] = set()  # accepted, child id not yet recorded
        self._recorder: GroupCommitter[DispatchedChild, None] = GroupCommitter(
            self._write_dispatched, max_batch=DISPATCH_BATCH, linger=RECORD_LINGER_S
        )
        self._cancels: set[RunRef] = set()
        self._delivered: set[RunRef] = set()  # cancels delivered whose runs have not ended yet
        self._own_read_at = time.monotonic()  # the start-up recovery has just read them
        self._finishes: dict[str, PendingFinish] = {}
        self._wake = {name: asyncio.Event() for name in ("dispatch", "cancel", "finish")}
        self._loops: list[BackgroundTask] = []
        self._senders: set[asyncio.Task[None]] = set()
        self._window = asyncio.Semaphore(DISPATCH_WINDOW)
        self._closed = False
        # Deadline of each call to the scheduler or the completion service (a slow peer is
        # retried, never waited on forever); shutdown_grace is the timing peers are given to answer.
        self._deadline = max(settings.shutdown_grace, 1.0)
        self._child_service = children  # child cancels; requests go through the requester's stream
        self._children_requester = ChildRequester(children, deadline=self._deadline)
        # Half the message limit: a batch the scheduler would refuse as too large is never sent.
        self._batch_bytes = max(settings.max_message_bytes // 2, 1)
        self._sweep_grace = max(settings.recovery_interval, SWEEP_GRACE_RETRIES * settings.retry_interval)
        self._own_grace = max(1.0, SWEEP_GRACE_RETRIES * settings.retry_interval)
        self.on_refused: Callable[[Sequence[Refusal]], Awaitable[None]] = _nothing
        self.on_reported: Callable[[Sequence[str]], None] = lambda ids: None

    # --- queueing ----------------------------------------------------------------------------

    def add_children(self, children: Sequence[PendingChild]) -> None:
        for child in children:
            self._children[RunRef(child.workflow_id, child.run_key)] = child
        self._wake["dispatch"].set()

    def add_cancels(self, runs: Sequence[RunRef]) -> None:
        # A cancel already delivered is not sent again (the run's row stays pending until it ends).
        self._cancels.update(ref for ref in runs if ref not in self._delivered)
        self._wake["cancel"].set()
        self._wake["dispatch"].set()

    def add_finish(self, finish: PendingFinish) -> None:
        self._finishes[finish.workflow_id] = finish
        self._wake["finish"].set()

    @property
    def idle(self) -> bool:
        """True when nothing is waiting to be carried out (tests and drain use it)."""
        return not (self._children or self._in_flight or self._recording or self._cancels or self._finishes)

    # --- life cycle --------------------------------------------------------------------------

    async def recover(self) -> None:
        """At start: takes over every command of a replica without a live lease (one stopped
        cleanly released its lease, so a restart resumes its work at once; a killed one's lease
        expires within the lease time) and those written before leases."""
        await self._take_over(claim=True, unowned_before=None, own_before=None)

    async def sweep(self) -> None:
        """Takes over the commands of replicas whose lease has expired (and, after a grace period,
        rows written before leases), then queues this replica's own rows it does not hold:
        claimed ones at once, others committed at least a moment ago (one committed just now may
        be on its way to the queues). A live replica's rows are never touched, however slow it is:
        nothing is sent twice. A replica whose own lease lapsed claims nothing until it is
        `steady` again (after a database outage every lease looks expired for a moment)."""
        now = time.time()
        claim = self._lease.steady
        if not claim and not self._lease.valid:
            return  # a peer may be taking this replica's rows over: see `_regained`
        await self._take_over(claim=claim, unowned_before=now - self._sweep_grace, own_before=now - self._own_grace)

    async def _regained(self) -> None:
        """Called when this replica's lease is renewed after a lapse: a peer may have taken over
        some of its commands meanwhile. What it no longer owns leaves its queues (unless already
        on its way); what it still owns is queued again."""
        await self._take_over(claim=False, unowned_before=None, own_before=None, prune=True)

    async def _take_over(
        self, *, claim: bool, unowned_before: float | None, own_before: float | None, prune: bool = False
    ) -> None:
        """Claims (if `claim`) the rows of dead replicas, then queues this replica's outbox rows
        it does not hold: claimed ones, and others committed before `own_before` (None: all).
        What it holds is noted before the read as well as after: an item carried out while the
        read ran may still be pending in the read's snapshot of the rows."""
        runs, cancels, finishes = self._held()
        claimed = Claimed(set(), set())
        if claim:
            async with self._db.write() as conn:
                claimed = await claim_outbox(
                    conn, owner=self._lease.id, kind=LEASE_KIND, now=time.time(), unowned_before=unowned_before
                )
        if not (claimed.runs or claimed.finishes or own_before is None or self._own_read_due()):
            return
        async with self._db.read() as conn:
            outbox = await read_outbox(conn, owner=self._lease.id)
        self._own_read_at = time.monotonic()
        if prune:
            self._keep_only(outbox)
        runs_now, cancels_now, finishes_now = self._held()
        runs |= runs_now
        self._delivered &= set(outbox.cancels)  # a cancel stays pending until its run ends

        def due(claimed_now: bool, committed_at: float | None) -> bool:
            return claimed_now or own_before is None or (committed_at or 0.0) < own_before

        children = [
            r
            for r in outbox.children
            if (ref := RunRef(r.workflow_id, r.run_key)) not in runs and due(ref in claimed.runs, r.started_at)
        ]
        self.add_children(
            [
                PendingChild.of(
                    r.workflow_id,
                    r.run_key,
                    r.task_name,
                    r.run,
                    r.item_index,
                    r.attempt,
                    r.action_ref,
                    open_request(self._sealer, json.loads(r.request)),
                    depth=r.depth,
                    traceparent=r.traceparent or "",
                )
                for r in children
            ]
        )
        new_cancels = [
            ref
            for ref in outbox.cancels
            if ref not in cancels and ref not in cancels_now and ref not in self._delivered
        ]
        if new_cancels:
            self.add_cancels(new_cancels)
        new_finishes = [
            r
            for r in outbox.finishes
            if r.id not in finishes and r.id not in finishes_now and due(r.id in claimed.finishes, r.finished_at)
        ]
        for r in new_finishes:
            self.add_finish(
                PendingFinish(
                    r.id, r.status, json.loads(r.result or "{}"), r.error, r.traceparent or "", r.finished_at or 0.0
                )
            )
        if children or new_cancels or new_finishes:
            log.info(
                "took over commands committed but not carried out",
                extra={
                    "children": len(children),
                    "cancels": len(new_cancels),
                    "finishes": len(new_finishes),
                    "claimed": len(claimed.runs) + len(claimed.finishes),
                },
            )

    def _own_read_due(self) -> bool:
        """Whether the sweep re-reads this replica's own rows (every recovery interval; a claim
        of dead replicas' rows, every third of a lease time, reads only what it claimed)."""
        return time.monotonic() - self._own_read_at >= self._settings.recovery_interval

    def _keep_only(self, outbox: Outbox) -> None:
        """Drops from the queues what this replica no longer owns (taken over while its lease had
        lapsed), except what is already being sent."""
        children = {RunRef(r.workflow_id, r.run_key) for r in outbox.children}
        for ref in [r for r in self._children if r not in children and r not in self._in_flight]:
            del self._children[ref]
        self._cancels &= set(outbox.cancels)
        finishes = {r.id for r in outbox.finishes}
        for workflow_id in [w for w in self._finishes if w not in finishes]:
            del self._finishes[workflow_id]

    def _held(self) -> tuple[set[RunRef], set[RunRef], set[str]]:
        """The task runs (child to request), cancels and results this process is carrying out."""
        return set(self._children) | self._in_flight | self._recording, set(self._cancels), set(self._finishes)

    def start(self) -> None:
        """Starts the loops."""
        self._loops = [
            BackgroundTask("coordinator-dispatch", lambda: self._loop("dispatch", self._dispatch)),
            BackgroundTask("coordinator-cancel", lambda: self._loop("cancel", self._cancel)),
            BackgroundTask("coordinator-finish", lambda: self._loop("finish", self._finish)),
        ]
        if self._settings.recovery_interval > 0:
            self._loops.append(BackgroundTask("coordinator-recovery-sweep", self._sweep_loop))
        self._lease.on_regained = self._regained
        for loop in self._loops:
            loop.start()

    async def close(self) -> None:
        """Stops the loops; what is still queued stays recorded in the database."""
        self._closed = True
        # Everything is cancelled before anything is awaited: a loop left running meanwhile could
        # start a sender that nobody would stop.
        senders = list(self._senders)
        for loop in self._loops:
            loop.cancel()
        for sender in senders:
            sender.cancel()
        await asyncio.gather(*(loop.stop() for loop in self._loops), *senders, return_exceptions=True)
        await self._children_requester.close()
        try:  # what is left unrecorded is requested again after a restart (idempotent)
            await asyncio.wait_for(self._recorder.close(), timeout=self._deadline)
        except Exception as err:
            log.warning("dispatched children not recorded at stop: %s", err)

    async def _loop(self, name: str, work: Callable[[], Awaitable[bool]]) -> None:
        """Runs `work` when woken (or every retry_interval); `work` returns True if more is ready."""
        wake = self._wake[name]
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=self._settings.retry_interval)
            wake.clear()
            if not self._lease.valid:
                continue  # a peer may take these commands over meanwhile (see `_regained`)
            try:
                if await work():
                    wake.set()
            except Exception as err:
                log_failed_round(_repeats, f"carrying out {name} commands", err)
                await asyncio.sleep(self._settings.retry_interval)

    async def _sweep_loop(self) -> None:
        """Runs `sweep` every recovery interval, and at least every third of a lease time (a dead
        replica's commands are taken over soon after its lease expires); a failed one is tried
        again at the next."""
        interval = min(self._settings.recovery_interval, self._lease.ttl / 3)
        while not self._closed:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception as err:
                log_failed_round(_repeats, "recovery sweep", err)

    # --- the three kinds of command ----------------------------------------------------------

    async def _dispatch(self) -> bool:
        """Sends the next batch of child requests; up to DISPATCH_WINDOW batches are in flight at
        once, so one batch's answer is awaited while the next is sent. A batch holds at most
        DISPATCH_BATCH children and half the message size limit (a larger child goes alone); a
        child of a batch the scheduler refused as a whole is sent on its own (`_not_taken`)."""
        batch: list[PendingChild] = []
        size = 0
        refused: list[Refusal] = []
        for ref, child in self._children.items():
            if ref in self._in_flight:
                continue
            if ref in self._cancels:
                refused.append(
                    Refusal(ref.workflow_id, ref.run_key, ExecutionState.CANCELLED, "cancelled before it was requested")
                )
                continue
            if ref in self._alone:
                batch = batch or [child]
                break
            size += child.request.ByteSize()
            if batch and size > self._batch_bytes:
                break
            batch.append(child)
            if len(batch) >= DISPATCH_BATCH:
                break
        if refused:
            await self._refuse(refused)
            self._cancels.difference_update(RunRef(r.workflow_id, r.run_key) for r in refused)
        if not batch:
            return False
        await self._window.acquire()
        self._in_flight.update(RunRef(c.workflow_id, c.run_key) for c in batch)
        self._track(asyncio.create_task(self._send(batch), name="coordinator-dispatch-batch"))
        return len(self._children) > len(self._in_flight)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._senders.add(task)
        task.add_done_callback(self._senders.discard)

    async def _send(self, batch: list[PendingChild]) -> None:
        """One batch of child requests; accepted children are recorded, refused ones end."""
        refs = [RunRef(c.workflow_id, c.run_key) for c in batch]
        alone = len(refs) == 1 and refs[0] in self._alone
        log.debug("requesting %d children", len(batch))
        try:
            try:
                if alone:
                    answers = [await self._children_requester.request_one(batch[0].request)]
                else:
                    answers = await self._children_requester.request([c.request for c in batch])
            except grpc.aio.AioRpcError as err:
                await self._not_taken(batch, err, alone=alone)
                return
            accepted: list[DispatchedChild] = []
            refused: list[Refusal] = []
            for child, outcome in zip(batch, answers, strict=True):
                if outcome.execution_id:
                    accepted.append(DispatchedChild(child.workflow_id, child.run_key, outcome.execution_id))
                else:
                    refused.append(
                        Refusal(
                            child.workflow_id,
                            child.run_key,
                            ExecutionState.FAILED,
                            outcome.error or "the scheduler refused the child execution",
                        )
                    )
            for a in accepted:
                self._children.pop(RunRef(a.workflow_id, a.run_key), None)
                self._alone.discard(RunRef(a.workflow_id, a.run_key))
                self._recording.add(RunRef(a.workflow_id, a.run_key))
            if accepted:
                self._track(asyncio.create_task(self._record(accepted), name="coordinator-record-dispatched"))
            if refused:
                await self._refuse(refused)
        except Exception as err:
            log_failed_round(_repeats, "dispatching child requests", err)
            await asyncio.sleep(self._settings.retry_interval)
        finally:
            self._in_flight.difference_update(refs)
            self._window.release()
            self._wake["dispatch"].set()

    async def _record(self, accepted: list[DispatchedChild]) -> None:
        """Records accepted children (child id, dispatched) in lingering batches. Nothing waits
        for it: until it is durable a crash only means the child is requested again after the
        restart (the scheduler answers a request_id it knows with the same execution), and a
        cancel of the task run waits for it (it needs the child's id)."""
        try:
            while True:
                try:
                    await self._recorder.submit_many(accepted)
                    break
                except Exception as err:
                    log_failed_round(_repeats, "recording dispatched children", err)
                    await asyncio.sleep(self._settings.retry_interval)
        finally:
            self._recording.difference_update(RunRef(a.workflow_id, a.run_key) for a in accepted)
        if any(RunRef(a.workflow_id, a.run_key) in self._cancels for a in accepted):
            self._wake["cancel"].set()

    async def _write_dispatched(self, rows: list[DispatchedChild]) -> list[None]:
        if self._db.is_sqlite:
            async with self._db.write() as conn:
                await mark_dispatched(conn, rows)
        else:
            async with self._db.asyncpg(rows=len(rows)) as raw:
                await mark_dispatched_asyncpg(raw, rows)
        return [None] * len(rows)

    async def _refuse(self, refused: list[Refusal]) -> None:
        for r in refused:
            log.warning("task run %s of workflow %s ends %s: %s", r.run_key, r.workflow_id, r.state, r.error)
        await self.on_refused(refused)
        for r in refused:
            self._children.pop(RunRef(r.workflow_id, r.run_key), None)
            self._alone.discard(RunRef(r.workflow_id, r.run_key))

    async def _not_taken(self, batch: list[PendingChild], err: grpc.aio.AioRpcError, *, alone: bool) -> None:
        """A batch the scheduler did not answer. With a RETRIED code it is sent again after
        `retry_interval`. Otherwise the answer would be the same next time, yet it may be one
        child's doing: the scheduler answers a child it cannot store with an error of that child's
        own, but a message over the size limit, or a bug, fails the whole batch (and, on the
        stream, every batch in flight on it). So each child is asked for again in a call of its
        own, and one refused there fails its task run with the code and message."""
        code = err.code()
        if code in RETRIED:
            _repeats.warning(
                "child requests not taken",
                "scheduler did not take %d child requests (%s: %s); retrying",
                len(batch),
                code.name,
                err.details(),
            )
            await asyncio.sleep(self._settings.retry_interval)
            return
        if not alone:
            log.warning(
                "scheduler refused %d child requests as a whole (%s: %s); asking for each on its own",
                len(batch),
                code.name,
                err.details(),
            )
            self._alone.update(RunRef(c.workflow_id, c.run_key) for c in batch)
            return
        (child,) = batch
        reason = f"the scheduler refused the child request ({code.name}: {err.details()})"
        await self._refuse([Refusal(child.workflow_id, child.run_key, ExecutionState.FAILED, reason)])

    async def _cancel(self) -> bool:
        ready = [
            ref
            for ref in self._cancels
            if ref not in self._children and ref not in self._in_flight and ref not in self._recording
        ]
        if not ready:
            return False
        tr = task_runs
        by_workflow: dict[str, list[str]] = {}
        for workflow_id, run_key in ready:
            by_workflow.setdefault(workflow_id, []).append(run_key)
        rows: dict[RunRef, Any] = {}  # run_key, child_execution_id, finished_at
        async with self._db.read() as conn:  # one read per workflow (and DISPATCH_BATCH runs), not per run
            for workflow_id, run_keys in by_workflow.items():
                for start in range(0, len(run_keys), DISPATCH_BATCH):
                    found = await conn.execute(
                        sa.select(tr.c.run_key, tr.c.child_execution_id, tr.c.finished_at).where(
                            tr.c.workflow_id == workflow_id, tr.c.run_key.in_(run_keys[start : start + DISPATCH_BATCH])
                        )
                    )
                    rows.update((RunRef(workflow_id, row.run_key), row) for row in found)
        # Concurrent, so that the scheduler cancels a wide fan-out's children in shared batches
        # (one call after another, cancelling a 1,000-wide with-items took 45-68 s, now 10-14 s);
        # bounded so a huge cancel does not open thousands of calls at once.
        window = asyncio.Semaphore(CANCEL_WINDOW)

        async def cancel(ref: RunRef) -> None:
            row = rows.get(ref)
            if row is None or row.finished_at is not None or not row.child_execution_id:
                self._cancels.discard(ref)  # gone, ended, or refused: nothing to cancel
                return
            try:
                async with window:
                    await self._child_service.CancelChildExecution(
                        child_pb2.CancelChildExecutionRequest(id=row.child_execution_id), timeout=self._deadline
                    )
            except grpc.aio.AioRpcError as err:
                if err.code() in RETRIED:
                    _repeats.warning(
                        "cancels not delivered",
                        "cancel of child %s not delivered (%s); retrying",
                        row.child_execution_id,
                        err.code().name,
                    )
                    return
                level = logging.INFO if err.code() == grpc.StatusCode.NOT_FOUND else logging.WARNING  # final
                log.log(level, "cancel of child %s: %s: %s", row.child_execution_id, err.code().name, err.details())
            self._cancels.discard(ref)
            self._delivered.add(ref)  # answered: the sweep does not send it again

        await asyncio.gather(*(cancel(ref) for ref in ready))
        return False

    async def _finish(self) -> bool:
        batch = list(self._finishes.values())[:FINISH_BATCH]
        if not batch:
            return False
        done = await asyncio.gather(*(self._submit(f) for f in batch))
        reported = [f.workflow_id for f, ok in zip(batch, done, strict=True) if ok]
        if reported:
            async with self._db.write() as conn:
                await mark_finish_reported(conn, reported)
            for workflow_id in reported:
                self._finishes.pop(workflow_id, None)
            self.on_reported(reported)
        if len(reported) < len(batch):
            await asyncio.sleep(self._settings.retry_interval)
        return bool(self._finishes)

    async def _submit(self, f: PendingFinish) -> bool:
        result = completion_pb2.ExecutionResult(
            execution_id=f.workflow_id,
            state=execution_state_to_proto(f.status),
            # Stored whole up to ATTUNE_MAX_WORKFLOW_RESULT_BYTES (the channel may carry that much).
            result_json=fit_result(dumps(f.result), self._settings.max_workflow_result_bytes),
            error=f.error or "",
            finished_at=f.finished_at,
            trace=common_pb2.TraceContext(traceparent=f.traceparent),
            reporter="coordinator",
        )
        try:
            await self._completion.SubmitResult(
                completion_pb2.SubmitResultRequest(result=result), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as err:
            if err.code() in RESULT_RETRIED:
                _repeats.warning(
                    "results not delivered",
                    "result of workflow %s not delivered (%s); retrying",
                    f.workflow_id,
                    err.code().name,
                )
                return False
            log.error(
                "completion refused the result of workflow %s: %s: %s", f.workflow_id, err.code().name, err.details()
            )
        return True


async def _nothing(_: Sequence[Refusal]) -> None:
    return None
