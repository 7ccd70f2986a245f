"""The commands a committed step leaves for the `Carrier` to carry out: child requests, finished
workflows' results, and child requests that ended without a child (refused or cancelled first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from attune.common.v1 import common_pb2
from attune.grpcutil.convert import dumps
from attune.internal.execution.v1 import execution_pb2 as child_pb2


@dataclass(frozen=True)
class PendingChild:
    """A task run waiting for its child execution to be requested."""

    workflow_id: str
    run_key: str
    request: child_pb2.ChildExecutionRequest

    @classmethod
    def of(
        cls,
        workflow_id: str,
        run_key: str,
        task: str,
        run: int,
        item: int | None,
        attempt: int,
        action_ref: str,
        request: dict[str, Any],
        *,
        depth: int,
        traceparent: str,
    ) -> PendingChild:
        """The ChildExecutionRequest of one task_runs row."""
        return cls(
            workflow_id,
            run_key,
            child_pb2.ChildExecutionRequest(
                action_ref=action_ref,
                parameters_json=dumps(request.get("input") or {}),
                request_id=f"{workflow_id}:{run_key}",
                timeout_seconds=float(request.get("timeout") or 0.0),
                parent_id=workflow_id,
                link=common_pb2.WorkflowLink(
                    workflow_execution_id=workflow_id,
                    task_name=task,
                    run=run,
                    item_index=-1 if item is None else item,
                    attempt=attempt,
                ),
                trace=common_pb2.TraceContext(traceparent=traceparent),
                depth=depth + 1,
            ),
        )


@dataclass(frozen=True)
class PendingFinish:
    """A finished workflow whose result is not yet acknowledged by the completion service."""

    workflow_id: str
    status: str
    result: Any
    error: str | None
    traceparent: str
    finished_at: float


@dataclass(frozen=True)
class Refusal:
    """A task run that got no child: refused by the scheduler (failed) or cancelled first."""

    workflow_id: str
    run_key: str
    state: str
    error: str
