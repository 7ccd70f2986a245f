"""PostgreSQL fast path: the common part of a step in ONE statement (one round trip).

A step's compare-and-set on the workflow row, its changed state entries, its new task runs and
its ended task runs are data-modifying CTEs of one statement, each guarded by the CAS (they join
the `cas` CTE, so nothing is written when the version moved on). This is the same write as the
generic path in `store.py` (which SQLite uses), in one round trip instead of five: the chain
latency of a workflow is a sum of these. Timers and cancellations, which are rare, stay on the
generic path. A batch of steps that needs nothing else is written on the pooled asyncpg
connection itself (`Database.asyncpg`), without SQLAlchemy's BEGIN/COMMIT and per-call overhead;
so is the recording of dispatched children.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from attune_services.coordinator.rows import APPLIED, CONFLICT, StepWrite, dump_json

STEP_SQL = """
WITH cas AS (
    UPDATE workflow_executions
       SET version = $2::int,
           status = COALESCE($3::text, status),
           result = CASE WHEN $4::bool THEN $5::text ELSE result END,
           error = CASE WHEN $4::bool THEN $6::text ELSE error END,
           finished_at = CASE WHEN $4::bool THEN $7::float8 ELSE finished_at END,
           finish_reported = CASE WHEN $4::bool THEN false ELSE finish_reported END
     WHERE id = $1::text AND version = $8::int
 RETURNING id
), deleted AS (
    DELETE FROM workflow_state_entries e
     WHERE e.workflow_id = $1::text AND e.key = ANY($9::text[]) AND EXISTS (SELECT 1 FROM cas)
), upserted AS (
    INSERT INTO workflow_state_entries (workflow_id, key, value)
    SELECT cas.id, u.k, u.v FROM cas, unnest($10::text[], $11::text[]) AS u(k, v)
    ON CONFLICT (workflow_id, key) DO UPDATE SET value = EXCLUDED.value
), started AS (
    INSERT INTO task_runs (workflow_id, run_key, seq, task_name, run, item_index, attempt, action_ref, state,
                           request, child_execution_id, dispatched, cancel_requested, started_at, finished_at)
    SELECT cas.id, r.k, r.seq, r.task, r.run, r.item, r.attempt, r.ref, 'requested', r.req, NULL, false, false,
           r.at, NULL
      FROM cas, unnest($12::text[], $13::int[], $14::text[], $15::int[], $16::int[], $17::int[], $18::text[],
                       $19::text[], $20::float8[]) AS r(k, seq, task, run, item, attempt, ref, req, at)
    ON CONFLICT (workflow_id, run_key) DO NOTHING
), ended AS (
    UPDATE task_runs t SET state = x.s, finished_at = x.at, dispatched = true,
           child_execution_id = COALESCE(t.child_execution_id, NULLIF(x.c, ''))
      FROM unnest($21::text[], $22::text[], $23::float8[], $24::text[]) AS x(k, s, at, c)
     WHERE t.workflow_id = $1::text AND t.run_key = ANY($21::text[]) AND t.run_key = x.k
       AND t.finished_at IS NULL AND EXISTS (SELECT 1 FROM cas)
)
SELECT count(*) FROM cas
"""


def fast_path_applies(w: StepWrite) -> bool:
    """Steps of an existing workflow under compare-and-set (not creations, not bare bookkeeping)."""
    return w.create is None and w.expected_version is not None


def whole_on_fast_path(w: StepWrite) -> bool:
    """A step STEP_SQL writes entirely: nothing for the generic path (no timers, no cancels)."""
    return fast_path_applies(w) and not w.timers and not w.cancel_runs and w.definition is None


async def write_step_pg(conn: AsyncConnection, w: StepWrite) -> str:
    """Writes the CAS, entries, new and ended task runs of one step; APPLIED or CONFLICT."""
    matched = (await conn.exec_driver_sql(STEP_SQL, step_params(w))).scalar()
    return APPLIED if matched == 1 else CONFLICT


async def write_steps_asyncpg(raw: Any, batch: Sequence[StepWrite]) -> list[str]:
    """Writes steps that are `whole_on_fast_path` on an asyncpg connection (the caller's
    transaction, or none for a single step: one statement is atomic on its own). A step of a
    chain is then one round trip, without SQLAlchemy's BEGIN and COMMIT."""
    return [APPLIED if await raw.fetchval(STEP_SQL, *step_params(w)) == 1 else CONFLICT for w in batch]


def step_params(w: StepWrite) -> tuple[Any, ...]:
    """STEP_SQL's parameters for one step."""
    assert w.expected_version is not None
    finish = w.finish
    deletes = [k for k, v in w.entries.items() if v is None]
    upserts = [(k, dump_json(v)) for k, v in w.entries.items() if v is not None]
    runs = w.new_runs
    return (
        w.workflow_id,
        w.expected_version + 1 if w.bump else w.expected_version,
        w.status,
        finish is not None,
        dump_json(finish[1]) if finish else None,
        finish[2] if finish else None,
        finish[3] if finish else None,
        w.expected_version,
        deletes,
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
        [r.run_key for r in w.ended_runs],
        [r.state for r in w.ended_runs],
        [r.finished_at for r in w.ended_runs],
        [r.child_execution_id for r in w.ended_runs],
    )


MARK_DISPATCHED_SQL = """
UPDATE task_runs t
   SET child_execution_id = x.c, dispatched = true,
       state = CASE WHEN t.finished_at IS NULL THEN 'running' ELSE t.state END
  FROM unnest($1::text[], $2::text[], $3::text[]) AS x(w, k, c)
 WHERE t.workflow_id = x.w AND t.run_key = x.k
"""


async def mark_dispatched_asyncpg(raw: Any, rows: Sequence[tuple[str, str, str]]) -> None:
    """`store.mark_dispatched` as one statement over arrays: recording a 500-child batch through
    SQLAlchemy's executemany cost the coordinator more CPU than the step that created them."""
    if rows:
        await raw.execute(MARK_DISPATCHED_SQL, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
