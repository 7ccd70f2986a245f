"""No-op executions end to end: sequential latency and the throughput of a concurrent burst."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_to_proto
from attune.ids import new_id
from attune.states import ACTIVE, ExecutionState
from attune_services.cli.client import Client
from attune_services.cli.output import seconds_of, state_of
from attune_services.cli.watching import follow

NOOP = "core.noop"
POLL_INTERVAL_S = 0.25


def _noop_request() -> execution_pb2.RequestExecutionRequest:
    return execution_pb2.RequestExecutionRequest(action_ref=NOOP, request_id=new_id())


def _ended(execution: execution_pb2.Execution, started: float) -> tuple[float, float]:
    """Seconds since `started`, and the server's own created_at → finished_at of a succeeded no-op."""
    elapsed = time.perf_counter() - started
    if state_of(execution) != ExecutionState.SUCCEEDED:
        raise RuntimeError(f"{NOOP} {execution.id} ended {state_of(execution)}: {execution.error}")
    created, finished = seconds_of(execution.created_at), seconds_of(execution.finished_at)
    return elapsed, (finished - created) if created is not None and finished is not None else elapsed


async def one_noop(client: Client) -> tuple[float, float]:
    """One RunExecution (request and wait in one call, as `attune run --wait` does): seconds from
    the call to its answer, and the server's created_at → finished_at."""
    started = time.perf_counter()
    answer = await client.executions.RunExecution(execution_pb2.RunExecutionRequest(request=_noop_request()))
    return _ended(answer.execution, started)


async def one_noop_two_calls(client: Client) -> tuple[float, float]:
    """The two-call pattern clients used before RunExecution: RequestExecution, then
    WatchExecution until ``succeeded``."""
    started = time.perf_counter()
    response = await client.executions.RequestExecution(_noop_request())
    async for snapshot in follow(client, response.execution.id):
        if state_of(snapshot.execution) not in ACTIVE:
            return _ended(snapshot.execution, started)
    raise RuntimeError(f"{NOOP} {response.execution.id}: the watch ended before it did")


