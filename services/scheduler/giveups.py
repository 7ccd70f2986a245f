"""Results for executions the scheduler gives up on, submitted to the completion service.

The scheduler never writes a terminal state itself (docs/architecture.md, Tables and their
writers): a schedule timeout, a lost worker or a cancel before dispatch become an
`ExecutionResult` sent to the completion service, which stores it idempotently. A result that is
not acknowledged is found again by the next sweep, because the row stays in its non-terminal
state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from attune.common.v1 import common_pb2
from attune.config import Settings
from attune.grpcutil.channel import open_channel
from attune.grpcutil.convert import execution_state_to_proto
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.states import ExecutionState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GiveUp:
    """One execution the scheduler ends: its terminal state and why."""

    execution_id: str
    state: ExecutionState  # FAILED | CANCELLED | ABANDONED | TIMEOUT; SUCCEEDED for an answered ask
    error: str
    traceparent: str = ""
    started_at: float | None = None
    result_json: bytes = b"{}"  # an answered ask's answer (asks.py)

    def to_result(self) -> completion_pb2.ExecutionResult:
        """The result message the completion service stores."""
        return completion_pb2.ExecutionResult(
            execution_id=self.execution_id,
            state=execution_state_to_proto(self.state),
            result_json=self.result_json,
            error=self.error,
            started_at=self.started_at or 0.0,
            finished_at=time.time(),
            trace=common_pb2.TraceContext(traceparent=self.traceparent),
            reporter="scheduler",
        )


class ResultSubmitter(Protocol):
    """Where give-ups go; returns the execution ids whose result is durable."""

    async def submit(self, give_ups: Sequence[GiveUp]) -> set[str]: ...


class CompletionClient:
    """Submits give-ups in one SubmitResults stream per batch."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> completion_pb2_grpc.CompletionServiceStub:
        if self._channel is None:
            self._channel = open_channel(self._settings.completion_address, self._settings)
        return completion_pb2_grpc.CompletionServiceStub(self._channel)

    async def submit(self, give_ups: Sequence[GiveUp]) -> set[str]:
        """Sends the batch and waits for the acknowledgements (empty set when unreachable)."""
        if not give_ups:
            return set()
        acked: set[str] = set()
        try:
            call = self._stub().SubmitResults(timeout=max(self._settings.shutdown_grace, 1.0))
            await call.write(completion_pb2.SubmitResultsRequest(results=[g.to_result() for g in give_ups]))
            await call.done_writing()
            async for response in call:
                acked.update(response.acked_execution_ids)
                if len(acked) >= len(give_ups):
                    break
            call.cancel()
        except grpc.RpcError as err:
            log.warning(
                "completion service unavailable; will retry give-ups", extra={"error": str(err), "count": len(give_ups)}
            )
        return acked

    async def close(self) -> None:
        """Closes the channel."""
        if self._channel is not None:
            await self._channel.close()
