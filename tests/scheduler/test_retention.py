"""Retention on PostgreSQL and SQLite: old ended execution trees are purged with their rows in
every table; running, recent and unfinished trees (children of a running workflow included) are
left whole — by the purge itself, by the scheduler in the background (ATTUNE_RETENTION), and on
demand through PurgeExecutions, which only an admin token may call."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from attune.auth.v1 import auth_pb2, auth_pb2_grpc
from attune.config import ConfigError, Settings
from attune.durations import parse_duration
from attune.execution.v1 import execution_pb2, execution_pb2_grpc
from attune.states import ExecutionState
from attune.storage import Database
from attune.storage.schema import (
    execution_logs,
    executions,
    outcome_outbox,
    task_runs,
    workflow_executions,
    workflow_state_entries,
    workflow_timers,
)
from attune_services.bench.history_seed import execution_row, task_run_row, workflow_row
from attune_services.scheduler.retention import Purger
from tests.security.authz_cluster import ADMIN_TOKEN, SecureCluster, start_secure_cluster
from tests.support.polling import eventually

DAY = 86400.0
NOW = time.time()
OLD = NOW - 40 * DAY
CUTOFF = NOW - 30 * DAY
RUNNING = ExecutionState.RUNNING
SUCCEEDED = ExecutionState.SUCCEEDED


@dataclass
class History:
    """Rows by table, and which execution ids a purge must delete and keep."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    purged: set[str] = field(default_factory=set)
    kept: set[str] = field(default_factory=set)

    def add(self, table: sa.Table, row: dict[str, Any]) -> dict[str, Any]:
        self.rows.setdefault(table.name, []).append(row)
        return row

    def execution(self, *, purge: bool, **fields: Any) -> dict[str, Any]:
        row = self.add(executions, execution_row(fields.pop("at", OLD), **fields))
        (self.purged if purge else self.kept).add(row["id"])
        log = {"execution_id": row["id"], "seq": 1, "stream": "stdout", "written_at": OLD, "data": b"out\n"}
        self.add(execution_logs, log)
        if row["runner_type"] == "workflow":
            self.add(workflow_executions, workflow_row(row))
            self.add(workflow_state_entries, {"workflow_id": row["id"], "key": "vars", "value": "{}"})
            # Due in a year: a due timer would have a running coordinator load the workflow.
            timer = {"workflow_id": row["id"], "timer_id": "t", "fire_at": NOW + 365 * DAY, "purpose": "retry"}
            self.add(workflow_timers, timer)
        if row["parent_id"] is not None:
            self.add(task_runs, task_run_row(row, seq=len(self.rows.get("task_runs", []))))
        return row


def _history() -> History:
    h = History()
    h.execution(purge=True, state=ExecutionState.FAILED)
    # An ended workflow, a nested workflow in it, their children: every row of the tree goes.
    top = h.execution(purge=True, runner_type="workflow", action_ref="examples.nested", state=ExecutionState.FAILED)
    nested = h.execution(purge=True, runner_type="workflow", parent_id=top["id"], task_name="inner", state=SUCCEEDED)
    h.execution(purge=True, parent_id=top["id"], task_name="a", at=OLD + 1, state=ExecutionState.CANCELLED)
    child = h.execution(purge=True, parent_id=nested["id"], task_name="b", at=OLD + 2)
    h.add(outcome_outbox, {"execution_id": child["id"], "workflow_execution_id": nested["id"], "created_at": OLD})
    # Old, but running (or ended in a running workflow, or below one that has not all ended): kept.
    h.execution(purge=False, state=RUNNING)
    running = h.execution(purge=False, runner_type="workflow", state=RUNNING)
    h.execution(purge=False, parent_id=running["id"], task_name="done", state=SUCCEEDED)
    unfinished = h.execution(purge=False, runner_type="workflow", state=ExecutionState.CANCELLED)
    # (Running on no worker: the sweep of a live scheduler leaves it alone, where it would end a
    # "canceling" one.)
    h.execution(purge=False, parent_id=unfinished["id"], task_name="stuck", state=RUNNING)
    # Recent, or old but ended after the cutoff: kept.
    h.execution(purge=False, at=NOW - DAY)
    h.execution(purge=False, at=OLD, duration=15 * DAY)
    return h


async def _store(db: Database, history: History) -> None:
    tables = {t.name: t for t in (executions, workflow_executions, workflow_state_entries, workflow_timers)}
    tables.update({t.name: t for t in (task_runs, outcome_outbox, execution_logs)})
    async with db.write() as conn:
        for name, rows in history.rows.items():
            await conn.execute(sa.insert(tables[name]), rows)


