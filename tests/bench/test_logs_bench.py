"""`attune bench logs` in a tiny mode (its own services on SQLite, without TLS): it runs the
one-line and noisy-neighbour measures end to end and prints every figure. The figures' goals are
for the full run on a quiet machine (README, Performance), not asserted here."""

from __future__ import annotations

import pytest

from tests.cli.e2e import attune

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FIGURES = (
    "shell_silent_ms_p50",
    "shell_one_line_ms_p50",
    "one_line_cost_ms",
    "noop_latency_ms_p50_quiet",
    "noop_latency_ms_p50_noisy",
    "noisy_latency_ratio",
    "noop_executions_per_s_quiet",
    "noop_executions_per_s_noisy",
    "noisy_throughput_ratio",
    "noisy_cpu_ratio",
    "floods_run",
    "shell_overhead_ms",
)


async def test_tiny_logs_bench_prints_every_figure() -> None:
    outcome = await attune(
        "bench",
        "logs",
        "--samples",
        "1",
        "--burst",
        "20",
        "--noisy-bytes",
        "1000000",
        "--insecure",
        "--output",
        "json",
        env={},
        timeout=180,
    )
    assert outcome.code == 0, outcome.stderr[-2000:]
    figures = outcome.json()
    missing = [name for name in FIGURES if not isinstance(figures.get(name), (int, float))]
    assert not missing, figures
    assert figures["floods_run"] >= 1
    assert figures["shell_silent_ms_p50"] > 0 and figures["shell_one_line_ms_p50"] > 0
