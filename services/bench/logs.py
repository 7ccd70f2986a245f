"""``attune bench logs``: what live output costs (docs/operations.md, Live output).

Two figures, on freshly started services:

- **one line**: sequential shell executions that print one line against ones that print nothing,
  alternated, request to ``succeeded`` as a client sees it; the difference of the medians is what
  one line costs end to end (its chunk sent, stored, acknowledged before the result goes). Goal:
  under 2 ms. The worker's own overhead, in process, with the live-output sink, comes too.
- **noisy neighbour**: a no-op workload (sequential latency, then a concurrent burst) alone, then
  again while actions printing ``noisy_bytes`` (default 50 MB) as fast as they can run one after
  the other; five rounds of each, alternated, and the medians. Goal: the no-op figures within
  20 % of their quiet values. On a shared machine those wall-clock figures move with whatever
  else runs, so the services' CPU seconds for the workload come too (the worker's included: it
  reads the floods), quiet and noisy.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import struct_from_dict
from attune.registry.v1 import registry_pb2
from attune.states import TERMINAL, ExecutionState
from attune_services.bench.executions import noop_burst, noop_latency
from attune_services.cli.client import Client
from attune_services.cli.output import state_of
from attune_services.cli.watching import follow

#: The slowdown of other executions the noisy neighbour may cause (as a ratio, 1.2 = 20 %).
NOISY_GOAL_RATIO = 1.2
ONE_LINE_GOAL_MS = 2.0
#: Quiet and noisy rounds, alternated.
NOISY_ROUNDS = 5
_WARMUP = 5

_PACK = {
    "pack.yaml": "ref: benchlogs\nlabel: Live output bench\nversion: 0.1.0\n",
    "actions/silent.yaml": "ref: benchlogs.silent\nlabel: Silent\nrunner_type: shell\nentry_point: silent.sh\n",
    "actions/silent.sh": ":\n",
    "actions/one_line.yaml": "ref: benchlogs.one_line\nlabel: One line\nrunner_type: shell\nentry_point: one_line.sh\n",
    "actions/one_line.sh": "echo hello\n",
    "actions/flood.yaml": (
        "ref: benchlogs.flood\nlabel: Flood\nrunner_type: shell\nentry_point: flood.sh\n"
        "parameters:\n  bytes:\n    type: integer\n    required: true\n"
    ),
    # Lines of 64 characters, as fast as `yes` writes them.
    "actions/flood.sh": 'yes "$(printf "%063d" 0)" | head -c "$ATTUNE_PARAM_BYTES"\n',
}


async def register_bench_pack(client: Client) -> None:
    """Registers the benchlogs pack (silent, one_line, flood)."""
    files = [registry_pb2.PackFile(path=path, content=text.encode()) for path, text in _PACK.items()]
    await client.registry.RegisterPack(registry_pb2.RegisterPackRequest(files=files), timeout=60)


async def run_to_end(client: Client, action_ref: str, parameters: dict[str, Any] | None = None) -> float:
    """Seconds from the request until the execution succeeded (RuntimeError if it did not)."""
    started = time.perf_counter()
    request = execution_pb2.RequestExecutionRequest(action_ref=action_ref, parameters=struct_from_dict(parameters))
    response = await client.executions.RequestExecution(request)
    async for snapshot in follow(client, response.execution.id):
        state = state_of(snapshot.execution)
        if state == ExecutionState.SUCCEEDED:
            return time.perf_counter() - started
        if state in TERMINAL:
            raise RuntimeError(f"{action_ref} {response.execution.id} ended {state}: {snapshot.execution.error}")
    raise RuntimeError(f"{action_ref} {response.execution.id}: the watch ended before it did")


async def one_line_figures(client: Client, samples: int) -> dict[str, float]:
    """Medians of silent and one-line shell executions, alternated, and their difference (ms)."""
    silent: list[float] = []
    one_line: list[float] = []
    for index in range(samples + _WARMUP):
        quiet = await run_to_end(client, "benchlogs.silent")
        printing = await run_to_end(client, "benchlogs.one_line")
        if index >= _WARMUP:
            silent.append(quiet)
            one_line.append(printing)
    silent_ms = statistics.median(silent) * 1000
    one_line_ms = statistics.median(one_line) * 1000
    return {
        "shell_silent_ms_p50": round(silent_ms, 3),
        "shell_one_line_ms_p50": round(one_line_ms, 3),
        "one_line_cost_ms": round(one_line_ms - silent_ms, 3),
    }


def cpu_seconds(pids: Mapping[str, int]) -> float:
    """User and system CPU seconds the processes have used so far, together (0 off Linux)."""
    total = 0.0
    for pid in pids.values():
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def _workload(client: Client, samples: int, burst: int, pids: Mapping[str, int]) -> dict[str, float]:
    before = cpu_seconds(pids)
    latency = await noop_latency(client, samples=samples, warmup=min(20, samples))
    throughput = await noop_burst(client, count=burst)
    return {
        "p50": latency["noop_latency_ms_p50"],
        "per_s": throughput["noop_executions_per_s"],
        "cpu_s": cpu_seconds(pids) - before,
    }


async def noisy_figures(
    client: Client,
    *,
    samples: int,
    burst: int,
    noisy_bytes: int,
    progress: Callable[[str], None],
    rounds: int = NOISY_ROUNDS,
    pids: Mapping[str, int] | None = None,
) -> dict[str, float]:
    """The no-op workload alone and beside back-to-back floods of `noisy_bytes` each, alternated
    `rounds` times (a busy machine then weighs on both alike); medians of the rounds. With the
    services' `pids`, also the CPU seconds the services used for the workload (the worker's
    included: it reads the floods), which another process's load does not change."""
    pids = pids or {}
    quiet: list[dict[str, float]] = []
    noisy: list[dict[str, float]] = []
    floods: list[float] = []
    for round_number in range(1, rounds + 1):
        progress(f"round {round_number}/{rounds}: no-op workload alone ({samples} sequential, a burst of {burst})")
        quiet.append(await _workload(client, samples, burst, pids))
        progress(f"round {round_number}/{rounds}: the same beside actions printing {noisy_bytes / 1e6:g} MB each")
        noisy.append(await _beside_floods(client, samples, burst, noisy_bytes, floods, pids))
        progress(
            f"  no-op p50 {quiet[-1]['p50']:.2f} ms alone, {noisy[-1]['p50']:.2f} ms beside; "
            f"{quiet[-1]['per_s']:.0f}/s alone, {noisy[-1]['per_s']:.0f}/s beside; "
            f"services' CPU {quiet[-1]['cpu_s']:.2f} s alone, {noisy[-1]['cpu_s']:.2f} s beside"
        )
    quiet_p50 = statistics.median(r["p50"] for r in quiet)
    noisy_p50 = statistics.median(r["p50"] for r in noisy)
    quiet_rate = statistics.median(r["per_s"] for r in quiet)
    noisy_rate = statistics.median(r["per_s"] for r in noisy)
    quiet_cpu = statistics.median(r["cpu_s"] for r in quiet)
    noisy_cpu = statistics.median(r["cpu_s"] for r in noisy)
    return {
        "noop_latency_ms_p50_quiet": quiet_p50,
        "noop_latency_ms_p50_noisy": noisy_p50,
        "noisy_latency_ratio": round(noisy_p50 / quiet_p50, 3),
        "noop_executions_per_s_quiet": quiet_rate,
        "noop_executions_per_s_noisy": noisy_rate,
        "noisy_throughput_ratio": round(quiet_rate / noisy_rate, 3),
        "services_cpu_s_quiet": round(quiet_cpu, 3),
        "services_cpu_s_noisy": round(noisy_cpu, 3),
        "noisy_cpu_ratio": round(noisy_cpu / quiet_cpu, 3) if quiet_cpu > 0 else 0.0,
        "floods_run": float(len(floods)),
        "flood_s_p50": round(statistics.median(floods), 3) if floods else 0.0,
    }