async def stream_noops(client: Client, samples: int) -> list[float]:
    """Sequential no-ops over one RunExecutions stream (a client that runs many): seconds each."""
    requests: asyncio.Queue[execution_pb2.RunExecutionsRequest | None] = asyncio.Queue()

    async def sent() -> AsyncIterator[execution_pb2.RunExecutionsRequest]:
        while (request := await requests.get()) is not None:
            yield request

    call = client.executions.RunExecutions(sent())
    answers = call.__aiter__()
    timings: list[float] = []
    try:
        for _ in range(samples):
            started = time.perf_counter()
            requests.put_nowait(execution_pb2.RunExecutionsRequest(request=_noop_request()))
            answer = await anext(answers)
            if answer.HasField("error"):
                raise RuntimeError(f"RunExecutions: {answer}")
            timings.append(_ended(answer.execution, started)[0])
    finally:
        requests.put_nowait(None)
        call.cancel()
    return timings


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def noop_latency(
    client: Client, samples: int = 200, warmup: int = 20, progress: Callable[[str], None] | None = None
) -> dict[str, float]:
    """p50 and p99 of sequential single no-op executions as the client sees them (one
    RunExecution each), in milliseconds. With ``progress``, also the server-side p50, the
    two-call pattern's p50 and a RunExecutions stream's p50, interleaved in rounds so a
    machine's slow period touches all three alike."""
    for _ in range(warmup):
        await one_noop(client)
    pairs: list[tuple[float, float]] = []
    two_calls: list[float] = []
    streamed: list[float] = []
    rounds = min(4, samples)
    per_round = max(1, samples // rounds)
    for _ in range(rounds):
        pairs += [await one_noop(client) for _ in range(per_round)]
        if progress is not None:
            two_calls += [(await one_noop_two_calls(client))[0] for _ in range(max(1, per_round // 2))]
            streamed += await stream_noops(client, per_round)
    timings = [client_s for client_s, _ in pairs]
    if progress is not None:
        server_ms = statistics.median(server_s for _, server_s in pairs) * 1000
        progress(f"  server-side created_at → finished_at p50: {server_ms:.2f} ms")
        progress(f"  RequestExecution + WatchExecution (two calls) p50: {statistics.median(two_calls) * 1000:.2f} ms")
        progress(f"  RunExecutions stream p50: {statistics.median(streamed) * 1000:.2f} ms")
    return {
        "noop_latency_ms_p50": round(statistics.median(timings) * 1000, 3),
        "noop_latency_ms_p99": round(_percentile(timings, 0.99) * 1000, 3),
    }


async def _active_count(client: Client) -> int:
    """How many core.noop executions are not yet terminal (0 or "at least one" per state)."""
    total = 0
    for state in ACTIVE:
        response = await client.executions.ListExecutions(
            execution_pb2.ListExecutionsRequest(state=execution_state_to_proto(state), action_ref=NOOP, page_size=1)
        )
        total += len(response.executions)
    return total


async def _finished_times(client: Client, ids: set[str]) -> tuple[list[float], dict[str, int]]:
    """finished_at of each of ``ids`` and a count per final state (paging newest first)."""
    finished: list[float] = []
    states: dict[str, int] = {}
    token = ""
    seen = 0
    while seen < len(ids):
        response = await client.executions.ListExecutions(
            execution_pb2.ListExecutionsRequest(action_ref=NOOP, page_size=1000, page_token=token)
        )
        for execution in response.executions:
            if execution.id in ids:
                seen += 1
                states[state_of(execution)] = states.get(state_of(execution), 0) + 1
                stamp = seconds_of(execution.finished_at)
                if stamp is not None:
                    finished.append(stamp)
        token = response.next_page_token
        if not token:
            break
    return finished, states


#: The timed burst follows an untimed one this fraction of its size (as the latency samples
#: follow warm-up executions): the first burst on fresh services also opens and prepares the
#: pooled database connections a burst needs beyond the few the sequential executions used.
WARMUP_FRACTION = 0.25
#: Pause between the warm-up burst and the timed one, so that its tail does not overlap.
WARMUP_PAUSE_S = 1.0


async def noop_burst(client: Client, count: int = 2000, timeout: float = 120.0) -> dict[str, float]:
    """``count`` concurrent RequestExecution of core.noop, after an untimed burst of
    ``WARMUP_FRACTION`` of it; executions/s from the first request until the last succeeded."""

    async def request() -> execution_pb2.RequestExecutionResponse:
        response: execution_pb2.RequestExecutionResponse = await client.executions.RequestExecution(_noop_request())
        return response

    await asyncio.gather(*(request() for _ in range(int(count * WARMUP_FRACTION))))
    await asyncio.sleep(WARMUP_PAUSE_S)
    started_wall = time.time()
    started = time.perf_counter()
    responses = await asyncio.gather(*(request() for _ in range(count)))
    requested_s = time.perf_counter() - started
    ids = {r.execution.id for r in responses}
    deadline = time.monotonic() + timeout
    while True:
        # One state at a time is not a snapshot (an execution can move from a state not yet
        # counted to one already counted), so a zero count is confirmed on the ids themselves.
        if not await _active_count(client):
            observed_s = time.perf_counter() - started
            finished, states = await _finished_times(client, ids)
            if not any(state in ACTIVE for state in states):
                break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the burst of {count} {NOOP} did not finish within {timeout:g} s")
        # The figure comes from the server's finished_at, so polling often buys no precision; it
        # would only load the scheduler being measured (five ListExecutions per poll).
        await asyncio.sleep(POLL_INTERVAL_S)
    if states.get(ExecutionState.SUCCEEDED, 0) != count:
        raise RuntimeError(f"the burst of {count} {NOOP} ended {states}, not all succeeded")
    # The server's finished_at of the last one is exact; polling only bounds it from above.
    elapsed = (max(finished) - started_wall) if finished else observed_s
    elapsed = max(elapsed, requested_s, 1e-6)
    return {"noop_executions_per_s": round(count / elapsed, 1)}
