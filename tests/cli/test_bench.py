"""`attune bench` on a small scale: it starts its own services and prints the figures' keys."""

from __future__ import annotations

import os

import pytest

from tests.cli.e2e import attune

pytestmark = pytest.mark.integration

CORE_KEYS = {
    "noop_latency_ms_p50",
    "noop_latency_ms_p99",
    "noop_executions_per_s",
    "shell_overhead_ms",
    "idle_rss_mb",
    "machine_loop_ms",
}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ATTUNE_", "OTEL_"))}


async def test_core_bench_prints_exactly_its_figures() -> None:
    outcome = await attune("bench", "--samples", "5", "--burst", "50", "--output", "json", env=_env(), timeout=300)
    assert outcome.code == 0, outcome.stderr
    figures = outcome.json()
    assert set(figures) == CORE_KEYS
    assert 0 < figures["noop_latency_ms_p50"] <= figures["noop_latency_ms_p99"]
    assert figures["noop_executions_per_s"] > 0 and figures["shell_overhead_ms"] > 0
    assert set(figures["idle_rss_mb"]) == {"scheduler", "coordinator", "completion", "worker"}
    assert all(0 < mb < 1024 for mb in figures["idle_rss_mb"].values())
    assert 0 < figures["machine_loop_ms"] < 10_000
    assert "machine calibration" in outcome.stderr


async def test_workflow_bench_prints_engine_and_end_to_end_figures() -> None:
    outcome = await attune(
        "bench",
        "workflows",
        "--fanout-width",
        "20",
        "--chain-length",
        "5",
        "--held-workflows",
        "20",
        env=_env(),
        timeout=300,
    )
    assert outcome.code == 0, outcome.stderr
    for name in ("engine_chain_10000_s", "engine_fanout_5000_s", "fanout_20_tasks_per_s", "chain_5_step_ms"):
        assert name in outcome.stdout
    assert "GOAL" in outcome.stdout.splitlines()[0]
    held = next(line for line in outcome.stdout.splitlines() if line.startswith("coordinator_rss_20_workflows_mb"))
    assert "<= 1,024 MB" in held


async def test_workflow_bench_reads_the_coordinator_memory_holding_running_workflows() -> None:
    outcome = await attune(
        "bench",
        "workflows",
        "--fanout-width",
        "2",
        "--chain-length",
        "2",
        "--held-workflows",
        "20",
        "--output",
        "json",
        env=_env(),
        timeout=300,
    )
    assert outcome.code == 0, outcome.stderr
    figures = outcome.json()
    assert 0 < figures["coordinator_rss_20_workflows_mb"] < 1024
    assert 0 < figures["machine_loop_ms"] < 10_000
    assert "20 bench.held requested" in outcome.stderr
