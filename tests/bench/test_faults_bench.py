"""`attune bench faults --short` end to end, as CI runs it: its own services and PostgreSQL
(initdb must be on this host), a tenth of the mixed load, and a subset of the faults: a killed
worker, a database restart and a killed replica (a killed coordinator's recovery is
tests/integration/test_workflows_e2e.py's). Every fault of the catalog with ATTUNE_LONG_TESTS=1.
Nothing may be lost, stuck, wrong or run twice; only the killed worker's work may end abandoned.

The worker grace is shortened (ATTUNE_WORKER_GRACE, passed on to the services) so that the
killed worker's executions are declared abandoned within the test's budget.
"""

from __future__ import annotations

import os

import pytest

from attune_services.bench.faults.catalog import FAULTS
from attune_services.bench.faults.score import FIGURES
from tests.cli.e2e import attune

LONG_TESTS = os.environ.get("ATTUNE_LONG_TESTS") == "1"
ALL_FAULTS = tuple(fault.name for fault in FAULTS if not fault.control)
CI_FAULTS = ALL_FAULTS if LONG_TESTS else ("kill-worker", "db-restart-fast", "replica-kill-scheduler")
BENCH_TIMEOUT_S = 1200 if LONG_TESTS else 300
FAST_LEASES = {"ATTUNE_WORKER_GRACE": "4", "ATTUNE_HEARTBEAT_INTERVAL": "1"}

pytestmark = [pytest.mark.integration, pytest.mark.timeout(BENCH_TIMEOUT_S + 60)]


async def test_short_fault_bench_loses_nothing_and_runs_nothing_twice() -> None:
    outcome = await attune(
        "bench",
        "faults",
        "--short",
        "--faults",
        ",".join(CI_FAULTS),
        "--output",
        "json",
        env=FAST_LEASES,
        timeout=BENCH_TIMEOUT_S,
    )
    assert outcome.code == 0, outcome.stderr
    figures = outcome.json()
    assert set(figures) == {"faults", "total", "skipped"}
    assert figures["skipped"] == [], "initdb is on this host: the database fault must run"
    assert [row["fault"] for row in figures["faults"]] == list(CI_FAULTS)
    for row in [*figures["faults"], figures["total"]]:
        assert set(row) - {"fault"} == set(FIGURES)
        failures = {name: row[name] for name in ("lost", "stuck", "wrong", "duplicate_task_runs") if row[name]}
        assert failures == {}, (row, outcome.stderr)
        assert row["duplicate_process_starts"] == 0, row
    for row in figures["faults"]:
        assert row["recovery_s"] is not None and row["recovery_s"] >= 0, f"{row['fault']}: nothing was in flight"
        if row["fault"] not in ("kill-worker", "replica-kill-worker"):
            assert row["abandoned"] == 0, row
    assert "executions requested" in outcome.stderr
