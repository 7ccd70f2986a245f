"""``attune bench history``: the services with a long history (docs/operations.md, Retention).

In a fresh database (a scratch database on the PostgreSQL server of ``--database-url``, dropped
afterwards; else a temporary SQLite file) it starts the services with ATTUNE_RETENTION=0, times
the no-op round trip on the empty database, writes ``--executions`` executions of history spread
over 60 days (history_seed.py), and times again. Figures (JSON keys):

- ``history_executions``, ``seed_s``: executions written, and how long that took;
- ``list_first_page_ms_p50`` / ``list_first_page_ms_p95``: the first page (50) of ListExecutions
  per filter — ``all``, ``state`` (failed), ``action`` (core.local), ``parent`` (a workflow's
  children), ``time_range`` (one day, 30 days ago);
- ``get_execution_ms_p50``: GetExecution of random executions;
- ``noop_latency_ms_p50_empty`` / ``noop_latency_ms_p50_history``: a no-op's round trip on the
  empty database and with the history, and ``noop_history_ratio``, the second over the first;
- ``purged_executions``, ``purge_s``, ``purge_executions_per_s``: PurgeExecutions of what is older
  than ``--purge-older-than`` (default 50 days: a sixth of the history), in its batches.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from google.protobuf import timestamp_pb2

from attune import eventloop
from attune.common.v1 import common_pb2
from attune.execution.v1 import execution_pb2
from attune.storage import Database
from attune_services.bench.executions import noop_latency
from attune_services.bench.history_seed import seed_history
from attune_services.cli.client import Client
from attune_services.cli.launcher import Launcher, LaunchPlan

DAY = 86400.0
HISTORY_DAYS = 60.0
LIST_SAMPLES = 50
GET_SAMPLES = 200
WARMUP = 5


def history_suite(
    database_url: str,
    *,
    count: int,
    samples: int,
    purge_older_than: float,
    ready_timeout: float,
    progress: Callable[[str], None],
    secure: bool = True,
) -> dict[str, Any]:
    """Runs the history benchmark (see the module docstring); returns its figures."""
    with tempfile.TemporaryDirectory(prefix="attune-bench-history-") as tmp:
        home = Path(tmp)
        url = _scratch_database(database_url) if database_url else ""
        try:
            plan = LaunchPlan.local(
                home,
                url,
                ports={"scheduler": 0, "coordinator": 0, "completion": 0, "worker": 0},
                env={"ATTUNE_LOG_LEVEL": "WARNING", "ATTUNE_RETENTION": "0"},
                secure=secure,
            )
            progress(f"starting the services in {home} on {'PostgreSQL' if url else 'SQLite'} (an empty database)")
            launcher = Launcher(plan)
            launcher.migrate()
            launcher.start()
            try:
                eventloop.run(launcher.wait_ready(ready_timeout))
                return eventloop.run(_measure(launcher, count, samples, purge_older_than, progress))
            finally:
                launcher.stop()
        finally:
            if url:
                eventloop.run(_admin(database_url, f'DROP DATABASE IF EXISTS "{_name_of(url)}" WITH (FORCE)'))


async def _measure(
    launcher: Launcher, count: int, samples: int, purge_older_than: float, progress: Callable[[str], None]
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    async with launcher.client() as client:
        progress(f"noop latency on the empty database: {samples} sequential executions")
        empty = (await noop_latency(client, samples=samples))["noop_latency_ms_p50"]
        db = Database(launcher.plan.database_url)
        try:
            progress(f"seeding {count:,} executions over {HISTORY_DAYS:g} days")
            started = time.perf_counter()
            figures["history_executions"] = await seed_history(
                db, count, now=time.time(), days=HISTORY_DAYS, progress=progress
            )
            figures["seed_s"] = round(time.perf_counter() - started, 1)
            await _analyze(db)
            requests = await _list_requests(db)
            ids = await _random_ids(db, GET_SAMPLES)
        finally:
            await db.close()
        progress(f"ListExecutions first pages: {LIST_SAMPLES} per filter")
        p50: dict[str, float] = {}
        p95: dict[str, float] = {}
        for name, request in requests.items():
            timings = await _timed(functools.partial(client.executions.ListExecutions, request), LIST_SAMPLES)
            p50[name], p95[name] = _ms(statistics.median(timings)), _ms(_percentile(timings, 0.95))
        figures["list_first_page_ms_p50"], figures["list_first_page_ms_p95"] = p50, p95
        progress(f"GetExecution of {len(ids)} random executions")
        get = client.executions.GetExecution
        gets = [await _once(functools.partial(get, execution_pb2.GetExecutionRequest(id=i))) for i in ids]
        figures["get_execution_ms_p50"] = _ms(statistics.median(gets))
        progress(f"noop latency with the history: {samples} sequential executions")
        loaded = (await noop_latency(client, samples=samples))["noop_latency_ms_p50"]
        figures.update(
            noop_latency_ms_p50_empty=empty,
            noop_latency_ms_p50_history=loaded,
            noop_history_ratio=round(loaded / empty, 3),
        )
        figures.update(await _purge(client, purge_older_than, progress))
    return figures


async def _purge(client: Client, older_than: float, progress: Callable[[str], None]) -> dict[str, Any]:
    progress(f"PurgeExecutions of what is older than {older_than / DAY:g} days")
    started = time.perf_counter()
    response = await client.executions.PurgeExecutions(
        execution_pb2.PurgeExecutionsRequest(older_than_seconds=older_than)
    )
    elapsed = time.perf_counter() - started
    return {
        "purged_executions": response.purged,
        "purge_s": round(elapsed, 2),
        "purge_executions_per_s": round(response.purged / elapsed, 1) if elapsed > 0 else 0.0,
    }


async def _list_requests(db: Database) -> dict[str, execution_pb2.ListExecutionsRequest]:
    """One first-page request per filter, for values the history holds."""
    async with db.read() as conn:
        parent = (
            await conn.execute(
                sa.text("SELECT parent_id FROM executions WHERE parent_id IS NOT NULL ORDER BY id DESC LIMIT 1")
            )
        ).scalar()
    month_ago = time.time() - 30 * DAY
    return {
        "all": execution_pb2.ListExecutionsRequest(),
        "state": execution_pb2.ListExecutionsRequest(state=common_pb2.EXECUTION_STATE_FAILED),
        "action": execution_pb2.ListExecutionsRequest(action_ref="core.local"),
        "parent": execution_pb2.ListExecutionsRequest(parent_id=parent or ""),
        "time_range": execution_pb2.ListExecutionsRequest(
            created_after=_stamp(month_ago - DAY), created_before=_stamp(month_ago)
        ),
    }


async def _random_ids(db: Database, count: int) -> list[str]:
    async with db.read() as conn:
        query = sa.text("SELECT id FROM executions WHERE parent_id IS NULL ORDER BY random() LIMIT :n")
        return list((await conn.execute(query, {"n": count})).scalars())


async def _analyze(db: Database) -> None:
    """Fresh planner statistics, as autovacuum would gather after a bulk load."""
    async with db.write() as conn:
        await conn.execute(sa.text("ANALYZE"))


async def _timed(call: Callable[[], Awaitable[Any]], samples: int) -> list[float]:
    for _ in range(WARMUP):
        await call()
    return [await _once(call) for _ in range(samples)]


async def _once(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _stamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMicroseconds(round(seconds * 1e6))
    return stamp


def _scratch_database(server_url: str) -> str:
    """Creates an empty database on the server of `server_url`; returns its URL."""
    name = f"attune_bench_history_{uuid.uuid4().hex[:10]}"
    eventloop.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    return sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def _admin(server_url: str, statement: str) -> None:
    url = sa.make_url(server_url).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await asyncio.wait_for(conn.execute(statement), 60)
    finally:
        await conn.close()


def _name_of(url: str) -> str:
    return sa.make_url(url).database or ""
