"""PostgreSQL fast path: the common part of a step in ONE statement (one round trip).

A step's compare-and-set on the workflow row, its changed state entries, its new task runs and
its ended task runs are data-modifying CTEs of one statement, each guarded by the CAS (they join
the `cas` CTE, so nothing is written when the version moved on). This is the same write as the
generic path in `store.py` (which SQLite uses), in one round trip instead of five: the chain
latency of a workflow is a sum of these. Timers and cancellations, which are rare, stay on the
generic path. A batch of steps that needs nothing else is written on the pooled asyncpg
connection itself (`Database.asyncpg`), without SQLAlchemy's BEGIN/COMMIT and per-call overhead;
so is the recording of dispatched children.

STEP_SQL deletes at most one state entry and ends at most one task run, each found by its whole
primary key as scalars (`workflow_id = $1 AND key = $9`): always one probe of the primary key.
An array there (`key = ANY($keys)`) let a generic plan scan the whole workflow instead:
PostgreSQL costs an array parameter as ten index descents and estimates a workflow at a handful
of rows, so it used only `workflow_id` in the index and filtered the keys, and a step's write
cost time in proportion to the size of its workflow (a 200-step chain's last steps read ~500
index entries of state entries and ~200 of task runs, and their statement took 2.5 times as long
as the 20th step's).

A step that deletes or ends more (a batch of events: a fan-in, with-items) writes the rest in the
same transaction: fewer than CUSTOM_PLAN_ROWS with per-row statements pipelined by `executemany`
(one round trip, each row one probe); from CUSTOM_PLAN_ROWS on with one statement over arrays,
planned for its actual values (`Database.asyncpg`), because per-row statements cost ~1.5 times
as much on a fan-in's batches of hundreds (a scan of the workflow, if the planner picks one, is
then shared by at least that many rows). tests/coordinator/test_pg_steps.py holds this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from attune.storage.database import CUSTOM_PLAN_ROWS
from attune_services.coordinator.rows import DispatchedChild, StepOutcome, StepWrite, dump_json

STEP_SQL = """
WITH cas AS (
    UPDATE workflow_executions
       SET version = $2::int,
           status = COALESCE($3::text, status),
           result = CASE WHEN $4::bool THEN $5::text ELSE result END,
           error = CASE WHEN $4::bool THEN $6::text ELSE error END,
           finished_at = CASE WHEN $4::bool THEN $7::float8 ELSE finished_at END,
           finish_reported = CASE WHEN $4::bool THEN false ELSE finish_reported END,
           result_owner = CASE WHEN $4::bool THEN $25::text ELSE result_owner END
     WHERE id = $1::text AND version = $8::int
 RETURNING id
), deleted AS (
    DELETE FROM workflow_state_entries e
     WHERE e.workflow_id = $1::text AND e.key = $9::text AND EXISTS (SELECT 1 FROM cas)
), upserted AS (
    INSERT INTO workflow_state_entries (workflow_id, key, value)
    SELECT cas.id, u.k, u.v FROM cas, unnest($10::text[], $11::text[]) AS u(k, v)
    ON CONFLICT (workflow_id, key) DO UPDATE SET value = EXCLUDED.value
), started AS (
    INSERT INTO task_runs (workflow_id, run_key, seq, task_name, run, item_index, attempt, action_ref, state,
                           request, child_execution_id, dispatched, cancel_requested, started_at, finished_at, owner)
    SELECT cas.id, r.k, r.seq, r.task, r.run, r.item, r.attempt, r.ref, 'requested', r.req, NULL, false, false,
           r.at, NULL, $25::text
      FROM cas, unnest($12::text[], $13::int[], $14::text[], $15::int[], $16::int[], $17::int[], $18::text[],
                       $19::text[], $20::float8[]) AS r(k, seq, task, run, item, attempt, ref, req, at)
    ON CONFLICT (workflow_id, run_key) DO NOTHING
), ended AS (
    UPDATE task_runs t SET state = $22::text, finished_at = $23::float8, dispatched = true,
           child_execution_id = COALESCE(t.child_execution_id, NULLIF($24::text, ''))
     WHERE t.workflow_id = $1::text AND t.run_key = $21::text
       AND t.finished_at IS NULL AND EXISTS (SELECT 1 FROM cas)
)
SELECT count(*) FROM cas
"""


def fast_path_applies(w: StepWrite) -> bool:
    """Steps of an existing workflow under compare-and-set (not creations, not bare bookkeeping)
    that STEP_SQL writes alone: at most one deleted state entry and one ended task run."""
    return w.create is None and w.expected_version is not None and _single(w)


def whole_on_fast_path(w: StepWrite) -> bool:
    """A step `write_steps_asyncpg` writes entirely: nothing for the generic path (no timers,
    no cancels, no definition to store)."""
    return (
        w.create is None
        and w.expected_version is not None
        and not w.timers
        and not w.cancel_runs
        and w.definition is None
    )


def needs_transaction(batch: Sequence[StepWrite]) -> bool:
    """Whether `write_steps_asyncpg` must run in a transaction: one single-statement step is
    atomic on its own; several steps, or one with per-row statements, are not."""
    return len(batch) > 1 or not _single(batch[0])


async def write_step_pg(conn: AsyncConnection, w: StepWrite, *, owner: str | None = None) -> StepOutcome:
    """Writes the CAS, entries, new and ended task runs of one `fast_path_applies` step;
    APPLIED or CONFLICT. `owner`: the replica carrying out the step's commands."""
    matched = (await conn.exec_driver_sql(STEP_SQL, step_params(w, owner=owner))).scalar()
    return StepOutcome.APPLIED if matched == 1 else StepOutcome.CONFLICT


