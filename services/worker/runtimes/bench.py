"""The worker's own cost per shell action (docs/architecture.md, Performance goals: under 2 ms).

Overhead = wall time from "assignment received" (building the RunRequest) to "outcome ready",
minus the process's lifetime. The run's output goes through the live-output sink as in the worker
(`services/worker/logs.py`), its chunks acknowledged in process, as the scheduler would. The
lifetime runs from the interpreter's exec (fork/exec itself counts as *our* overhead) to the
kernel reporting the exit on a pidfd, observed independently of the module's own exit notice
(which comes later, through asyncio's child watcher: our cost too).
Runs on asyncio's own loop; under uvloop the spawn alone costs several milliseconds (libuv
forks the whole worker instead of using vfork).

    python -m attune_services.worker.runtimes.bench [samples]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVarTuple, Unpack

from attune.internal.worker.v1 import worker_pb2
from attune.states import ExecutionState

from ..logs import LogShipper
from ._launch import detect_runtimes
from ._model import RunRequest
from ._process import ActionProcess

GOAL_MS = 2.0
_WARMUP = 5
_Ts = TypeVarTuple("_Ts")


def measure_overhead(samples: int = 50) -> dict[str, float]:
    """Run a trivial shell script `samples` times; medians in milliseconds.

    `shell_overhead_ms` is measured with asyncio's default child watcher on 3.11 (a thread per
    child); `shell_overhead_pidfd_watcher_ms` with `asyncio.PidfdChildWatcher` installed, as a
    worker can do at startup (3.12+ uses pidfds by default). Runs alternate between the two, so
    a busy machine weighs on both alike. It swaps the process's child watcher while it runs:
    call it from a benchmark, not from inside a running worker.
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    return asyncio.run(_measure(samples))


async def _measure(samples: int) -> dict[str, float]:
    interpreters = detect_runtimes()
    loop = asyncio.get_running_loop()
    clocks: dict[str, _ExitClock] = {"threaded": _ThreadedClock(), "pidfd": _PidfdClock()}
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in clocks}
    previous = asyncio.get_child_watcher()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            actions = Path(tmp) / "actions"
            actions.mkdir()
            script = actions / "echo.sh"
            script.write_text('echo "hello $ATTUNE_PARAM_WHO"\n')
            for _ in range(samples + _WARMUP):
                for name, clock in clocks.items():
                    asyncio.set_child_watcher(clock)  # (closes the one it replaces)
                    clock.attach_loop(loop)  # the pidfd watcher needs its loop on 3.11
                    runs[name].append(await _one_run(script, actions, interpreters, clock))
    finally:
        asyncio.set_child_watcher(previous)
    overheads = [overhead for overhead, _ in runs["threaded"][_WARMUP:]]
    lifetimes = [lifetime for _, lifetime in runs["threaded"][_WARMUP:]]
    with_pidfd = [overhead for overhead, _ in runs["pidfd"][_WARMUP:]]
    median = statistics.median(overheads)
    return {
        "shell_overhead_ms": _ms(median),
        "shell_overhead_p90_ms": _ms(_p90(overheads)),
        "shell_overhead_pidfd_watcher_ms": _ms(statistics.median(with_pidfd)),
        "process_lifetime_ms": _ms(statistics.median(lifetimes)),
        "goal_ms": GOAL_MS,
        "ratio_to_goal": round(median * 1000 / GOAL_MS, 3),
        "samples": float(samples),
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


class _ExitClock(asyncio.AbstractChildWatcher):
    """A child watcher that also opens a pidfd the moment a child is registered (right after
    fork/exec, before anything could reap it) to see the kernel report its exit."""

    def __init__(self) -> None:
        super().__init__()
        self.lives: dict[int, tuple[float, asyncio.Future[float]]] = {}  # pid -> (exec'd, exited)

    def add_child_handler(self, pid: int, callback: Callable[[int, int, Unpack[_Ts]], object], *args: *_Ts) -> None:
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


class _ThreadedClock(_ExitClock, asyncio.ThreadedChildWatcher):
    pass


class _PidfdClock(_ExitClock, asyncio.PidfdChildWatcher):
    pass


async def _one_run(script: Path, actions: Path, interpreters: dict[str, str], clock: _ExitClock) -> tuple[float, float]:
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
    shipper = LogShipper(buffer_bytes=1 << 24)
    request = replace(request, output=shipper.open(request.execution_id, limit=request.output_limit_bytes))
    process = ActionProcess(request, interpreters)
    await process.start()
    outcome = await process.wait()
    sent = shipper.take(1 << 30) if shipper.has_outgoing() else []
    shipper.acked([worker_pb2.LogAck(execution_id=c.execution_id, seq=c.seq) for c in sent])
    await shipper.delivered(request.execution_id, timeout=1.0)
    ready = time.perf_counter()
    if not sent:
        raise RuntimeError("bench action printed nothing to the live output")
    assert process.pid is not None
    spawned, exit_seen = clock.lives.pop(process.pid)
    exited = await exit_seen
    if outcome.state != ExecutionState.SUCCEEDED:
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
