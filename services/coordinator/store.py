"""The coordinator's tables: loading a workflow and writing what one event did, in one transaction.

A `StepWrite` is everything one engine event changed for one workflow. `write_steps` applies a
batch of them (different workflows) in ONE transaction — the group commit — each guarded by a
compare-and-set on `workflow_executions.version`, so a step computed from a stale copy of a
workflow (another replica advanced it) is refused and recomputed instead of applied twice.
Task runs are inserted with ON CONFLICT DO NOTHING on (workflow_id, run_key): a run that already
exists is never scheduled again. On PostgreSQL the common part of a step (CAS, entries, task runs)
is one statement (`pg_steps`); SQLite takes the statements here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from attune.states import ExecutionState
from attune.storage import dialect_insert
from attune.storage.leases import owned_by_dead_replica
from attune.storage.schema import (
    TASK_RUN_COMMAND_PENDING,
    WORKFLOW_RESULT_UNREPORTED,
    task_runs,
    workflow_definitions,
    workflow_executions,
    workflow_state_entries,
    workflow_timers,
)
from attune_services.coordinator.pg_steps import fast_path_applies, write_step_pg
from attune_services.coordinator.rows import DispatchedChild, RunRef, StepOutcome, StepWrite, dump_json


async def write_steps(
    conn: AsyncConnection, batch: Sequence[StepWrite], *, owner: str | None = None
) -> list[StepOutcome]:
    """Applies a batch of steps in the caller's transaction; one outcome per step, in order.
    `owner` (the replica that carries out the steps' commands) is recorded on their new task
    runs, cancels and finishes: other replicas take those over only once its lease expires."""
    fast = conn.dialect.name == "postgresql"
    outcomes: list[StepOutcome] = []
    whole: list[StepWrite] = []  # accepted steps written here entirely
    rest: list[StepWrite] = []  # accepted steps whose common part the fast path wrote
    created = await _create_workflows(conn, [w for w in batch if w.create is not None], owner)
    for w in batch:
        if w.create is not None:
            outcome = StepOutcome.APPLIED if w.workflow_id in created else StepOutcome.EXISTS
            if outcome == StepOutcome.APPLIED:
                whole.append(w)
        elif fast and fast_path_applies(w):
            outcome = await write_step_pg(conn, w, owner=owner)
            if outcome == StepOutcome.APPLIED:
                rest.append(w)
        else:
            outcome = await _claim(conn, w, owner)
            if outcome == StepOutcome.APPLIED:
                whole.append(w)
        outcomes.append(outcome)
    definitions = {w.definition.digest: w.definition.compiled_json for w in whole if w.definition is not None}
    if definitions:
        stmt = dialect_insert(conn, workflow_definitions).on_conflict_do_nothing(index_elements=["digest"])
        await conn.execute(
            stmt, [{"digest": d, "compiled": c, "created_at": time.time()} for d, c in definitions.items()]
        )
    await _write_entries(conn, whole)
    await _insert_runs(conn, whole, owner)
    await _end_runs(conn, whole)
    await _cancel_runs(conn, [*whole, *rest], owner)
    await _write_timers(conn, [*whole, *rest])
    return outcomes


async def _create_workflows(conn: AsyncConnection, creates: Sequence[StepWrite], owner: str | None) -> set[str]:
    """Inserts the rows of new workflows in one statement; returns the ids actually inserted (a
    workflow already recorded — a retried hand-off — is left alone)."""
    if not creates:
        return set()
    we = workflow_executions
    rows = []
    for w in creates:
        assert w.create is not None
        c = w.create
        rows.append(
            {
                "id": c.id,
                "action_ref": c.action_ref,
                "status": w.status or ExecutionState.RUNNING,
                "definition_digest": c.definition_digest,
                "depth": c.depth,
                "traceparent": c.traceparent,
                "version": 1,
                "finish_reported": False,
                "created_at": c.created_at,
                "result": dump_json(w.finish.result) if w.finish else None,
                "error": w.finish.error if w.finish else None,
                "finished_at": w.finish.at if w.finish else None,
                "result_owner": owner if w.finish else None,
            }
        )
    stmt = dialect_insert(conn, we).on_conflict_do_nothing(index_elements=["id"]).returning(we.c.id)
    return set((await conn.execute(stmt, rows)).scalars())


async def _claim(conn: AsyncConnection, w: StepWrite, owner: str | None) -> StepOutcome:
    """Moves a workflow's version on by compare-and-set (or just checks it, for bookkeeping)."""
    we = workflow_executions
    if w.expected_version is None:
        return StepOutcome.APPLIED
    values: dict[str, Any] = {"version": w.expected_version + 1 if w.bump else w.expected_version}
    if w.status is not None:
        values["status"] = w.status
    if (f := w.finish) is not None:
        values.update(
            status=f.status,
            result=dump_json(f.result),
            error=f.error,
            finished_at=f.at,
            finish_reported=False,
            result_owner=owner,
        )
    stmt = sa.update(we).where(we.c.id == w.workflow_id, we.c.version == w.expected_version).values(**values)
    return StepOutcome.APPLIED if (await conn.execute(stmt)).rowcount == 1 else StepOutcome.CONFLICT


async def _write_entries(conn: AsyncConnection, steps: Iterable[StepWrite]) -> None:
    upserts: list[dict[str, Any]] = []
    deletes: list[dict[str, Any]] = []
    for w in steps:
        for key, value in w.entries.items():
            if value is None:
                deletes.append({"w": w.workflow_id, "k": key})
            else:
                upserts.append({"workflow_id": w.workflow_id, "key": key, "value": dump_json(value)})
    t = workflow_state_entries
    if upserts:
        stmt = dialect_insert(conn, t)
        stmt = stmt.on_conflict_do_update(index_elements=["workflow_id", "key"], set_={"value": stmt.excluded.value})
        await conn.execute(stmt, upserts)
    if deletes:
        stmt = sa.delete(t).where(t.c.workflow_id == sa.bindparam("w"), t.c.key == sa.bindparam("k"))
        await conn.execute(stmt, deletes)


async def _insert_runs(conn: AsyncConnection, steps: Sequence[StepWrite], owner: str | None) -> None:
    inserts = [
        {
            "workflow_id": w.workflow_id,
            "run_key": r.run_key,
            "seq": r.seq,
            "task_name": r.task_name,
            "run": r.run,
            "item_index": r.item_index,
            "attempt": r.attempt,
            "action_ref": r.action_ref,
            "state": ExecutionState.REQUESTED,
            "request": dump_json(r.request),
            "child_execution_id": None,
            "dispatched": False,
            "cancel_requested": False,
            "started_at": r.started_at,
            "finished_at": None,
            "owner": owner,
        }
        for w in steps
        for r in w.new_runs
    ]
    if inserts:
        # A run that already exists (a duplicate event) is left alone: never scheduled twice.
        stmt = dialect_insert(conn, task_runs).on_conflict_do_nothing(index_elements=["workflow_id", "run_key"])
        await conn.execute(stmt, inserts)


async def _end_runs(conn: AsyncConnection, steps: Sequence[StepWrite]) -> None:
    t = task_runs
    ended = [
        {"w": w.workflow_id, "k": r.run_key, "s": r.state, "at": r.finished_at, "c": r.child_execution_id or None}
        for w in steps
        for r in w.ended_runs
    ]
    if ended:
        stmt = (
            sa.update(t)
            .where(t.c.workflow_id == sa.bindparam("w"), t.c.run_key == sa.bindparam("k"), t.c.finished_at.is_(None))
            .values(
                state=sa.bindparam("s"),
                finished_at=sa.bindparam("at"),
                dispatched=True,
                child_execution_id=sa.func.coalesce(t.c.child_execution_id, sa.bindparam("c", type_=sa.String)),
            )
        )
        await conn.execute(stmt, ended)


async def _cancel_runs(conn: AsyncConnection, steps: Sequence[StepWrite], owner: str | None) -> None:
    """Marks cancels to deliver. A dispatched run's cancel is this replica's to deliver; a run not
    dispatched yet keeps its owner, the replica requesting its child, which finds the cancel
    (its own row) at its next sweep once the child is recorded."""
    t = task_runs
    cancels = [{"w": w.workflow_id, "k": key} for w in steps for key in w.cancel_runs]
    if cancels:
        stmt = (
            sa.update(t)
            .where(t.c.workflow_id == sa.bindparam("w"), t.c.run_key == sa.bindparam("k"))
            .values(
                cancel_requested=True,
                owner=sa.case((t.c.dispatched.is_(True), sa.literal(owner, sa.String)), else_=t.c.owner),
            )
        )
        await conn.execute(stmt, cancels)


async def _write_timers(conn: AsyncConnection, steps: Sequence[StepWrite]) -> None:
    t = workflow_timers
    sets: list[dict[str, Any]] = []
    deletes: list[dict[str, Any]] = []
    for w in steps:
        for timer_id, timer in w.timers.items():
            if timer is None:
                deletes.append({"w": w.workflow_id, "k": timer_id})
            else:
                sets.append(
                    {
                        "workflow_id": w.workflow_id,
                        "timer_id": timer_id,
                        "fire_at": timer.fire_at,
                        "purpose": timer.purpose,
                    }
                )
    if deletes:
        stmt = sa.delete(t).where(t.c.workflow_id == sa.bindparam("w"), t.c.timer_id == sa.bindparam("k"))
        await conn.execute(stmt, deletes)
    if sets:
        stmt = dialect_insert(conn, t)
        stmt = stmt.on_conflict_do_update(
            index_elements=["workflow_id", "timer_id"],
            set_={"fire_at": stmt.excluded.fire_at, "purpose": stmt.excluded.purpose},
        )
        await conn.execute(stmt, sets)
    finished = [{"w": w.workflow_id} for w in steps if w.finish is not None]
    if finished:
        # A finished workflow keeps no timers (the engine would ignore them anyway).
        await conn.execute(sa.delete(t).where(t.c.workflow_id == sa.bindparam("w")), finished)


# --- reads -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowRow:
    """What loading a workflow needs from its row."""

    id: str
    action_ref: str
    status: str
    definition_digest: str
    depth: int
    traceparent: str
    version: int


@dataclass(frozen=True, slots=True)
class StoredWorkflow:
    """A workflow as `load_workflow` reads it back."""

    row: WorkflowRow
    entries: dict[str, Any]  # its state entries, key → JSON value
    next_seq: int  # seq of its next task run


async def load_workflow(conn: AsyncConnection, workflow_id: str) -> StoredWorkflow | None:
    """The row, the state entries and the next task-run seq of a workflow; None when unknown."""
    we = workflow_executions
    row = (
        await conn.execute(
            sa.select(
                we.c.id,
                we.c.action_ref,
                we.c.status,
                we.c.definition_digest,
                we.c.depth,
                we.c.traceparent,
                we.c.version,
            ).where(we.c.id == workflow_id)
        )
    ).first()
    if row is None:
        return None
    e = workflow_state_entries
    entries = {
        key: json.loads(value)
        for key, value in (await conn.execute(sa.select(e.c.key, e.c.value).where(e.c.workflow_id == workflow_id)))
    }
    max_seq = (
        await conn.execute(sa.select(sa.func.max(task_runs.c.seq)).where(task_runs.c.workflow_id == workflow_id))
    ).scalar()
    wf = WorkflowRow(
        row.id, row.action_ref, row.status, row.definition_digest, row.depth, row.traceparent or "", row.version
    )
    return StoredWorkflow(wf, entries, (max_seq or 0) + 1)


async def load_definition(conn: AsyncConnection, digest: str) -> dict[str, Any] | None:
    """A stored compiled definition (its `to_dict()` form), or None."""
    t = workflow_definitions
    text = (await conn.execute(sa.select(t.c.compiled).where(t.c.digest == digest))).scalar()
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class Outbox:
    """Commands committed but not known to be carried out (carrier.py carries them out)."""

    #: Task runs whose child is still to request, in each workflow's seq order: workflow_id,
    #: run_key, seq, task_name, run, item_index, attempt, action_ref, request, started_at, depth,
    #: traceparent.
    children: list[sa.Row[Any]]
    #: Task runs still running with a cancel requested.
    cancels: list[RunRef]
    #: Finished workflows with their result unreported: id, status, result, error, traceparent,
    #: finished_at.
    finishes: list[sa.Row[Any]]


def outbox_queries(owner: str | None) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """The two reads of `read_outbox`: task runs with a command, and unreported results, of
    `owner` (None: of any replica). Each is answered from a partial index holding only outbox
    rows (`ix_task_runs_outbox`, `ix_workflow_executions_unreported`, whose predicates they
    repeat), so it costs what is pending, not the task runs and workflows stored (running or long
    ended). Hence no ORDER BY (SQLite would walk the primary key in order instead) and no test of
    the status (SQLite would prefer its index; `finished_at` is set only with a terminal status)."""
    tr, we = task_runs, workflow_executions
    runs = (
        sa.select(
            tr.c.workflow_id,
            tr.c.run_key,
            tr.c.seq,
            tr.c.task_name,
            tr.c.run,
            tr.c.item_index,
            tr.c.attempt,
            tr.c.action_ref,
            tr.c.request,
            tr.c.dispatched,
            tr.c.cancel_requested,
            tr.c.started_at,
            tr.c.finished_at,
            we.c.depth,
            we.c.traceparent,
        )
        .join(we, we.c.id == tr.c.workflow_id)
        .where(TASK_RUN_COMMAND_PENDING)
    )
    finishes = sa.select(we.c.id, we.c.status, we.c.result, we.c.error, we.c.traceparent, we.c.finished_at).where(
        WORKFLOW_RESULT_UNREPORTED
    )
    if owner is not None:
        runs = runs.where(tr.c.owner == owner)
        finishes = finishes.where(we.c.result_owner == owner)
    return runs, finishes


async def read_outbox(conn: AsyncConnection, *, owner: str | None) -> Outbox:
    """The coordinator's outbox: every command committed and not known to be carried out that
    `owner` carries out (None: any replica)."""
    runs_query, finishes_query = outbox_queries(owner)
    runs = sorted((await conn.execute(runs_query)).all(), key=lambda r: (r.workflow_id, r.seq))
    finishes = (await conn.execute(finishes_query)).all()
    return Outbox(
        children=[r for r in runs if not r.dispatched],
        cancels=[RunRef(r.workflow_id, r.run_key) for r in runs if r.cancel_requested and r.finished_at is None],
        finishes=list(finishes),
    )


@dataclass(frozen=True)
class Claimed:
    """Outbox rows a replica has just taken over: task runs and workflows (their results)."""

    runs: set[RunRef]
    finishes: set[str]


async def claim_outbox(
    conn: AsyncConnection, *, owner: str, kind: str, now: float, unowned_before: float | None
) -> Claimed:
    """Makes `owner` the owner of the outbox rows of replicas of `kind` whose lease has expired
    (or is gone), and of rows without an owner (written before leases) committed before
    `unowned_before` (None: all of them). One UPDATE per table: when two replicas claim at once,
    PostgreSQL re-checks the owner of a row the other has just claimed (alive: left alone), so
    each row goes to one."""
    runs_claim, finishes_claim = claim_statements(owner=owner, kind=kind, now=now, unowned_before=unowned_before)
    runs = await conn.execute(runs_claim)
    claimed_runs = {RunRef(r.workflow_id, r.run_key) for r in runs}
    finishes = await conn.execute(finishes_claim)
    return Claimed(claimed_runs, set(finishes.scalars()))


def claim_statements(
    *, owner: str, kind: str, now: float, unowned_before: float | None
) -> tuple[sa.UpdateBase, sa.UpdateBase]:
    """The two UPDATEs of `claim_outbox`; like `outbox_queries`, each repeats the predicate of its
    table's partial outbox index, so it walks the pending rows only."""
    tr, we = task_runs, workflow_executions
    unowned_runs: sa.ColumnElement[bool] = tr.c.owner.is_(None)
    unowned_finishes: sa.ColumnElement[bool] = we.c.result_owner.is_(None)
    if unowned_before is not None:
        unowned_runs = sa.and_(unowned_runs, tr.c.started_at < unowned_before)
        unowned_finishes = sa.and_(unowned_finishes, we.c.finished_at < unowned_before)
    runs = (
        sa.update(tr)
        .where(TASK_RUN_COMMAND_PENDING, sa.or_(owned_by_dead_replica(tr.c.owner, kind, now), unowned_runs))
        .values(owner=owner)
        .returning(tr.c.workflow_id, tr.c.run_key)
    )
    finishes = (
        sa.update(we)
        .where(
            WORKFLOW_RESULT_UNREPORTED,
            sa.or_(owned_by_dead_replica(we.c.result_owner, kind, now), unowned_finishes),
        )
        .values(result_owner=owner)
        .returning(we.c.id)
    )
    return runs, finishes


async def mark_dispatched(conn: AsyncConnection, rows: Sequence[DispatchedChild]) -> None:
    """Records the children the scheduler accepted on their task runs."""
    if not rows:
        return
    t = task_runs
    stmt = (
        sa.update(t)
        .where(t.c.workflow_id == sa.bindparam("w"), t.c.run_key == sa.bindparam("k"))
        .values(
            child_execution_id=sa.bindparam("c"),
            dispatched=True,
            # An outcome may already have arrived (it carries the link): keep its terminal state.
            # The value, not the member: SQLAlchemy gives an Enum member in a CASE no type.
            state=sa.case((t.c.finished_at.is_(None), ExecutionState.RUNNING.value), else_=t.c.state),
        )
    )
    await conn.execute(stmt, [{"w": r.workflow_id, "k": r.run_key, "c": r.child_execution_id} for r in rows])


async def mark_finish_reported(conn: AsyncConnection, workflow_ids: Sequence[str]) -> None:
    """Records that the completion service acknowledged these workflows' results."""
    if workflow_ids:
        we = workflow_executions
        await conn.execute(
            sa.update(we).where(we.c.id == sa.bindparam("w")).values(finish_reported=True),
            [{"w": w} for w in workflow_ids],
        )