async def write_steps_asyncpg(raw: Any, batch: Sequence[StepWrite], *, owner: str | None = None) -> list[StepOutcome]:
    """Writes steps that are `whole_on_fast_path` on an asyncpg connection, in the caller's
    transaction when `needs_transaction`. A step of a chain is then one round trip, without
    SQLAlchemy's BEGIN and COMMIT. `owner`: the replica carrying out the steps' commands."""
    outcomes = []
    for w in batch:
        single = _single(w)
        applied = await raw.fetchval(STEP_SQL, *step_params(w, rows_apart=not single, owner=owner)) == 1
        if applied and not single:
            await _write_rows_apart(raw, w)
        outcomes.append(StepOutcome.APPLIED if applied else StepOutcome.CONFLICT)
    return outcomes


async def _write_rows_apart(raw: Any, w: StepWrite) -> None:
    """The deleted entries and ended runs of a step with more than STEP_SQL takes."""
    deletes = _deleted_keys(w)
    ended = w.ended_runs
    if len(deletes) >= CUSTOM_PLAN_ROWS:
        await raw.execute(DELETE_ENTRIES_SQL, w.workflow_id, deletes)
    elif deletes:
        await raw.executemany(DELETE_ENTRY_SQL, [(w.workflow_id, k) for k in deletes])
    if len(ended) >= CUSTOM_PLAN_ROWS:
        await raw.execute(
            END_RUNS_SQL,
            w.workflow_id,
            [r.run_key for r in ended],
            [r.state for r in ended],
            [r.finished_at for r in ended],
            [r.child_execution_id for r in ended],
        )
    elif ended:
        await raw.executemany(
            END_RUN_SQL, [(w.workflow_id, r.run_key, r.state, r.finished_at, r.child_execution_id) for r in ended]
        )


def _deleted_keys(w: StepWrite) -> list[str]:
    """The state entries the step deletes (an entry changed to None)."""
    return [k for k, v in w.entries.items() if v is None]


