"""Dispatch: executions waiting in "scheduling" go to connected workers (docs/architecture.md, Services).

Rows arrive in memory right after their insert (and from the sweeper's scans). The dispatch task
pairs them with workers that advertise the action's runtime and have a free slot, least loaded
first, moves them scheduling → scheduled in one compare-and-set per worker and batch, then sends
one `Assignments` message per worker. Slots are reserved before the database write, so
concurrent releases never over-fill a worker. Workflow actions never come here.

An execution of an action with a concurrency policy is claimed only when its key has a free slot
(concurrency.py decides in the claim's transaction); one that must wait is held here and tried
again at each wake and every RETRY_INTERVAL (a slot may free on another replica), one
refused is handed to the completion service as `cancelled`.

Fast path: when nothing older waits for the runtime and a worker has a free slot at request time,
`reserve` hands the request writer that slot, the row is inserted already `scheduled` in the
request's own group commit, and `assign_reserved` sends it — one transaction and one hop fewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from opentelemetry.trace import SpanKind

from attune import metrics, telemetry
from attune.background import BackgroundTask
from attune.common.v1 import common_pb2
from attune.internal.worker.v1 import worker_pb2
from attune.logs import ThrottledLog
from attune.packs import SLOT_FREE_RUNTIMES, ConcurrencyPolicy
from attune.security.sealing import Sealer, SecretKeyError, is_sealed, open_parameters
from attune.states import ExecutionState
from attune.storage import Database, log_failed_round
from attune.storage.batching import GroupCommitter
from attune.storage.schema import executions
from attune_services.scheduler.actions import ActionCache
from attune_services.scheduler.concurrency import RETRY_INTERVAL, Admission, Candidate, admit
from attune_services.scheduler.giveups import GiveUp, ResultSubmitter
from attune_services.scheduler.sessions import WorkerSession
from attune_services.scheduler.views import workflow_link_of

log = logging.getLogger(__name__)
_failures = ThrottledLog(log)
_tracer = telemetry.tracer(__name__)
_ASSIGNMENTS = "attune.internal.worker.v1.WorkerService/Connect"

MAX_BATCH = 1000  # executions per dispatch round
MAX_ASSIGNMENTS_PER_MESSAGE = 256


def _fits(session: WorkerSession, runtime: str) -> bool:
    """The session offers the runtime and can take one more execution of it now (not leaving)."""
    return runtime in session.runtimes and (session.free > 0 or runtime in SLOT_FREE_RUNTIMES) and not session.leaving


@dataclass(frozen=True, kw_only=True)
class PendingExecution:
    """What an assignment needs from an executions row."""

    id: str
    action_ref: str
    runtime: str
    parameters_json: str
    secret_names: list[str]
    timeout: float | None
    traceparent: str
    created_at: float
    parent_id: str | None = None
    concurrency_key: str | None = None  # set when its action has a concurrency policy
    # The workflow task run of a workflow child (None for a top-level execution): the worker
    # exports it to the action, which cannot otherwise tell which run it belongs to.
    link: common_pb2.WorkflowLink | None = field(default=None, compare=False)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PendingExecution:
        """From a row of `executions` (a fresh insert's dict or a row read back by the sweeper)."""
        return cls(
            id=row["id"],
            action_ref=row["action_ref"],
            runtime=row["runner_type"],
            parameters_json=row["parameters"] or "{}",
            secret_names=json.loads(row["secret_names"] or "[]"),
            timeout=row["timeout"],
            traceparent=row["traceparent"] or "",
            created_at=row["created_at"],
            parent_id=row.get("parent_id"),
            concurrency_key=row.get("concurrency_key"),
            link=workflow_link_of(row),
        )


class Dispatcher:
    """Owns the connected workers and the executions waiting for one."""

    def __init__(
        self,
        db: Database,
        cache: ActionCache,
        *,
        on_changed: Callable[[Iterable[str]], None] | None = None,
        sealer: Sealer | None = None,
        submitter: ResultSubmitter | None = None,
    ) -> None:
        self._db = db
        self._submitter = submitter  # takes the executions a concurrency policy cancels
        self._sealer = sealer  # opens sealed secret parameters for the assignment, in memory only
        self._cache = cache
        self._on_changed = on_changed or (lambda ids: None)  # wakes the watches of changed executions
        self.sessions: dict[str, WorkerSession] = {}
        self.lost_since: dict[str, float] = {}  # worker id → when its stream ended
        self._pending: dict[str, dict[str, PendingExecution]] = {}  # runtime → id → row, oldest first
        self._wake = asyncio.Event()
        self._loop = BackgroundTask("dispatch", self._run)
        self._stopped = False
        self._claiming: set[str] = set()  # taken from the queues, compare-and-set not yet done
        self._reserved: dict[str, WorkerSession] = {}  # slots held for rows being inserted scheduled
        self._presend: dict[WorkerSession, list[PendingExecution]] = {}  # inserted scheduled, not yet sent
        self._unsent: set[str] = set()  # ids in _presend or being sent by _send_reserved
        self._progress = asyncio.Event()  # set whenever claimed or reserved rows have been handled
        self._held: dict[str, PendingExecution] = {}  # waiting for a slot of their concurrency key
        self._refusing: set[str] = set()  # cancelled by their policy, result not yet acknowledged
        self._refusals: set[asyncio.Task[None]] = set()
        self._started: GroupCommitter[tuple[str, float], None] = GroupCommitter(self._flush_started)
        metrics.EXECUTIONS_WAITING.watch(self._waiting_by_runtime)

    # --- executions ----------------------------------------------------------------------------

    def enqueue(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Adds rows in "scheduling" (ignored when already waiting) and wakes the dispatch task."""
        for row in rows:
            queue = self._pending.setdefault(row["runner_type"], {})
            if row["id"] not in queue and row["id"] not in self._held and row["id"] not in self._refusing:
                queue[row["id"]] = PendingExecution.from_row(row)
        self._wake.set()

    def reserve(self, row: Mapping[str, Any]) -> WorkerSession | None:
        """A free slot of the least loaded worker for a new row, when no older execution waits
        for its runtime (FIFO stays exact); the caller inserts the row scheduled on it, then calls
        `assign_reserved` (committed) or `unreserve` (not inserted)."""
        runtime = row["runner_type"]
        if self._stopped or self._pending.get(runtime):
            return None
        best: WorkerSession | None = None
        for session in self.sessions.values():
            if _fits(session, runtime) and not session.closed and (best is None or session.load < best.load):
                best = session
        if best is not None:
            if runtime not in SLOT_FREE_RUNTIMES:
                best.in_flight.add(row["id"])
            self._reserved[row["id"]] = best
        return best

    def unreserve(self, execution_ids: Iterable[str]) -> None:
        """Frees slots of `reserve` whose rows were not inserted."""
        for execution_id in execution_ids:
            session = self._reserved.pop(execution_id, None)
            if session is not None:
                session.in_flight.discard(execution_id)
                self._wake.set()

    def assign_reserved(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Rows committed `scheduled` on reserved slots: their assignments go out next."""
        for row in rows:
            session = self._reserved.pop(row["id"], None)
            if session is not None:
                self._presend.setdefault(session, []).append(PendingExecution.from_row(row))
                self._unsent.add(row["id"])
        self._on_changed(row["id"] for row in rows)
        self._wake.set()

    def forget(self, execution_ids: Iterable[str]) -> None:
        """Drops executions that no longer wait (cancelled, given up)."""
        ids = list(execution_ids)
        for queue in self._pending.values():
            for execution_id in ids:
                queue.pop(execution_id, None)
        for execution_id in ids:
            self._held.pop(execution_id, None)

    def is_pending(self, execution_id: str) -> bool:
        """True when the execution waits in memory for a worker, is being claimed for one, or is
        scheduled on one with its Assignment not yet queued on the worker's stream."""
        return (
            execution_id in self._claiming
            or execution_id in self._unsent
            or any(execution_id in q for q in self._pending.values())
        )

    async def until_sent(self, execution_ids: set[str], timeout: float) -> None:
        """Returns once none of `execution_ids` is pending (see `is_pending`): its Assignment is
        queued on its worker's stream, or it went back to waiting, or it was dropped — or after
        `timeout` seconds. Woken by the dispatch task each time it has handled rows."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._progress.clear()  # before the check: handling that ends after it wakes the wait
            if not any(self.is_pending(e) for e in execution_ids):
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                async with asyncio.timeout(remaining):
                    await self._progress.wait()
            except TimeoutError:
                return

    def waiting(self) -> list[PendingExecution]:
        """Every execution waiting for a worker (or for a slot of its concurrency key)."""
        return [p for q in self._pending.values() for p in q.values()] + list(self._held.values())

    def _waiting_by_runtime(self) -> dict[tuple[str, ...], float]:
        """`attune_executions_waiting`: how many wait here per runtime, 0 for each runtime a
        connected worker offers (read when scraped)."""
        runtimes = self.offered_runtimes() | set(self._pending)
        return {(runtime,): float(len(self._pending.get(runtime, ()))) for runtime in runtimes}

    def offered_runtimes(self) -> set[str]:
        """Runtimes some connected worker advertises."""
        return {r for s in self.sessions.values() for r in s.runtimes}

    def runtimes_with_room(self) -> set[str]:
        """Runtimes some connected worker can take one more execution of now, with nothing of
        them waiting here: rows another replica could not place may come here."""
        return {
            r
            for s in self.sessions.values()
            if not s.closed
            for r in s.runtimes
            if _fits(s, r) and not self._pending.get(r)
        }

    # --- workers -------------------------------------------------------------------------------

    def attach(self, session: WorkerSession) -> None:
        """A worker said Hello: it replaces any older stream of the same worker id."""
        old = self.sessions.get(session.worker_id)
        if old is not None:
            old.close()
        session.in_flight.update(session.held)
        self.sessions[session.worker_id] = session
        self._wake.set()

    def detach(self, session: WorkerSession) -> None:
        """A worker's stream ended; its executions wait for it for the grace period."""
        session.close()
        worker_id: str = session.worker_id
        if self.sessions.get(worker_id) is session:
            del self.sessions[worker_id]
            self.lost_since[worker_id] = time.time()

    def released(self, session: WorkerSession, execution_ids: Iterable[str]) -> None:
        """Slots freed by a worker (their results are durable: their cancels are moot)."""
        ids = set(execution_ids)
        session.in_flight -= ids
        session.assigned -= ids
        session.cancels_sent -= ids
        self._wake.set()

    async def started(self, items: Sequence[tuple[str, float]]) -> None:
        """Processes started: scheduled → running (group-committed across workers)."""
        if items:
            await self._started.submit_many(items)

    def send_cancellations(self, worker_id: str, execution_ids: list[str]) -> bool:
        """Asks a worker connected here to stop executions; False when it is not connected here
        (the replica holding its stream relays the cancel from the database: relay.py)."""
        session = self.sessions.get(worker_id)
        if session is None:
            return False
        session.send(worker_pb2.ConnectResponse(cancellations=worker_pb2.Cancellations(execution_ids=execution_ids)))
        session.cancels_sent.update(execution_ids)
        return True

    # --- the dispatch task ---------------------------------------------------------------------

    def start(self) -> None:
        """Starts the dispatch task."""
        self._loop.start()

    async def stop(self) -> None:
        """Stops dispatching (assignments already sent stay with their workers)."""
        self._stopped = True
        self._wake.set()
        await self._loop.stop(grace=None)  # it sends the rows already scheduled, then returns
        await self._started.close()
        for task in list(self._refusals):
            task.cancel()
        # What still waits stays `scheduling` in the database for the next scheduler; not here.
        self._pending.clear()
        self._held.clear()

    async def _run(self) -> None:
        while True:
            if self._held:  # a slot may free on another replica: no wake would come from there
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RETRY_INTERVAL):
                        await self._wake.wait()
                held, self._held = self._held, {}
                self.enqueue_pending(sorted(held.values(), key=lambda p: p.id))  # oldest first
            else:
                await self._wake.wait()
            self._wake.clear()
            try:
                await self._send_reserved()  # even when stopping: these rows are already scheduled
                if self._stopped:
                    return
                while not self._stopped and await self._dispatch_round():
                    pass
            except Exception as err:
                log_failed_round(_failures, "dispatch round", err)
                if self._stopped:
                    return
                await asyncio.sleep(0.1)
                self._wake.set()

    async def _send_reserved(self) -> None:
        if not self._presend:
            return
        plan, self._presend = self._presend, {}
        ids = {p.id for items in plan.values() for p in items}
        try:
            await self._send(plan, ids)
        except BaseException:
            for session, items in plan.items():  # try again next round
                self._presend.setdefault(session, []).extend(items)
            raise
        self._unsent -= ids
        self._progress.set()

    async def _dispatch_round(self) -> int:
        """Assigns what fits now; returns how many were assigned (0: nothing more to do)."""
        plan: dict[WorkerSession, list[PendingExecution]] = {}
        planned = 0
        for runtime, queue in self._pending.items():
            if not queue or planned >= MAX_BATCH:
                continue
            heap = [(s.load, i, s) for i, s in enumerate(self.sessions.values()) if _fits(s, runtime)]
            heapq.heapify(heap)
            while heap and queue and planned < MAX_BATCH:
                _, i, session = heapq.heappop(heap)
                execution_id, pending = next(iter(queue.items()))
                del queue[execution_id]
                if runtime not in SLOT_FREE_RUNTIMES:
                    session.in_flight.add(execution_id)  # reserved before the write
                plan.setdefault(session, []).append(pending)
                planned += 1
                if _fits(session, runtime):
                    heapq.heappush(heap, (session.load, i, session))
        if not plan:
            return 0
        claiming = {p.id for items in plan.values() for p in items}
        self._claiming |= claiming
        try:
            assigned = await self._claim(plan)
            self._on_changed(assigned)
            self._on_changed(
                {p.parent_id for items in plan.values() for p in items if p.parent_id and p.id in assigned}
            )
            await self._send(plan, assigned)
        except BaseException:
            for session, items in plan.items():  # nothing was sent: free the reserved slots
                session.in_flight.difference_update(p.id for p in items)
            self.enqueue_pending(p for items in plan.values() for p in items)
            raise
        finally:
            self._claiming -= claiming
            self._progress.set()
        return planned

    async def _claim(self, plan: dict[WorkerSession, list[PendingExecution]]) -> set[str]:
        """scheduling → scheduled for the whole plan in one transaction; returns the ids that moved."""
        now = time.time()
        moved: set[str] = set()
        bound = [p for items in plan.values() for p in items if p.concurrency_key is not None]
        policies = await self._policies(bound)
        async with self._db.write() as conn:
            admission: Admission | None = None
            if policies:
                candidates = [Candidate(id=p.id, action_ref=p.action_ref, key=p.concurrency_key or "") for p in bound]
                admission = await admit(conn, candidates, policies, is_sqlite=self._db.is_sqlite)
            for session, items in plan.items():
                ids = [p.id for p in items if admission is None or not admission.keeps_back(p.id)]
                if not ids:
                    continue
                result = await conn.execute(
                    executions.update()
                    .where(executions.c.id.in_(ids), executions.c.state == ExecutionState.SCHEDULING)
                    .values(
                        state=ExecutionState.SCHEDULED, worker_id=session.worker_id, scheduled_at=now, updated_at=now
                    )
                    .returning(executions.c.id)
                )
                moved.update(result.scalars())
        if admission is not None:
            self._after_admission(admission, bound)
        return moved

    async def _policies(self, bound: list[PendingExecution]) -> dict[str, ConcurrencyPolicy]:
        """The concurrency policies of the actions of `bound`, by action ref."""
        if not bound:
            return {}
        actions = await self._cache.get_many({p.action_ref for p in bound})
        return {ref: a.concurrency for ref, a in actions.items() if a.concurrency is not None}

    def _after_admission(self, admission: Admission, bound: list[PendingExecution]) -> None:
        """Executions that wait for a slot are held; those refused go to the completion service."""
        refused: list[GiveUp] = []
        for pending in bound:
            if pending.id in admission.waiting:
                self._held[pending.id] = pending
            elif pending.id in admission.refused:
                refused.append(
                    GiveUp(pending.id, ExecutionState.CANCELLED, admission.refused[pending.id], pending.traceparent)
                )
        if refused and self._submitter is not None:
            self._refusing.update(g.execution_id for g in refused)
            task = asyncio.create_task(self._refuse(refused))
            self._refusals.add(task)
            task.add_done_callback(self._refusals.discard)

    async def _refuse(self, give_ups: list[GiveUp]) -> None:
        assert self._submitter is not None
        try:
            acked = await self._submitter.submit(give_ups)
            if acked:
                log.info("cancelled executions over their concurrency limit", extra={"count": len(acked)})
        finally:
            # One not acknowledged stays `scheduling`: the sweeper finds it again and it is re-decided.
            self._refusing.difference_update(g.execution_id for g in give_ups)

    async def _send(self, plan: dict[WorkerSession, list[PendingExecution]], assigned: set[str]) -> None:
        actions = await self._cache.get_many({p.action_ref for items in plan.values() for p in items})
        lost: list[str] = []
        for session, items in plan.items():
            batch: list[worker_pb2.Assignment] = []
            for pending in items:
                if pending.id not in assigned:  # cancelled or taken by another replica meanwhile
                    session.in_flight.discard(pending.id)
                    continue
                if session.closed:
                    session.in_flight.discard(pending.id)
                    lost.append(pending.id)
                    continue
                action = actions.get(pending.action_ref)
                batch.append(
                    worker_pb2.Assignment(
                        execution_id=pending.id,
                        action_ref=pending.action_ref,
                        runtime=pending.runtime,
                        entry_point=(action.entry_point or "") if action else "",
                        pack_ref=action.pack if action else pending.action_ref.partition(".")[0],
                        pack_digest=(action.pack_digest or "") if action else "",
                        parameters_json=self._plain_parameters(pending),
                        secret_names=pending.secret_names,
                        timeout_seconds=pending.timeout or 0.0,
                        trace=common_pb2.TraceContext(traceparent=_sent(pending, session.worker_id)),
                        parent_id=pending.parent_id or "",
                        link=pending.link,
                    )
                )
            session.assigned.update(a.execution_id for a in batch)
            for start in range(0, len(batch), MAX_ASSIGNMENTS_PER_MESSAGE):
                chunk = batch[start : start + MAX_ASSIGNMENTS_PER_MESSAGE]
                session.send(worker_pb2.ConnectResponse(assignments=worker_pb2.Assignments(assignments=chunk)))
        if lost:
            await self._unclaim(lost, plan)

    def _plain_parameters(self, pending: PendingExecution) -> bytes:
        """The parameters as the worker gets them: secret ones opened (they are stored sealed)."""
        if not pending.secret_names:
            return pending.parameters_json.encode()
        params = json.loads(pending.parameters_json)
        try:
            return json.dumps(open_parameters(self._sealer, params)).encode()
        except SecretKeyError as err:
            # Sent without them: the action fails on the missing values, and the log says why.
            log.error("execution %s: its secret parameters cannot be opened: %s", pending.id, err)
            return json.dumps({k: v for k, v in params.items() if not is_sealed(v)}).encode()

    async def _unclaim(self, execution_ids: list[str], plan: dict[WorkerSession, list[PendingExecution]]) -> None:
        """The worker's stream ended before its assignments were sent: back to scheduling."""
        async with self._db.write() as conn:
            result = await conn.execute(
                executions.update()
                .where(executions.c.id.in_(execution_ids), executions.c.state == ExecutionState.SCHEDULED)
                .values(state=ExecutionState.SCHEDULING, worker_id=None, scheduled_at=None, updated_at=time.time())
                .returning(executions.c.id)
            )
            back = set(result.scalars())
        self._on_changed(back)
        self.enqueue_pending([p for items in plan.values() for p in items if p.id in back])

    def enqueue_pending(self, items: Iterable[PendingExecution]) -> None:
        """Puts already-decoded rows back in their queue."""
        for pending in items:
            self._pending.setdefault(pending.runtime, {})[pending.id] = pending
        self._wake.set()

    async def _flush_started(self, items: list[tuple[str, float]]) -> list[None]:
        now = time.time()
        async with self._db.write() as conn:
            await conn.execute(
                executions.update()
                .where(executions.c.id == sa.bindparam("b_id"), executions.c.state == ExecutionState.SCHEDULED)
                .values(state=ExecutionState.RUNNING, started_at=sa.bindparam("b_started"), updated_at=now),
                [{"b_id": execution_id, "b_started": started_at or now} for execution_id, started_at in items],
            )
        self._on_changed([execution_id for execution_id, _ in items])
        return [None] * len(items)


def _sent(pending: PendingExecution, worker_id: str) -> str:
    """The trace context an assignment carries: while spans are exported, that of a PRODUCER span
    marking its dispatch to `worker_id` (the worker's run span is its CONSUMER); else the
    execution's own."""
    if not telemetry.exporting():
        return pending.traceparent
    attributes = {
        "attune.execution.id": pending.id,
        "attune.action.ref": pending.action_ref,
        "attune.worker.id": worker_id,
        **telemetry.messaging_attributes("send", _ASSIGNMENTS, message_id=pending.id),
    }
    span, traceparent = telemetry.start_span(
        _tracer, "execution.dispatch", pending.traceparent, attributes, kind=SpanKind.PRODUCER
    )
    span.end()
    return traceparent
