"""Benchmark: the execution view's graph of a 1,000-task workflow in headless Chromium (issue #17:
it renders in under 1 s and stays live). Prints its figures; asserts only what must hold on any
machine (all 1,000 nodes drawn, the end state reached on screen, changes seen while it ran).

The workflow, registered through the public API: `start`, then 9 chains of 111 `core.noop`
tasks (1,000 tasks). The page is opened as the workflow starts; a MutationObserver records
when each node's `data-state` changes, which gives:

- `render_ms` / `painted_ms`: renderGraph's layout and DOM work, and up to the next frame
  (graph.js `timings`), `_busy` while the cluster runs the workflow on the same cores, `_idle`
  when the ended workflow is opened again; `open_to_graph_ms`: from the route change to 1,000
  nodes in the DOM (the API read of the snapshot included), busy and idle likewise;
- `update_ms_p50/max`: one snapshot's update() (graph.js `timings`);
- `latency_ms_p50/p95`: a task's run ending (its `finished_at`) to its node turning green on
  screen: the stream's snapshot interval, the API read and the update together;
- `live_batches`: distinct moments the graph changed while it ran (more than one = live).

The default run is one workflow of 199 tasks; ATTUNE_LONG_TESTS=1 runs five of 1,000 and prints
the medians.
"""

from __future__ import annotations

import datetime
import os
import statistics
import time
from typing import Any

import pytest
from playwright.async_api import Page

from attune.registry.v1 import registry_pb2
from tests.console.conftest import PageFor, browser, console, page_for, pytest_generate_tests, tokens  # noqa: F401
from tests.integration.cluster import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LONG = os.environ.get("ATTUNE_LONG_TESTS") == "1"
CHAINS = 9
#: The figures are for 1,000 tasks (the long run); the suite's run checks the same on 199, so
#: it costs seconds, not the half minute a 1,000-task workflow takes on a loaded machine.
CHAIN_LENGTH = 111 if LONG else 22
TASKS = 1 + CHAINS * CHAIN_LENGTH
RUNS = 5 if LONG else 1
GOAL_MS = 1000.0

ALL_NODES = "(n) => document.querySelectorAll('g.node').length === n"
ALL_GREEN = "(n) => document.querySelectorAll('g.node[data-state=succeeded]').length === n"
ENDED_GREEN = "() => document.querySelector('#execution-state [data-state]')?.dataset.state === 'succeeded'"

#: Records every node state change with its time (Date.now(), comparable with the API's times).
OBSERVER = """
window.__changes = [];
if (!window.__observing) new MutationObserver((records) => {
  const now = Date.now();
  for (const r of records) {
    const task = r.target.dataset && r.target.dataset.task;
    if (task) window.__changes.push([task, r.target.getAttribute('data-state'), now]);
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-state']});
window.__observing = true;
"""