def _single(w: StepWrite) -> bool:
    """Whether STEP_SQL takes all of the step's deleted entries and ended runs."""
    return len(w.ended_runs) <= 1 and len(_deleted_keys(w)) <= 1


def step_params(w: StepWrite, *, rows_apart: bool = False, owner: str | None = None) -> tuple[Any, ...]:
    """STEP_SQL's parameters for one step; `rows_apart` leaves out the deleted entries and the
    ended runs (written by per-row statements). `owner` is recorded on the new task runs and on a
    finish (the replica that carries them out)."""
    assert w.expected_version is not None
    finish = w.finish
    deletes = [] if rows_apart else _deleted_keys(w)
    upserts = [(k, dump_json(v)) for k, v in w.entries.items() if v is not None]
    runs = w.new_runs
    ended = None if rows_apart or not w.ended_runs else w.ended_runs[0]
    assert len(deletes) <= 1 and (rows_apart or len(w.ended_runs) <= 1), "more rows than STEP_SQL takes"
    return (
        w.workflow_id,
        w.expected_version + 1 if w.bump else w.expected_version,
        w.status,
        finish is not None,
        dump_json(finish.result) if finish else None,
        finish.error if finish else None,
        finish.at if finish else None,
        w.expected_version,
        deletes[0] if deletes else None,
        [k for k, _ in upserts],
        [v for _, v in upserts],
        [r.run_key for r in runs],
        [r.seq for r in runs],
        [r.task_name for r in runs],
        [r.run for r in runs],
        [r.item_index for r in runs],
        [r.attempt for r in runs],
        [r.action_ref for r in runs],
        [dump_json(r.request) for r in runs],
        [r.started_at for r in runs],
        ended.run_key if ended else None,
        ended.state if ended else None,
        ended.finished_at if ended else None,
        ended.child_execution_id if ended else None,
        owner,
    )


#: A step's deleted entries and ended runs when it has more than STEP_SQL takes: one by one...
DELETE_ENTRY_SQL = "DELETE FROM workflow_state_entries WHERE workflow_id = $1::text AND key = $2::text"
END_RUN_SQL = """
UPDATE task_runs SET state = $3::text, finished_at = $4::float8, dispatched = true,
       child_execution_id = COALESCE(child_execution_id, NULLIF($5::text, ''))
 WHERE workflow_id = $1::text AND run_key = $2::text AND finished_at IS NULL
"""
#: ... or, from CUSTOM_PLAN_ROWS on, over arrays.
DELETE_ENTRIES_SQL = "DELETE FROM workflow_state_entries WHERE workflow_id = $1::text AND key = ANY($2::text[])"
END_RUNS_SQL = """
UPDATE task_runs t SET state = x.s, finished_at = x.at, dispatched = true,
       child_execution_id = COALESCE(t.child_execution_id, NULLIF(x.c, ''))
  FROM unnest($2::text[], $3::text[], $4::float8[], $5::text[]) AS x(k, s, at, c)
 WHERE t.workflow_id = $1::text AND t.run_key = ANY($2::text[]) AND t.run_key = x.k AND t.finished_at IS NULL
"""

MARK_DISPATCHED_SQL = """
UPDATE task_runs t
   SET child_execution_id = x.c, dispatched = true,
       state = CASE WHEN t.finished_at IS NULL THEN 'running' ELSE t.state END
  FROM unnest($1::text[], $2::text[], $3::text[]) AS x(w, k, c)
 WHERE t.workflow_id = x.w AND t.run_key = x.k
"""


async def mark_dispatched_asyncpg(raw: Any, rows: Sequence[DispatchedChild]) -> None:
    """`store.mark_dispatched` as one statement over arrays: recording a 500-child batch through
    SQLAlchemy's executemany cost the coordinator more CPU than the step that created them."""
    if rows:
        await raw.execute(
            MARK_DISPATCHED_SQL,
            [r.workflow_id for r in rows],
            [r.run_key for r in rows],
            [r.child_execution_id for r in rows],
        )
