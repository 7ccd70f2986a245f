"""Runs a benchmark suite against freshly started services (the launcher of ``attune up``)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attune import eventloop
from attune_services.bench.executions import noop_burst, noop_latency
from attune_services.bench.held_workflows import held_workflows_memory
from attune_services.bench.memory import rss_mb
from attune_services.bench.workflows import workflow_figures
from attune_services.cli.launcher import Launcher, LaunchPlan

IDLE_SECONDS = 2.0


def _launch(home: Path, database_url: str, env: dict[str, str], *, secure: bool = True) -> Launcher:
    plan = LaunchPlan.local(
        home,
        database_url,
        ports={"scheduler": 0, "coordinator": 0, "completion": 0, "worker": 0},
        env={"ATTUNE_LOG_LEVEL": "WARNING", **env},
        secure=secure,  # on by default: the figures that count are those of a secure deployment
    )
    launcher = Launcher(plan)
    launcher.migrate()
    launcher.start()
    return launcher


def with_services(
    database_url: str,
    ready_timeout: float,
    measure: Callable[[Launcher], dict[str, Any]],
    progress: Callable[[str], None],
    *,
    secure: bool = True,
) -> dict[str, Any]:
    """Starts the services in a temporary ATTUNE_HOME, runs ``measure``, stops them."""
    with tempfile.TemporaryDirectory(prefix="attune-bench-") as tmp:
        home = Path(tmp)
        progress(f"starting the services in {home} on {'PostgreSQL' if database_url else 'SQLite'}")
        launcher = _launch(home, database_url, {}, secure=secure)
        try:
            eventloop.run(launcher.wait_ready(ready_timeout))
            return measure(launcher)
        finally:
            launcher.stop()


def core_suite(
    database_url: str,
    *,
    samples: int,
    burst: int,
    ready_timeout: float,
    progress: Callable[[str], None],
    secure: bool = True,
) -> dict[str, Any]:
    """noop latency p50/p99, burst executions/s, shell overhead, idle RSS per service."""
    from attune_services.worker.runtimes.bench import measure_overhead

    def measure(launcher: Launcher) -> dict[str, Any]:
        time.sleep(IDLE_SECONDS)
        idle = rss_mb(launcher.pids())
        progress(f"idle RSS (MB): {idle}")

        async def remote() -> dict[str, float]:
            async with launcher.client() as client:
                progress(f"noop latency: {samples} sequential executions")
                latency = await noop_latency(client, samples=samples, progress=progress)
                progress(f"noop burst: {burst} concurrent executions")
                throughput = await noop_burst(client, count=burst)
                return {**latency, **throughput}

        figures = eventloop.run(remote())
        progress("shell overhead of the worker")
        shell = measure_overhead()["shell_overhead_ms"]
        return {
            "noop_latency_ms_p50": figures["noop_latency_ms_p50"],
            "noop_latency_ms_p99": figures["noop_latency_ms_p99"],
            "noop_executions_per_s": figures["noop_executions_per_s"],
            "shell_overhead_ms": shell,
            "idle_rss_mb": idle,
        }

    return with_services(database_url, ready_timeout, measure, progress, secure=secure)


def engine_figures(progress: Callable[[str], None]) -> dict[str, Any]:
    """attune.engine.bench.run_engine_benchmarks(), or a note when the engine has none yet."""
    try:
        from attune.engine.bench import run_engine_benchmarks
    except ImportError as err:
        progress(f"engine benchmarks unavailable: {err}")
        return {}
    progress("engine benchmarks (graph evaluation, no I/O)")
    return dict(run_engine_benchmarks())


def workflow_suite(
    database_url: str,
    *,
    width: int = 1000,
    length: int = 200,
    held: int = 10_000,
    ready_timeout: float,
    progress: Callable[[str], None],
    secure: bool = True,
) -> dict[str, Any]:
    """Engine figures plus fanout_<width>_tasks_per_s and chain_<length>_step_ms end to end, then
    coordinator_rss_<held>_workflows_mb (after the timed runs, so those run on a quiet system)."""
    figures = engine_figures(progress)

    def measure(launcher: Launcher) -> dict[str, Any]:
        async def remote() -> dict[str, float]:
            async with launcher.client() as client:
                progress(f"{width:,}-wide fan-out and {length}-step chain of core.noop")
                timed = await workflow_figures(client, width=width, length=length)
                progress(f"{held:,} running workflows held by the coordinator")
                memory = await held_workflows_memory(client, launcher.pids()["coordinator"], held, progress=progress)
                return {**timed, **memory}

        return eventloop.run(remote())

    figures.update(with_services(database_url, ready_timeout, measure, progress, secure=secure))
    return figures