def _workflow() -> str:
    lines = ["ref: consolebench.chains", "label: 9 chains of 111 no-op tasks", "tasks:"]
    lines += ["  - name: start", "    action: core.noop", "    next:"]
    lines += ["      - do: [" + ", ".join(f"c{c}_0" for c in range(CHAINS)) + "]"]
    for c in range(CHAINS):
        for i in range(CHAIN_LENGTH):
            lines += [f"  - name: c{c}_{i}", "    action: core.noop"]
            if i + 1 < CHAIN_LENGTH:
                lines += ["    next:", '      - when: "{{ succeeded() }}"', f"        do: c{c}_{i + 1}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
async def chains(cluster: Cluster) -> str:
    files = {
        "pack.yaml": 'ref: consolebench\nlabel: Console bench\nversion: "1.0.0"\n',
        "workflows/chains.workflow.yaml": _workflow(),
    }
    request = registry_pb2.RegisterPackRequest(
        files=[registry_pb2.PackFile(path=p, content=t.encode()) for p, t in files.items()]
    )
    await cluster.registry.RegisterPack(request, timeout=60)
    return "consolebench.chains"


def _epoch_ms(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _one_run(cluster: Cluster, page: Page, action: str) -> dict[str, float]:
    await page.evaluate(OBSERVER)
    execution = await cluster.request(action)
    opened = time.perf_counter()
    await page.evaluate("(id) => { location.hash = '#/executions/' + id; }", execution.id)
    await page.wait_for_function(ALL_NODES, arg=TASKS, timeout=30_000)
    open_ms = (time.perf_counter() - opened) * 1000
    await cluster.wait_terminal(execution.id, timeout=120)
    await page.wait_for_function(ENDED_GREEN, timeout=60_000)
    await page.wait_for_function(ALL_GREEN, arg=TASKS)
    measured: dict[str, Any] = await page.evaluate(
        """async () => {
            const { timings } = await import('/static/js/graph.js');
            const snapshot = await fetch('/api/executions/' + location.hash.split('/').pop()).then(r => r.json());
            return { timings, changes: window.__changes, runs: snapshot.workflow.task_runs };
        }"""
    )
    finished = {run["task_name"]: _epoch_ms(run["finished_at"]) for run in measured["runs"] if run["finished_at"]}
    green: dict[str, float] = {}
    for task, state, at in measured["changes"]:
        if state == "succeeded" and task not in green:
            green[task] = at
    latencies = [green[t] - finished[t] for t in green if t in finished]
    first_green = min(green.values())
    batches = {at for _, _, at in measured["changes"] if at >= first_green}
    updates = measured["timings"]["update"]
    idle = await _reopen(page, execution.id)
    return {
        "render_ms_busy": measured["timings"]["render"][-1],
        "painted_ms_busy": measured["timings"]["painted"][-1],
        "render_ms_idle": idle["render"][-1],
        "painted_ms_idle": idle["painted"][-1],
        "open_to_graph_ms_busy": open_ms,
        "open_to_graph_ms_idle": idle["open"][0],
        "update_ms_p50": statistics.median(updates),
        "update_ms_max": max(updates),
        "latency_ms_p50": _percentile(latencies, 0.5),
        "latency_ms_p95": _percentile(latencies, 0.95),
        "live_batches": float(len(batches)),
        "nodes_turned_green": float(len(green)),
    }


async def _reopen(page: Page, execution_id: str) -> dict[str, list[float]]:
    """Leave the page and open the ended workflow again: its graph drawn on a quiet cluster."""
    await page.evaluate("() => { location.hash = '#/packs'; }")
    await page.wait_for_function("() => !document.querySelector('svg.attune-graph')")
    opened = time.perf_counter()
    await page.evaluate("(id) => { location.hash = '#/executions/' + id; }", execution_id)
    await page.wait_for_function(ALL_GREEN, arg=TASKS)
    open_ms = (time.perf_counter() - opened) * 1000
    await page.wait_for_timeout(300)  # the `painted` figure lands a frame later
    timings: dict[str, list[float]] = await page.evaluate("async () => (await import('/static/js/graph.js')).timings")
    return {**timings, "open": [open_ms]}


async def test_a_1000_task_graph_renders_under_a_second_and_stays_live(
    cluster: Cluster,
    chains: str,
    page_for: PageFor,  # noqa: F811 (the console tests' fixture, imported above)
) -> None:
    page = await page_for("viewer")
    await page.set_viewport_size({"width": 1400, "height": 900})
    results = [await _one_run(cluster, page, chains) for _ in range(RUNS)]
    figures = {name: statistics.median(r[name] for r in results) for name in results[0]}
    print(f"\nconsole graph bench, {TASKS} tasks, {RUNS} run(s), medians:")
    for name, value in figures.items():
        goal = f"  (goal < {GOAL_MS:.0f} ms: ratio {value / GOAL_MS:.2f})" if name.startswith("painted") else ""
        print(f"  {name:20s} {value:10.1f}{goal}")
    assert figures["nodes_turned_green"] == TASKS
    assert figures["live_batches"] > 1, "the graph changed only once: it was not live"
