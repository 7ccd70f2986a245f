"""A long history, written straight into the database: what `attune bench history` measures on.

Rows look like those the services write (attune.storage.schema): top-level executions of several
actions in a realistic mix of states (the last hour also holds running and scheduled ones), and
every tenth one an ended workflow with a few children (each with its task-run row, and the
workflow's own row), spread evenly over `days` days up to now. Ids
carry their creation time, as attune.ids.new_id makes them, so the history pages and purges as a
real one would. On PostgreSQL the rows go in with COPY, elsewhere with multi-row INSERTs.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from attune.states import ExecutionState
from attune.storage import Database
from attune.storage.schema import executions, task_runs, workflow_executions

#: Top-level actions and their share of the history.
ACTIONS = (("core.noop", 0.5), ("core.echo", 0.3), ("core.local", 0.15), ("core.sleep", 0.05))
WORKFLOW_ACTION = "examples.fan_out"
WORKFLOW_SHARE = 0.1
CHILDREN_PER_WORKFLOW = (1, 8)
#: Ended states and their share; the newest hour also holds a few running and scheduled ones.
ENDED = (
    (ExecutionState.SUCCEEDED, 0.9),
    (ExecutionState.FAILED, 0.06),
    (ExecutionState.CANCELLED, 0.02),
    (ExecutionState.TIMEOUT, 0.01),
    (ExecutionState.ABANDONED, 0.01),
)
ACTIVE_WINDOW_S = 3600.0
BATCH_ROWS = 5000


def history_id(at: float) -> str:
    """An id as attune.ids.new_id would have made it at Unix time `at`."""
    return f"{int(at * 1000):012x}{os.urandom(10).hex()}"


def execution_row(
    at: float,
    *,
    action_ref: str = "core.noop",
    state: str = ExecutionState.SUCCEEDED,
    runner_type: str = "noop",
    parent_id: str | None = None,
    task_name: str | None = None,
    duration: float = 0.002,
) -> dict[str, Any]:
    """One executions row created at `at` (ended `duration` later when its state is terminal)."""
    ended = state in {s for s, _ in ENDED}
    return {
        "id": history_id(at),
        "action_ref": action_ref,
        "runner_type": runner_type,
        "state": str(state),
        "parameters": "{}",
        "secret_names": "[]",
        "result": json.dumps({"stdout": ""}) if state == ExecutionState.SUCCEEDED else None,
        "error": None if not ended or state == ExecutionState.SUCCEEDED else f"ended {state}",
        "parent_id": parent_id,
        "workflow_execution_id": parent_id,
        "task_name": task_name,
        "task_run": 0 if parent_id else None,
        "item_index": None,
        "attempt": 0 if parent_id else None,
        "depth": 1 if parent_id else 0,
        # An active row names no worker: the sweep of the services measured leaves it alone.
        "worker_id": "worker-1" if ended and runner_type != "workflow" else None,
        "request_id": None,
        "traceparent": None,
        "trace_id": None,
        "timeout": None,
        "created_at": at,
        "scheduled_at": at,
        "started_at": at,
        "finished_at": at + duration if ended else None,
        "updated_at": at + duration,
        "requested_by": "" if parent_id else "admin",
    }


def workflow_row(parent: dict[str, Any]) -> dict[str, Any]:
    """The coordinator's row of a workflow execution."""
    ended = parent["finished_at"] is not None
    return {
        "id": parent["id"],
        "action_ref": parent["action_ref"],
        "status": parent["state"],
        "definition_digest": "0" * 64,
        "depth": 0,
        "traceparent": None,
        "result": parent["result"],
        "error": parent["error"],
        "version": 1,
        "finish_reported": ended,
        "created_at": parent["created_at"],
        "finished_at": parent["finished_at"],
    }


