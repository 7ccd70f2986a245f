"""Memory of a coordinator holding many running workflows (docs/architecture.md, Performance goals:
10,000 without growing past 1 GB).

``count`` runs of ``bench.held`` (one task behind a week-long ``delay``: a durable timer, no child
execution, no action process) are requested with a bounded number in flight; once the coordinator
lists every one of them as running — its own record; it keeps a running workflow in memory — the
coordinator process's RSS is read.

They are not cancelled afterwards: the scheduler cancels a workflow at ~70/s (each CancelExecution
is a round trip to the coordinator), so 10,000 would take minutes. The services are stopped with
the workflows still running; on SQLite the temporary database goes with them, on PostgreSQL they
stay in the database as ``running`` (their timers a week away), so bench on a fresh database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_to_proto, workflow_state_to_proto
from attune.ids import new_id
from attune.states import ExecutionState
from attune.workflow.v1 import workflow_pb2
from attune_services.bench.memory import rss_mb
from attune_services.bench.workflows import HELD_REF
from attune_services.cli.client import Client

IN_FLIGHT = 64
PAGE_SIZE = 1000
POLL_INTERVAL_S = 0.5


def figure_name(count: int) -> str:
    """The figure's key: ``coordinator_rss_<count>_workflows_mb``."""
    return f"coordinator_rss_{count}_workflows_mb"


async def _bounded(items: Iterable[str], call: Callable[[str], Awaitable[None]], in_flight: int = IN_FLIGHT) -> None:
    """Runs ``call`` on each item with at most ``in_flight`` calls at a time."""
    pending = iter(items)

    async def lane() -> None:
        for item in pending:  # the lanes share one iterator: each item is taken once
            await call(item)

    await asyncio.gather(*(lane() for _ in range(in_flight)))


async def start_held(client: Client, count: int) -> list[str]:
    """Requests ``count`` runs of bench.held; returns their execution ids."""
    ids: list[str] = []

    async def request(request_id: str) -> None:
        response = await client.executions.RequestExecution(
            execution_pb2.RequestExecutionRequest(action_ref=HELD_REF, request_id=request_id)
        )
        ids.append(response.execution.id)

    await _bounded((new_id() for _ in range(count)), request)
    return ids


async def coordinator_running(client: Client, ids: set[str]) -> int:
    """How many of ``ids`` the coordinator lists as running workflow runs (paging all of them)."""
    held, token = 0, ""
    while True:
        response = await client.workflows.ListWorkflowRuns(
            workflow_pb2.ListWorkflowRunsRequest(
                state=workflow_state_to_proto(ExecutionState.RUNNING), page_size=PAGE_SIZE, page_token=token
            )
        )
        held += sum(1 for run in response.runs if run.execution_id in ids)
        token = response.next_page_token
        if not token:
            return held


async def _handed_off(client: Client) -> bool:
    """Whether no bench.held execution still waits for the hand-off (requested or scheduling)."""
    for state in (ExecutionState.REQUESTED, ExecutionState.SCHEDULING):
        response = await client.executions.ListExecutions(
            execution_pb2.ListExecutionsRequest(state=execution_state_to_proto(state), action_ref=HELD_REF, page_size=1)
        )
        if response.executions:
            return False
    return True


async def wait_held(client: Client, ids: set[str], timeout: float) -> None:
    """Polls until the coordinator lists every one of ``ids`` as running (its list is paged through
    only once the scheduler has nothing of bench.held left to hand off)."""
    deadline = time.monotonic() + timeout
    while True:
        if await _handed_off(client) and await coordinator_running(client, ids) == len(ids):
            return
        if time.monotonic() > deadline:
            held = await coordinator_running(client, ids)
            raise RuntimeError(f"the coordinator holds {held:,} of {len(ids):,} {HELD_REF} after {timeout:g} s")
        await asyncio.sleep(POLL_INTERVAL_S)


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak RSS (VmHWM) in MB, where /proc tells it (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


async def held_workflows_memory(
    client: Client,
    coordinator_pid: int,
    count: int = 10_000,
    timeout: float = 300.0,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, float]:
    """``coordinator_rss_<count>_workflows_mb``: the coordinator's RSS while it holds ``count``
    running workflows (left running: see the module's docstring). Timings, the RSS before and the
    peak go to ``progress``."""
    before = rss_mb({"coordinator": coordinator_pid})["coordinator"]
    started = time.perf_counter()
    ids = await start_held(client, count)
    requested_s = time.perf_counter() - started
    await wait_held(client, set(ids), timeout)
    held_s = time.perf_counter() - started
    rss = rss_mb({"coordinator": coordinator_pid})["coordinator"]
    progress(
        f"  {count:,} {HELD_REF} requested in {requested_s:.1f} s, all running in the coordinator after "
        f"{held_s:.1f} s ({count / held_s:,.0f} workflows/s)"
    )
    peak = peak_rss_mb(coordinator_pid)
    progress(
        f"  coordinator RSS {before:,.1f} MB before, {rss:,.1f} MB holding them"
        + (f" (peak {peak:,.1f} MB)" if peak is not None else "")
    )
    progress("  they are left running (cancelling runs at ~70/s); the services stop with them")
    return {figure_name(count): rss}