async def _left(db: Database) -> dict[str, set[str]]:
    """Ids still stored, per table (each table's execution or workflow column)."""
    columns = {
        "executions": executions.c.id,
        "workflow_executions": workflow_executions.c.id,
        "workflow_state_entries": workflow_state_entries.c.workflow_id,
        "workflow_timers": workflow_timers.c.workflow_id,
        "task_runs": task_runs.c.child_execution_id,
        "outcome_outbox": outcome_outbox.c.execution_id,
        "execution_logs": execution_logs.c.execution_id,
    }
    async with db.read() as conn:
        return {name: set((await conn.execute(sa.select(c))).scalars()) for name, c in columns.items()}


@pytest.fixture
async def stored(database_url: str) -> AsyncIterator[tuple[Database, History]]:
    db = Database(database_url)
    history = _history()
    await _store(db, history)
    try:
        yield db, history
    finally:
        await db.close()


async def test_purge_deletes_old_ended_trees_with_their_rows_in_every_table(
    stored: tuple[Database, History],
) -> None:
    db, history = stored
    before = await _left(db)
    assert all(before.values()), before  # every table holds rows of purged trees
    # A batch of 2 makes every step (roots, levels, workflow rows) take several transactions.
    assert await Purger(db, batch=2, pause=0).purge(cutoff=CUTOFF) == len(history.purged) == 5
    left = await _left(db)
    assert left["executions"] == history.kept
    for name, ids in left.items():
        assert not ids & history.purged, f"{name} still holds rows of purged executions"
    assert left["workflow_executions"] == before["workflow_executions"] - history.purged
    assert left["task_runs"] == before["task_runs"] - history.purged
    assert await Purger(db).purge(cutoff=CUTOFF) == 0


async def _token(cluster: SecureCluster, role: auth_pb2.Role) -> str:
    tokens = auth_pb2_grpc.TokenServiceStub(cluster.channel("scheduler", token=ADMIN_TOKEN))
    name = f"retention-{auth_pb2.Role.Name(role).lower()}"
    return (await tokens.CreateToken(auth_pb2.CreateTokenRequest(name=name, role=role))).secret


@pytest.fixture
async def served(
    database_url: str, tls_dir: Path, tmp_path: Path
) -> AsyncIterator[tuple[SecureCluster, Database, History]]:
    """A secure cluster, then the history (stored after its scheduler's first purge, at start-up:
    the next one is ATTUNE_RETENTION_INTERVAL, a minute, away)."""
    cluster = await start_secure_cluster(database_url, tls_dir, tmp_path)
    db = Database(database_url)
    try:
        history = _history()
        await _store(db, history)
        yield cluster, db, history
    finally:
        await db.close()
        await cluster.stop()


async def test_purge_rpc_is_for_admins_and_reports_what_it_deleted(
    served: tuple[SecureCluster, Database, History],
) -> None:
    cluster, db, history = served
    request = execution_pb2.PurgeExecutionsRequest(older_than_seconds=30 * DAY)
    for role in (auth_pb2.ROLE_VIEWER, auth_pb2.ROLE_OPERATOR):
        stub = execution_pb2_grpc.ExecutionServiceStub(cluster.channel("scheduler", token=await _token(cluster, role)))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.PurgeExecutions(request)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "requires role admin" in (refused.value.details() or "")
    assert (await _left(db))["executions"] == history.purged | history.kept  # nothing purged yet
    admin = execution_pb2_grpc.ExecutionServiceStub(cluster.channel("scheduler", token=ADMIN_TOKEN))
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await admin.PurgeExecutions(execution_pb2.PurgeExecutionsRequest(older_than_seconds=0))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await admin.PurgeExecutions(request)).purged == 5
    assert (await _left(db))["executions"] == history.kept


async def test_the_scheduler_purges_in_the_background_per_attune_retention(
    served: tuple[SecureCluster, Database, History],
) -> None:
    cluster, db, history = served
    assert (await _left(db))["executions"] == history.purged | history.kept
    cluster.settings = cluster.settings.replace(retention="30d", retention_interval=0.1)
    await cluster.add_scheduler()

    async def purged() -> bool | None:
        return (await _left(db))["executions"] == history.kept or None

    await eventually(purged, within=30, what="the old ended trees to be purged by the scheduler")


def test_retention_settings_accept_durations_and_refuse_other_text() -> None:
    assert Settings.from_env({"ATTUNE_RETENTION": "12h"}).retention_seconds == 12 * 3600
    assert Settings().retention_seconds == 30 * DAY
    assert Settings.from_env({"ATTUNE_RETENTION": "0"}).retention_seconds == 0
    assert parse_duration("90", name="x") == 90 and parse_duration("1.5m", name="x") == 90
    with pytest.raises(ConfigError, match="ATTUNE_RETENTION: '30 days' is not a duration"):
        _ = Settings.from_env({"ATTUNE_RETENTION": "30 days"}).retention_seconds
    with pytest.raises(ValueError, match="--older-than: '-1d'"):
        parse_duration("-1d", name="--older-than")
