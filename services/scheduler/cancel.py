"""Cancelling an execution, by where it is (docs/architecture.md, Services).

- Not yet on a worker (requested, scheduling; an ask pending): → canceling, then a CANCELLED
  result to the completion service (the scheduler never writes terminal states).
- On a worker (scheduled, running): → canceling and a Cancellations message to that worker,
  which reports CANCELLED through the completion service.
- A running workflow: → canceling and CancelWorkflow to the coordinator.
- Already canceling: the message is sent again (idempotent). Terminal: FAILED_PRECONDITION.
  Unknown: NOT_FOUND.

Concurrent cancels share their statements (group commit, docs/architecture.md, Durability): a batch is one
compare-and-set of every id to canceling, one Cancellations message per worker, one submission
of give-ups to the completion service and one read of the rows to answer with. On PostgreSQL the
compare-and-set is one statement that also reads the rows it did not move (`_CANCEL_PG`); on
SQLite a read and an UPDATE under the write lock. 2,000 concurrent cancels of waiting executions
went from ~100/s (a read, an UPDATE and another read each) to 870-1,380/s (PostgreSQL, probe).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from attune.config import Settings
from attune.grpcutil.errors import AttuneError, FailedPrecondition, NotFound, Unavailable, quoted
from attune.internal.workflow.v1 import workflow_pb2 as coordinator_pb2
from attune.internal.workflow.v1 import workflow_pb2_grpc as coordinator_pb2_grpc
from attune.states import TERMINAL, ExecutionState
from attune.storage import Database
from attune.storage.batching import GroupCommitter
from attune.storage.schema import executions
from attune_services.scheduler.dispatch import Dispatcher
from attune_services.scheduler.giveups import GiveUp, ResultSubmitter

log = logging.getLogger(__name__)

Row = dict[str, Any]

#: States a cancel moves to canceling.
CANCELABLE = (
    ExecutionState.REQUESTED,
    ExecutionState.SCHEDULING,
    ExecutionState.SCHEDULED,
    ExecutionState.RUNNING,
    ExecutionState.PENDING,  # an ask waiting for its answer: cancelled like one not yet dispatched
    ExecutionState.PAUSING,  # a paused workflow: CancelWorkflow to the coordinator, as a running one
    ExecutionState.PAUSED,
)
#: Compare-and-set rounds for an execution whose state moved between the UPDATE and the read.
CAS_ROUNDS = 5
#: Attempts of the PostgreSQL statement that met a deadlock or a serialization failure.
DEADLOCK_ATTEMPTS = 3
_RETRY_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure


@dataclass(frozen=True)
class _Refused:
    """A cancel refused within a batch: its caller alone gets `error(message)` raised."""

    error: type[AttuneError]
    message: str


_Outcome = Row | _Refused


class Canceller:
    """Applies CancelExecution (and the scheduler's side of CancelWorkflow)."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        dispatcher: Dispatcher,
        submitter: ResultSubmitter,
        coordinator: coordinator_pb2_grpc.CoordinatorServiceStub,
        on_changed: Callable[[Iterable[str]], None] | None = None,
    ) -> None:
        self._on_changed = on_changed or (lambda ids: None)  # wakes the watches of changed executions
        self._db = db
        self._settings = settings
        self._dispatcher = dispatcher
        self._submitter = submitter
        self._coordinator = coordinator
        self._committer: GroupCommitter[str, _Outcome] = GroupCommitter(self._cancel_batch)
        self._closed = False

    async def cancel(self, execution_id: str) -> Row:
        """Cancels one execution; returns its row after the request."""
        if self._closed:
            raise Unavailable(f"the scheduler is shutting down; retry the cancel of execution {execution_id}")
        outcome = await self._committer.submit(execution_id)
        if isinstance(outcome, _Refused):
            raise outcome.error(outcome.message)
        return outcome

    async def close(self) -> None:
        """Carries out the cancels already queued; later ones are refused as UNAVAILABLE."""
        self._closed = True
        await self._committer.close()

    async def _cancel_batch(self, ids: list[str]) -> list[_Outcome]:
        """Cancels a batch; one outcome per id, in order (a repeated id shares one outcome)."""
        canceling, outcomes = await self._settle(list(dict.fromkeys(ids)))
        if canceling:
            self._on_changed([*(r["id"] for r in canceling), *(r["parent_id"] for r in canceling if r["parent_id"])])
            unreachable = await self._notify(canceling)
            current = await self._read([r["id"] for r in canceling if r["id"] not in unreachable])
            for row in canceling:
                execution_id = row["id"]
                if execution_id in unreachable:
                    outcomes[execution_id] = _Refused(Unavailable, unreachable[execution_id])
                else:
                    outcomes[execution_id] = current.get(execution_id) or _Refused(
                        NotFound, f"no execution {quoted(execution_id)}"
                    )
        return [outcomes[execution_id] for execution_id in ids]

    async def _settle(self, ids: list[str]) -> tuple[list[Row], dict[str, _Outcome]]:
        """Moves the batch to canceling: (the rows canceling now, whoever moved them; the refusals)."""
        canceling: list[Row] = []
        refused: dict[str, _Outcome] = {}
        pending = ids
        for _ in range(CAS_ROUNDS):
            moved, others = await self._to_canceling(pending)
            canceling += moved.values()
            retry: list[str] = []
            for execution_id in pending:
                if execution_id in moved:
                    continue
                row = others.get(execution_id)
                if row is None:
                    refused[execution_id] = _Refused(NotFound, f"no execution {quoted(execution_id)}")
                elif row["state"] in TERMINAL:
                    refused[execution_id] = _Refused(
                        FailedPrecondition, f"execution {execution_id} already {row['state']}"
                    )
                elif row["state"] == ExecutionState.CANCELING:
                    canceling.append(row)
                else:  # read before a concurrent transition the UPDATE waited for (PostgreSQL)
                    retry.append(execution_id)
            pending = retry
            if not pending:
                break
        for execution_id in pending:
            refused[execution_id] = _Refused(
                FailedPrecondition, f"execution {execution_id} keeps changing state; retry the cancel"
            )
        return canceling, refused

    async def _to_canceling(self, ids: Sequence[str]) -> tuple[dict[str, Row], dict[str, Row]]:
        """Moves those of `ids` in a CANCELABLE state to canceling: (the rows moved, as they are
        now; the other rows found, as read)."""
        now = time.time()
        if not self._db.is_sqlite:
            records = await self._cancel_pg(ids, now)
            moved: dict[str, Row] = {}
            others: dict[str, Row] = {}
            for record in records:
                row = dict(record)
                (moved if row.pop("cancel_moved") else others)[row["id"]] = row
            return moved, others
        async with self._db.write() as conn:  # BEGIN IMMEDIATE: no other writer between read and UPDATE
            others = await _rows_by_id(conn, ids)
            movable = [execution_id for execution_id, row in others.items() if row["state"] in CANCELABLE]
            if movable:
                await conn.execute(
                    executions.update()
                    .where(executions.c.id.in_(movable), executions.c.state.in_(CANCELABLE))
                    .values(state=ExecutionState.CANCELING, updated_at=now)
                )
        moved = {
            execution_id: {**others.pop(execution_id), "state": ExecutionState.CANCELING, "updated_at": now}
            for execution_id in movable
        }
        return moved, others

    async def _cancel_pg(self, ids: Sequence[str], now: float) -> list[Any]:
        # The rows are locked in id order, as the completion service locks its batches; a
        # deadlock with a writer that locks in another order (the dispatcher's claim of several
        # workers' rows) is tried again: the statement is atomic, a failed one changed nothing.
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                async with self._db.asyncpg(rows=len(ids)) as raw:
                    return list(await raw.fetch(_CANCEL_PG, list(ids), now, list(CANCELABLE)))
            except asyncpg.exceptions.PostgresError as err:
                if attempt == DEADLOCK_ATTEMPTS or err.sqlstate not in _RETRY_SQLSTATES:
                    raise
                log.warning("cancel batch of %d met a concurrent writer (attempt %d): %s", len(ids), attempt, err)
        raise AssertionError("unreachable")

    async def _read(self, ids: Sequence[str]) -> dict[str, Row]:
        if not ids:
            return {}
        if not self._db.is_sqlite:
            async with self._db.asyncpg() as raw:
                return {record["id"]: dict(record) for record in await raw.fetch(_READ_PG, list(ids))}
        async with self._db.read() as conn:
            return await _rows_by_id(conn, ids)

    async def _notify(self, rows: Sequence[Row]) -> dict[str, str]:
        """Tells whoever holds each execution (every row is canceling now) to stop it; returns the
        workflows whose coordinator is unreachable, with the error for their callers."""
        workflows: list[str] = []
        by_worker: dict[str, list[str]] = defaultdict(list)
        give_ups: list[GiveUp] = []
        for row in rows:
            # A workflow gets started_at when the coordinator takes it (scheduling → running).
            if row["runner_type"] == "workflow" and row["started_at"]:
                workflows.append(row["id"])
            elif row["worker_id"]:
                by_worker[row["worker_id"]].append(row["id"])
            else:
                give_ups.append(
                    GiveUp(
                        row["id"],
                        ExecutionState.CANCELLED,
                        "cancelled before it was dispatched",
                        row["traceparent"] or "",
                    )
                )
        _, _, *errors = await asyncio.gather(
            self._tell_workers(by_worker),
            self._give_up(give_ups),
            *(self._cancel_workflow(execution_id) for execution_id in workflows),
        )
        return {execution_id: error for execution_id, error in zip(workflows, errors, strict=True) if error is not None}

    async def _tell_workers(self, by_worker: dict[str, list[str]]) -> None:
        """One Cancellations message per worker. An execution the dispatcher is still assigning
        (its claim, or its insert on a reserved slot, committed; its Assignment not yet queued)
        is held back until the dispatcher has queued it: a worker ignores the cancel of an
        execution it does not know, then would run it."""
        assigning = {e for ids in by_worker.values() for e in ids if self._dispatcher.is_pending(e)}
        for worker_id, execution_ids in by_worker.items():
            if now := [e for e in execution_ids if e not in assigning]:
                # If the worker is away, it hears it on reconnect (or its executions are abandoned).
                self._dispatcher.send_cancellations(worker_id, now)
        if not assigning:
            return
        await self._dispatcher.until_sent(assigning, timeout=max(self._settings.shutdown_grace, 1.0))
        for worker_id, execution_ids in by_worker.items():
            if later := [e for e in execution_ids if e in assigning]:
                self._dispatcher.send_cancellations(worker_id, later)

    async def _give_up(self, give_ups: list[GiveUp]) -> None:
        if not give_ups:
            return
        self._dispatcher.forget([g.execution_id for g in give_ups])
        acked = await self._submitter.submit(give_ups)
        for give_up in give_ups:
            if give_up.execution_id not in acked:
                # Stays canceling; the sweeper submits it again.
                log.warning(
                    "completion service did not confirm a cancel yet", extra={"execution_id": give_up.execution_id}
                )

    async def _cancel_workflow(self, execution_id: str) -> str | None:
        """CancelWorkflow to the coordinator; the error for the caller when it is unreachable."""
        try:
            await self._coordinator.CancelWorkflow(
                coordinator_pb2.CancelWorkflowRequest(execution_id=execution_id),
                timeout=max(self._settings.shutdown_grace, 1.0),
            )
        except grpc.RpcError as err:
            log.warning("coordinator did not take the cancel", extra={"execution_id": execution_id, "error": str(err)})
            if err.code() == grpc.StatusCode.UNAVAILABLE:
                return f"execution {execution_id} is canceling; the coordinator is unreachable"
        return None


# The UPDATE and the read of the rows it did not move, in one statement. The read sees the
# statement's snapshot: a row the UPDATE skipped after waiting for a concurrent transition (to a
# terminal state) may still show its old state there, and is tried again (CAS_ROUNDS).
_CANCEL_PG = f"""
WITH locked AS (
    SELECT id FROM executions WHERE id = ANY($1::text[]) AND state = ANY($3::text[]) ORDER BY id FOR UPDATE
), moved AS (
    UPDATE executions AS e SET state = '{ExecutionState.CANCELING}', updated_at = $2
    FROM locked WHERE e.id = locked.id AND e.state = ANY($3::text[])
    RETURNING e.*
)
SELECT true AS cancel_moved, * FROM moved
UNION ALL
SELECT false, * FROM executions WHERE id = ANY($1::text[]) AND id NOT IN (SELECT id FROM moved)
"""
_READ_PG = "SELECT * FROM executions WHERE id = ANY($1::text[])"


async def _rows_by_id(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, Row]:
    """The executions rows of `ids` that exist, by id (the SQLite path; PostgreSQL has its own)."""
    found = await conn.execute(sa.select(executions).where(executions.c.id.in_(ids)))
    return {row["id"]: dict(row) for row in found.mappings()}
