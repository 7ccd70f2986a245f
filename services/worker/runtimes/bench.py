"""The worker's own cost per shell action (DESIGN §6: under 2 ms).

Overhead = wall time from "assignment received" (building the RunRequest) to "outcome ready",
minus the process's lifetime. The lifetime runs from the interpreter's exec (fork/exec itself
counts as *our* overhead) to the kernel reporting the exit on a pidfd, observed independently of
the module's own exit notice (which comes later, through asyncio's child watcher: our cost too).
Runs on asyncio's default loop; under uvloop the spawn alone costs several milliseconds.

    python -m attune_services.worker.runtimes.bench [samples]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Callable
from typing import TypeVarTuple, Unpack

from ._launch import detect_runtimes
from ._model import RunRequest
from ._process import ActionProcess

GOAL_MS = 2.0
_WARMUP = 5
_Ts = TypeVarTuple("_Ts")


def measure_overhead(samples: int = 50) -> dict[str, float]:
    """Run a trivial shell script `samples` times; medians in milliseconds."""
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    return asyncio.run(_measure(samples))


async def _measure(samples: int) -> dict[str, float]:
    interpreters = detect_runtimes()
    previous = asyncio.get_child_watcher()
    clock = _ExitClock()
    asyncio.set_child_watcher(clock)
    try:
        return await _sample(samples, interpreters, clock)
    finally:
        asyncio.set_child_watcher(previous)


async def _sample(
    samples: int, interpreters: dict[str, str], clock: _ExitClock
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        actions = Path(tmp) / "actions"
        actions.mkdir()
        script = actions / "echo.sh"
        script.write_text('echo "hello $ATTUNE_PARAM_WHO"\n')
        overheads: list[float] = []
        lifetimes: list[float] = []
        for _ in range(samples + _WARMUP):
            overhead, lifetime = await _one_run(script, actions, interpreters, clock)
            overheads.append(overhead)
            lifetimes.append(lifetime)
    overheads, lifetimes = overheads[_WARMUP:], lifetimes[_WARMUP:]
    median = statistics.median(overheads)
    return {
        "shell_overhead_ms": round(median * 1000, 3),
        "shell_overhead_p90_ms": round(_p90(overheads) * 1000, 3),
        "process_lifetime_ms": round(statistics.median(lifetimes) * 1000, 3),
        "goal_ms": GOAL_MS,
        "ratio_to_goal": round(median * 1000 / GOAL_MS, 3),
        "samples": float(samples),
    }


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


class _ExitClock(asyncio.ThreadedChildWatcher):
    """asyncio's default child watcher, plus a pidfd opened the moment the child is registered
    (right after fork/exec, before anything could reap it) to see the kernel report its exit."""

    def __init__(self) -> None:
        super().__init__()
        self.lives: dict[int, tuple[float, asyncio.Future[float]]] = {}  # pid -> (exec'd, exited)

    def add_child_handler(
        self, pid: int, callback: Callable[[int, int, Unpack[_Ts]], object], *args: Unpack[_Ts]
    ) -> None:
        spawned = time.perf_counter()
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[float] = loop.create_future()
        pidfd = os.pidfd_open(pid)

        def on_exit() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            exited.set_result(time.perf_counter())

        loop.add_reader(pidfd, on_exit)
        self.lives[pid] = (spawned, exited)
        super().add_child_handler(pid, callback, *args)


async def _one_run(
    script: Path, actions: Path, interpreters: dict[str, str], clock: _ExitClock
) -> tuple[float, float]:
    """(overhead, lifetime) in seconds for one run of `script`; the lifetime runs from the
    interpreter's exec (the watcher is told of the child right after fork/exec returns) to the
    kernel's exit notice on the pidfd."""
    received = time.perf_counter()
    request = RunRequest(
        execution_id="bench",
        action_ref="bench.echo",
        runtime="shell",
        entry_point=script,
        working_dir=actions,
        parameters={"who": "world"},
    )
    process = ActionProcess(request, interpreters)
    await process.start()
    outcome = await process.wait()
    ready = time.perf_counter()
    assert process.pid is not None
    spawned, exit_seen = clock.lives.pop(process.pid)
    exited = await exit_seen
    if outcome.state != "succeeded":
        raise RuntimeError(f"bench action failed: {outcome.error}")
    lifetime = exited - spawned
    return (ready - received) - lifetime, lifetime


def main() -> None:
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    figures = measure_overhead(samples)
    for name, value in figures.items():
        print(f"{name}: {value:g}")


if __name__ == "__main__":
    main()
