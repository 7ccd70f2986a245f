"""The mixed load of ``attune bench faults``: every workflow shape of the bundled ``examples``
pack and a mix of actions (no-ops, processes of three runtimes, long sleeps), each with the
result it must end with.

Every request carries a request_id and is retried with it until the scheduler takes it (the
retry of one already taken returns the original), so a request sent during a fault is either
created once or counted lost.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import struct_from_dict
from attune.ids import new_id
from attune.states import ExecutionState
from attune_services.cli.client import Client

#: The action of the bench_faults pack that logs each start of its process.
LOGGED_SLEEP = "bench_faults.logged_sleep"
#: Requests in flight at once while a wave is sent.
CONCURRENT_REQUESTS = 32
#: How long one RequestExecution may take before it is sent again (with the same request_id).
REQUEST_TIMEOUT_S = 5.0
RETRY_PAUSE_S = 0.5
#: gRPC codes after which a request is sent again; any other is a defect of the benchmark.
_RETRIED = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
    }
)


@dataclass(frozen=True)
class Request:
    """One execution the load asks for and the result it must end with (a subset of keys)."""

    ref: str
    parameters: Mapping[str, Any]
    expected: Mapping[str, Any]
    request_id: str = field(default_factory=new_id)
    #: A result key whose value must be the execution's own id (the logged action prints it).
    echoes_id: str = ""
    #: A workflow of the examples pack (its children are part of its work).
    is_workflow: bool = False

    def matches(self, execution_id: str, state: str, result: Mapping[str, Any] | None) -> bool:
        """Whether the execution ended as this request expects: succeeded with the expected result."""
        if state != ExecutionState.SUCCEEDED or result is None:
            return False
        expected = dict(self.expected)
        if self.echoes_id:
            expected[self.echoes_id] = execution_id
        return all(result.get(key) == value for key, value in expected.items())


def _workflows(i: int) -> list[Request]:
    """One of each example workflow shape; `i` varies the parameters."""
    name = f"n{i}"
    shapes = [
        Request("examples.single_echo", {}, {"succeeded": True, "message": "Hello from an Attune workflow"}),
        Request("examples.sequence", {"name": name}, {"greeting": f"Hello, {name}", "shouted": f"HELLO, N{i}!"}),
        Request("examples.failure_handler", {"fail": True}, {"outcome": "failed with exit code 1, recovered"}),
        Request("examples.parallel_join", {}, {"succeeded": True, "combined": "alpha + beta + gamma"}),
        Request("examples.countdown", {"count": 3}, {"succeeded": True, "ticks": 3}),
        Request(
            "examples.with_items",
            {"names": [f"a{i}", f"b{i}", f"c{i}"], "concurrency": 2},
            {"greetings": [f"#0: hello, a{i}", f"#1: hello, b{i}", f"#2: hello, c{i}"]},
        ),
        Request("examples.retry", {}, {"succeeded": True, "attempts": 3}),
        Request(
            "examples.nested",
            {"name": name},
            {"shouted": f"HELLO, N{i}!", "echoed": f"the inner workflow said HELLO, N{i}!"},
        ),
    ]
    return [replace(shape, is_workflow=True) for shape in shapes]


def _action_mix(log_file: Path, long_s: float) -> list[tuple[int, Callable[[int], Request]]]:
    """The actions per 300: (how many, a factory of the i-th request)."""
    log = str(log_file)
    return [
        (60, lambda i: Request("core.noop", {}, {"exit_code": 0})),
        (40, lambda i: Request("core.echo", {"message": f"m{i}"}, {"stdout": f"m{i}\n"})),
        (30, lambda i: Request("examples.py_sum", {"numbers": [i, 1]}, {"sum": i + 1, "count": 2})),
        (20, lambda i: Request("examples.node_hello", {"name": f"n{i}"}, {"greeting": f"Hello, n{i}."})),
        (100, lambda i: Request(LOGGED_SLEEP, {"log_file": log, "seconds": 0.2}, {}, echoes_id="execution_id")),
        (30, lambda i: Request(LOGGED_SLEEP, {"log_file": log, "seconds": long_s}, {}, echoes_id="execution_id")),
        (20, lambda i: Request("core.sleep", {"seconds": long_s * 0.7}, {"exit_code": 0})),
    ]


def mixed_load(scale: float, log_file: Path, long_s: float, seed: int = 0) -> list[Request]:
    """At scale 1: 30 workflows of each of the 8 example shapes and 300 actions (130 of them
    logging their starts to `log_file`, 50 sleeping about `long_s` seconds), shuffled."""
    requests: list[Request] = []
    for i in range(max(1, round(30 * scale))):
        requests += _workflows(i)
    for count, make in _action_mix(log_file, long_s):
        requests += [make(i) for i in range(max(1, round(count * scale)))]
    random.Random(seed).shuffle(requests)
    return requests


@dataclass
class Submitted:
    """What the scheduler answered to each request: its execution id, or why it never took it."""

    ids: dict[str, str] = field(default_factory=dict)  # request_id → execution id
    refused: dict[str, str] = field(default_factory=dict)  # request_id → last error


async def _request_once(client: Client, request: Request) -> str:
    reply = await client.executions.RequestExecution(
        execution_pb2.RequestExecutionRequest(
            action_ref=request.ref, parameters=struct_from_dict(dict(request.parameters)), request_id=request.request_id
        ),
        timeout=REQUEST_TIMEOUT_S,
    )
    return str(reply.execution.id)


async def submit(client: Client, requests: list[Request], give_up_at: float, into: Submitted) -> None:
    """Sends every request (CONCURRENT_REQUESTS at once), each retried until taken or until
    `give_up_at` (time.monotonic()); records the outcome of each in `into`."""
    slots = asyncio.Semaphore(CONCURRENT_REQUESTS)

    async def one(request: Request) -> None:
        async with slots:
            while True:
                try:
                    into.ids[request.request_id] = await _request_once(client, request)
                    into.refused.pop(request.request_id, None)
                    return
                except grpc.RpcError as err:
                    if err.code() not in _RETRIED:
                        raise RuntimeError(f"{request.ref}: {err.code().name}: {err.details()}") from err
                    into.refused[request.request_id] = f"{err.code().name}: {err.details()}"
                if time.monotonic() > give_up_at:
                    return
                await asyncio.sleep(RETRY_PAUSE_S)

    await asyncio.gather(*(one(request) for request in requests))