def task_run_row(child: dict[str, Any], seq: int) -> dict[str, Any]:
    """The coordinator's task run of a workflow's child."""
    return {
        "workflow_id": child["parent_id"],
        "run_key": f"{child['task_name']}:0",
        "seq": seq,
        "task_name": child["task_name"],
        "run": 0,
        "item_index": None,
        "attempt": 0,
        "action_ref": child["action_ref"],
        "state": child["state"],
        "request": "{}",
        "child_execution_id": child["id"],
        "dispatched": True,
        "cancel_requested": False,
        "started_at": child["created_at"],
        "finished_at": child["finished_at"],
    }


@dataclass
class SeedBatch:
    """Rows of one batch, by table."""

    executions: list[dict[str, Any]] = field(default_factory=list)
    workflows: list[dict[str, Any]] = field(default_factory=list)
    task_runs: list[dict[str, Any]] = field(default_factory=list)


def history_batches(count: int, *, now: float, days: float, seed: int = 14) -> Iterator[SeedBatch]:
    """`count` executions (children included), oldest first, evenly spread over `days` days."""
    rng = random.Random(seed)
    span = days * 86400.0
    step = span / max(count, 1)
    batch = SeedBatch()
    made = 0
    while made < count:
        at = now - span + made * step
        if rng.random() < WORKFLOW_SHARE and count - made > 1:
            # Every workflow has ended: a running one would be the coordinator's to resume.
            state = _ended(rng)
            children = min(rng.randint(*CHILDREN_PER_WORKFLOW), count - made - 1)
            parent = execution_row(at, action_ref=WORKFLOW_ACTION, state=state, runner_type="workflow")
            batch.executions.append(parent)
            batch.workflows.append(workflow_row(parent))
            for seq in range(children):
                child = execution_row(
                    at + (seq + 1) * step / (children + 1),
                    action_ref="core.echo",
                    state=ExecutionState.SUCCEEDED,
                    parent_id=parent["id"],
                    task_name=f"item_{seq}",
                )
                batch.executions.append(child)
                batch.task_runs.append(task_run_row(child, seq))
            made += 1 + children
        else:
            action = rng.choices([a for a, _ in ACTIONS], [w for _, w in ACTIONS])[0]
            batch.executions.append(execution_row(at, action_ref=action, state=_state(rng, now - at)))
            made += 1
        if len(batch.executions) >= BATCH_ROWS:
            yield batch
            batch = SeedBatch()
    if batch.executions:
        yield batch


def _state(rng: random.Random, age: float) -> str:
    if age < ACTIVE_WINDOW_S and rng.random() < 0.2:
        return rng.choice([ExecutionState.RUNNING, ExecutionState.SCHEDULED])
    return _ended(rng)


def _ended(rng: random.Random) -> str:
    return str(rng.choices([s for s, _ in ENDED], [w for _, w in ENDED])[0])


async def seed_history(
    db: Database, count: int, *, now: float, days: float = 60.0, progress: Callable[[str], None] | None = None
) -> int:
    """Writes `count` executions of history into `db`; returns how many were written."""
    written = 0
    for batch in history_batches(count, now=now, days=days):
        if db.is_sqlite:
            async with db.write() as conn:
                for table, rows in _tables(batch):
                    if rows:
                        await conn.execute(sa.insert(table), rows)
        else:
            async with db.asyncpg(transaction=True) as raw:
                for table, rows in _tables(batch):
                    if rows:
                        columns = list(rows[0])  # columns added since keep their server defaults
                        records = [tuple(row[c] for c in columns) for row in rows]
                        await raw.copy_records_to_table(table.name, records=records, columns=columns)
        written += len(batch.executions)
        if progress is not None and written // 100_000 != (written - len(batch.executions)) // 100_000:
            progress(f"  seeded {written:,} of {count:,} executions")
    return written


def _tables(batch: SeedBatch) -> tuple[tuple[sa.Table, list[dict[str, Any]]], ...]:
    return ((executions, batch.executions), (workflow_executions, batch.workflows), (task_runs, batch.task_runs))
