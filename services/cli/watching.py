"""Following an execution until it ends: WatchExecution, resumed if the stream breaks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeAlias

import grpc

from attune.execution.v1 import execution_pb2
from attune.states import TERMINAL
from attune_services.cli.client import Client
from attune_services.cli.output import state_of

Snapshot: TypeAlias = execution_pb2.WatchExecutionResponse
_RESUME_ATTEMPTS = 20
_RESUME_DELAY = 0.25


async def follow(client: Client, execution_id: str) -> AsyncIterator[Snapshot]:
    """Yields each snapshot of the execution until one shows it terminal.

    A stream that ends early or breaks (UNAVAILABLE) is reopened; other errors propagate.
    """
    failures = 0
    while True:
        try:
            call = client.executions.WatchExecution(execution_pb2.WatchExecutionRequest(id=execution_id))
            async for snapshot in call:
                failures = 0
                yield snapshot
                if state_of(snapshot.execution) in TERMINAL:
                    return
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE or failures >= _RESUME_ATTEMPTS:
                raise client.error(err, f"watch execution {execution_id}") from err
        failures += 1
        if failures > _RESUME_ATTEMPTS:
            return
        # The stream ended without a terminal snapshot: check once, then resume watching.
        current = await get_execution(client, execution_id)
        if state_of(current.execution) in TERMINAL:
            yield execution_pb2.WatchExecutionResponse(execution=current.execution, children=current.children)
            return
        await asyncio.sleep(_RESUME_DELAY)


async def get_execution(client: Client, execution_id: str) -> execution_pb2.GetExecutionResponse:
    """GetExecution, with the error naming the id."""
    try:
        response: execution_pb2.GetExecutionResponse = await client.executions.GetExecution(
            execution_pb2.GetExecutionRequest(id=execution_id)
        )
        return response
    except grpc.RpcError as err:
        raise client.error(err, f"execution {execution_id}") from err


async def wait_until_terminal(
    client: Client, execution_id: str, on_snapshot: Callable[[Snapshot], None] | None = None
) -> execution_pb2.GetExecutionResponse:
    """Follows the execution to its end; returns the final GetExecution (with every child)."""
    async for snapshot in follow(client, execution_id):
        if on_snapshot is not None:
            on_snapshot(snapshot)
    return await get_execution(client, execution_id)


class ProgressPrinter:
    """Turns snapshots into one stderr line per state change of the execution or a child."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.seen: dict[str, str] = {}

    def __call__(self, snapshot: Snapshot) -> None:
        for execution in [snapshot.execution, *snapshot.children]:
            state = state_of(execution)
            if self.seen.get(execution.id) == state:
                continue
            self.seen[execution.id] = state
            task = execution.link.task_name if execution.HasField("link") else ""
            label = f"task {task} ({execution.action_ref})" if task else execution.action_ref
            self.emit(f"{label} {execution.id}: {state}")
