"""Graph-evaluation benchmarks (docs/architecture.md, Performance goals): pure engine, no I/O.

``run_engine_benchmarks()`` drives a 10,000-task chain and a 5,000-wide fan-out
into ``join: all`` to completion (goal: under 1 s each), and the per-event cost of
chains of 100, 1,000 and 10,000 tasks (goal: flat). Parsing and compiling are
done once per version by the registry, so they are timed separately.
``python -m attune.engine.bench`` prints the figures as JSON.
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any

from attune.engine._states import RUNNING, SUCCEEDED

from .commands import FinishWorkflow, StartTask, TaskEnded
from .graph import CompiledWorkflow, compile_workflow
from .machine import start, task_ended
from .parse import parse_workflow
from .state import WorkflowState

__all__ = ["chain_document", "drive", "fanout_document", "run_engine_benchmarks"]


def chain_document(n: int) -> dict[str, Any]:
    """``t0 → t1 → … → t{n-1}``, each passing a templated input and publishing a variable."""
    tasks = []
    for i in range(n):
        task: dict[str, Any] = {
            "name": f"t{i}",
            "action": "core.noop",
            "input": {"step": i, "prev": "{{ vars.last | default(-1) }}"},
        }
        if i + 1 < n:
            task["next"] = [{"when": "{{ succeeded() }}", "publish": [{"last": i}], "do": f"t{i + 1}"}]
        tasks.append(task)
    return {"tasks": tasks, "output_map": {"last": "{{ vars.last }}"}}


def fanout_document(width: int) -> dict[str, Any]:
    """``split → b0..b{width-1} → merge (join: all)``."""
    branches = [f"b{i}" for i in range(width)]
    tasks: list[dict[str, Any]] = [{"name": "split", "action": "core.noop", "next": [{"do": branches}]}]
    for name in branches:
        tasks.append(
            {
                "name": name,
                "action": "core.noop",
                "input": {"who": name},
                "next": [{"when": "{{ succeeded() }}", "do": "merge"}],
            }
        )
    tasks.append({"name": "merge", "action": "core.noop", "join": "all"})
    return {"tasks": tasks}


def drive(wf: CompiledWorkflow) -> tuple[int, str]:
    """Run ``wf`` to the end, every child succeeding in FIFO order; returns (events, status)."""
    state = WorkflowState.new(parameters={})
    now = 0.0
    pending: deque[StartTask] = deque()
    events = 1
    status: str = RUNNING
    step = start(wf, state, now=now)
    while True:
        for command in step.commands:
            if isinstance(command, StartTask):
                pending.append(command)
            elif isinstance(command, FinishWorkflow):
                status = command.status
        if not pending:
            return events, status
        command = pending.popleft()
        step = task_ended(wf, state, TaskEnded(command.key, SUCCEEDED, {}), now=now)
        events += 1


def _timed_drive(wf: CompiledWorkflow, clock: Any = time.perf_counter) -> tuple[float, int]:
    began = clock()
    events, status = drive(wf)
    elapsed = clock() - began
    if status != SUCCEEDED:
        raise RuntimeError(f"benchmark workflow ended {status}")
    return elapsed, events


def _per_event_us(wf: CompiledWorkflow, repeats: int) -> float:
    total_s, total_events = 0.0, 0
    for _ in range(repeats):
        elapsed, events = _timed_drive(wf)
        total_s += elapsed
        total_events += events
    return total_s / total_events * 1e6


def _compile(doc: dict[str, Any], name: str) -> tuple[CompiledWorkflow, float]:
    began = time.perf_counter()
    wf = compile_workflow(parse_workflow(doc, source=f"bench/{name}.workflow.yaml"))
    return wf, time.perf_counter() - began


def run_engine_benchmarks() -> dict[str, Any]:
    """Measure the engine; returns the figures (seconds, microseconds per event)."""
    chain, chain_compile = _compile(chain_document(10_000), "chain")
    fanout, fanout_compile = _compile(fanout_document(5_000), "fanout")
    drive(compile_workflow(parse_workflow(chain_document(50), source="warmup")))  # warm caches
    # best of three: the figure is the engine's cost, not the noise of a shared machine
    chain_runs = [_timed_drive(chain) for _ in range(3)]
    fanout_s = min(_timed_drive(fanout)[0] for _ in range(3))
    chain_s = min(elapsed for elapsed, _ in chain_runs)
    per_event: dict[str, float] = {}
    for size in (100, 1_000, 10_000):
        wf = chain if size == 10_000 else _compile(chain_document(size), f"chain{size}")[0]
        # the same ~10,000 events for every size, so the minimum is not biased by sample count
        per_event[str(size)] = round(min(_per_event_us(wf, 10_000 // size) for _ in range(3)), 2)
    # CPU time too: on a shared machine wall time also counts waiting for a core
    chain_cpu = min(_timed_drive(chain, time.process_time)[0] for _ in range(3))
    fanout_cpu = min(_timed_drive(fanout, time.process_time)[0] for _ in range(3))
    return {
        "engine_chain_10000_s": round(chain_s, 4),
        "engine_fanout_5000_s": round(fanout_s, 4),
        "engine_chain_10000_cpu_s": round(chain_cpu, 4),
        "engine_fanout_5000_cpu_s": round(fanout_cpu, 4),
        "engine_event_us": per_event,
        "compile_chain_10000_s": round(chain_compile, 4),
        "compile_fanout_5000_s": round(fanout_compile, 4),
    }


if __name__ == "__main__":
    print(json.dumps(run_engine_benchmarks(), indent=2))
