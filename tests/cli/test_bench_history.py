"""`attune bench history` on a small scale (CI): it makes its own scratch database on the
PostgreSQL server, seeds the history, starts the services and prints every documented figure as
a number; the scratch database is gone afterwards."""

from __future__ import annotations

import os

import asyncpg
import pytest

from tests.cli.e2e import attune
from tests.support.databases import PG_HOST, PG_PORT, PG_USER, require_postgres

pytestmark = pytest.mark.integration

FILTERS = {"all", "state", "action", "parent", "time_range"}
SCALARS = {
    "history_executions",
    "seed_s",
    "get_execution_ms_p50",
    "noop_latency_ms_p50_empty",
    "noop_latency_ms_p50_history",
    "noop_history_ratio",
    "purged_executions",
    "purge_s",
    "purge_executions_per_s",
    "machine_loop_ms",
}


async def _scratch_databases() -> set[str]:
    conn = await asyncpg.connect(f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres")
    try:
        rows = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'attune_bench_history_%'")
    finally:
        await conn.close()
    return {r["datname"] for r in rows}


async def test_history_bench_prints_every_figure_as_a_number() -> None:
    require_postgres()
    before = await _scratch_databases()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATTUNE_", "OTEL_"))}
    server = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"
    outcome = await attune(
        "bench",
        "history",
        "--executions",
        "2000",
        "--samples",
        "5",
        "--database-url",
        server,
        "--output",
        "json",
        env=env,
        timeout=300,
    )
    assert outcome.code == 0, outcome.stderr
    figures = outcome.json()
    assert set(figures) == SCALARS | {"list_first_page_ms_p50", "list_first_page_ms_p95"}
    for name in ("list_first_page_ms_p50", "list_first_page_ms_p95"):
        assert set(figures[name]) == FILTERS
        assert all(isinstance(v, (int, float)) and v > 0 for v in figures[name].values()), figures[name]
    assert all(isinstance(figures[k], (int, float)) for k in SCALARS), figures
    assert figures["history_executions"] == 2000
    # 60 days of history, evenly spread: what is older than 50 days is about a sixth of it.
    assert 200 < figures["purged_executions"] < 500 and figures["purge_executions_per_s"] > 0
    assert figures["get_execution_ms_p50"] > 0 and figures["noop_history_ratio"] > 0
    assert await _scratch_databases() == before
