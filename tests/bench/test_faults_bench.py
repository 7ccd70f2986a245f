"""`attune bench faults --short` end to end, as CI runs it: its own services and PostgreSQL
(initdb must be on this host), a tenth of the mixed load, and a subset of the faults. Nothing may
be lost, stuck, wrong or run twice; only the killed worker's work may end abandoned.

The worker grace is shortened (ATTUNE_WORKER_GRACE, passed on to the services) so that the
killed worker's executions are declared abandoned within the test's budget.
"""

from __future__ import annotations

import pytest

from attune_services.bench.faults.score import FIGURES
from tests.cli.e2e import attune

pytestmark = pytest.mark.integration

CI_FAULTS = ("kill-coordinator", "kill-worker", "db-restart-fast", "replica-kill-scheduler")
FAST_LEASES = {"ATTUNE_WORKER_GRACE": "4", "ATTUNE_HEARTBEAT_INTERVAL": "1"}


async def test_short_fault_bench_loses_nothing_and_runs_nothing_twice() -> None:
    outcome = await attune(
        "bench", "faults", "--short", "--faults", ",".join(CI_FAULTS), "--output", "json", env=FAST_LEASES, timeout=300
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
        if row["fault"] != "kill-worker":
            assert row["abandoned"] == 0, row
    assert "executions requested" in outcome.stderr
