"""The PostgreSQL fast path of a step's write: what it writes, and that it finds its rows by key
(one probe each) however large the workflow is, under the generic plan a cached statement gets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from attune.storage import Database
from attune.storage.database import CUSTOM_PLAN_ROWS
from attune_services.coordinator.pg_steps import (
    fast_path_applies,
    needs_transaction,
    whole_on_fast_path,
    write_steps_asyncpg,
)
from attune_services.coordinator.rows import EndedRun, NewTaskRun, NewWorkflow, StepOutcome, StepWrite, TimerRow
from attune_services.coordinator.store import write_steps
from tests.support.databases import create_postgres_database, drop_postgres_database

#: Task runs and state entries of the workflow before the step: enough that scanning the whole
#: workflow shows against the handful of rows a step touches.
SIZE = 300


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    url = create_postgres_database("attune_pgsteps")
    yield url
    drop_postgres_database(url)


def _run(n: int, at: float = 1.0) -> NewTaskRun:
    return NewTaskRun(f"s{n}/1/-/1", n, f"s{n}", 1, None, 1, "core.noop", {"input": {}, "timeout": None}, at)


def _step(workflow: str, version: int, first: int, ended: int) -> StepWrite:
    """Ends runs first..first+ended-1, deletes their entries, starts the next run."""
    keys = range(first, first + ended)
    entries: dict[str, Any] = {f"k:s{n}/1/-/1": None for n in keys}
    entries.update({f"res:s{n}": {"value": n} for n in keys})
    return StepWrite(
        workflow,
        version,
        status="running",
        entries=entries,
        new_runs=[_run(SIZE + first)],
        ended_runs=[EndedRun(f"s{n}/1/-/1", "succeeded", 2.0, f"child-{n}") for n in keys],
    )


async def _create(db: Database, workflow: str) -> None:
    create = StepWrite(
        workflow,
        None,
        status="running",
        create=NewWorkflow(workflow, "bench.chain", "digest", 0, "", 1.0),
        entries={f"k:s{n}/1/-/1": {"n": n} for n in range(SIZE)},
        new_runs=[_run(n) for n in range(SIZE)],
    )
    async with db.write() as conn:
        assert await write_steps(conn, [create]) == [StepOutcome.APPLIED]


async def _index_reads(raw: asyncpg.Connection) -> dict[str, int]:
    """Index entries each primary key returned so far in this transaction (idx_tup_read)."""
    names = ("task_runs_pkey", "workflow_state_entries_pkey")
    return {name: await raw.fetchval("SELECT pg_stat_get_xact_tuples_returned($1::regclass)", name) for name in names}


async def _state(raw: asyncpg.Connection, workflow: str) -> tuple[dict[str, str | None], set[str]]:
    """The workflow's task runs (run_key → state) and its state entries' keys."""
    runs = await raw.fetch("SELECT run_key, state FROM task_runs WHERE workflow_id = $1", workflow)
    keys = await raw.fetch("SELECT key FROM workflow_state_entries WHERE workflow_id = $1", workflow)
    return {r["run_key"]: r["state"] for r in runs}, {r["key"] for r in keys}


def test_a_step_probes_its_rows_by_key_however_large_the_workflow(postgres_url: str) -> None:
    """Under a generic plan (what a cached statement runs after five executions), a step that
    ends one run of a 300-run workflow reads a few index entries, not the whole workflow's
    (the ANY(array) form read ~300 from each primary key)."""

    async def main() -> None:
        db = Database(postgres_url)
        try:
            await _create(db, "wf-chain")
            async with db.asyncpg() as raw:
                await raw.execute("SET plan_cache_mode = force_generic_plan")
                try:
                    for version in range(1, 8):  # the later ones run on the cached generic plan
                        step = _step("wf-chain", version, version, 1)
                        assert fast_path_applies(step)
                        async with raw.transaction():
                            before = await _index_reads(raw)
                            assert await write_steps_asyncpg(raw, [step]) == [StepOutcome.APPLIED]
                            after = await _index_reads(raw)
                        reads = {name: after.get(name, 0) - before.get(name, 0) for name in after}
                        assert reads["task_runs_pkey"] <= 5, reads
                        assert reads["workflow_state_entries_pkey"] <= 8, reads
                    runs, keys = await _state(raw, "wf-chain")
                finally:
                    await raw.execute("RESET plan_cache_mode")
        finally:
            await db.close()
        assert [runs[f"s{n}/1/-/1"] for n in range(1, 8)] == ["succeeded"] * 7
        assert runs["s0/1/-/1"] == "requested" and runs["s8/1/-/1"] == "requested"
        assert not {f"k:s{n}/1/-/1" for n in range(1, 8)} & keys and "k:s8/1/-/1" in keys
        assert {f"res:s{n}" for n in range(1, 8)} <= keys
        assert {f"s{SIZE + n}/1/-/1" for n in range(1, 8)} <= set(runs)

    asyncio.run(main())


@pytest.mark.parametrize(("path", "ended"), [("asyncpg", 3), ("asyncpg", CUSTOM_PLAN_ROWS), ("store", 3)])
def test_a_step_ending_several_runs_writes_them_all(postgres_url: str, path: str, ended: int) -> None:
    """A batch of events (a fan-in) ends several runs in one step: more than STEP_SQL takes. The
    asyncpg path writes the rest in the step's transaction (a few row by row, each found by its
    key; CUSTOM_PLAN_ROWS and more over arrays); store.write_steps (a step that also sets a
    timer) writes the whole step row by row. The same rows either way."""
    workflow = f"wf-fan-in-{path}-{ended}"
    first, last = 100, 100 + ended - 1

    async def main() -> None:
        db = Database(postgres_url)
        try:
            await _create(db, workflow)
            step = _step(workflow, 1, first, ended)
            assert not fast_path_applies(step) and whole_on_fast_path(step) and needs_transaction([step])
            if path == "asyncpg":
                async with db.asyncpg(transaction=True, rows=ended) as raw:
                    if ended < CUSTOM_PLAN_ROWS:
                        await raw.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                    before = await _index_reads(raw)
                    assert await write_steps_asyncpg(raw, [step]) == [StepOutcome.APPLIED]
                    after = await _index_reads(raw)
                reads = {name: after[name] - before[name] for name in after}
                if ended < CUSTOM_PLAN_ROWS:
                    assert reads["task_runs_pkey"] <= ended * 5, reads
                    assert reads["workflow_state_entries_pkey"] <= ended * 8, reads
            else:
                step.timers["t1"] = TimerRow(99.0, "timeout")
                async with db.write() as conn:
                    assert await write_steps(conn, [step]) == [StepOutcome.APPLIED]
            async with db.asyncpg() as raw:
                runs, keys = await _state(raw, workflow)
                version = await raw.fetchval("SELECT version FROM workflow_executions WHERE id = $1", workflow)
                children = await raw.fetch(
                    "SELECT child_execution_id FROM task_runs WHERE workflow_id = $1 AND run_key = ANY($2) "
                    "ORDER BY seq",
                    workflow,
                    [f"s{n}/1/-/1" for n in range(first, last + 1)],
                )
        finally:
            await db.close()
        assert version == 2
        assert [runs[f"s{n}/1/-/1"] for n in range(first, last + 1)] == ["succeeded"] * ended
        assert runs[f"s{first - 1}/1/-/1"] == "requested" and runs[f"s{last + 1}/1/-/1"] == "requested"
        assert [r["child_execution_id"] for r in children] == [f"child-{n}" for n in range(first, last + 1)]
        assert not {f"k:s{n}/1/-/1" for n in range(first, last + 1)} & keys and f"k:s{last + 1}/1/-/1" in keys
        assert {f"res:s{n}" for n in range(first, last + 1)} <= keys

    asyncio.run(main())