async def _beside_floods(
    client: Client, samples: int, burst: int, noisy_bytes: int, floods: list[float], pids: Mapping[str, int]
) -> dict[str, float]:
    """The workload while floods run one after the other (each one's duration added to `floods`)."""
    stop = asyncio.Event()

    async def flood() -> None:
        while not stop.is_set():
            floods.append(await run_to_end(client, "benchlogs.flood", {"bytes": noisy_bytes}))

    flooding = asyncio.create_task(flood())
    try:
        await asyncio.sleep(0.2)  # the first flood is running
        return await _workload(client, samples, burst, pids)
    finally:
        stop.set()
        await flooding


def logs_suite(
    database_url: str,
    *,
    samples: int,
    burst: int,
    noisy_bytes: int,
    ready_timeout: float,
    progress: Callable[[str], None],
    secure: bool = True,
) -> dict[str, Any]:
    """Both figures (see the module docstring), plus the worker's in-process shell overhead."""
    from attune import eventloop
    from attune_services.bench.suite import with_services
    from attune_services.worker.runtimes.bench import measure_overhead

    def measure(launcher: Any) -> dict[str, Any]:
        async def remote() -> dict[str, float]:
            async with launcher.client() as client:
                await register_bench_pack(client)
                progress(f"one line: {samples} silent and {samples} one-line shell executions, alternated")
                lines = await one_line_figures(client, samples)
                noisy = await noisy_figures(
                    client,
                    samples=samples,
                    burst=burst,
                    noisy_bytes=noisy_bytes,
                    progress=progress,
                    rounds=min(NOISY_ROUNDS, samples),  # a tiny run (tests) does one or two
                    pids=launcher.pids(),
                )
                return {**lines, **noisy}

        figures = eventloop.run(remote())
        progress("shell overhead of the worker, in process, with the live-output sink")
        figures["shell_overhead_ms"] = measure_overhead(min(samples, 50))["shell_overhead_ms"]
        return figures

    return with_services(database_url, ready_timeout, measure, progress, secure=secure)
