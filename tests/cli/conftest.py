"""The CLI's end-to-end tests run the real `attune` script against the integration cluster."""

from __future__ import annotations

import pytest

from attune.grpcutil.convert import execution_state_from_proto
from attune.states import ExecutionState
from tests.integration.cluster import Cluster


@pytest.fixture
async def ready_cluster(cluster: Cluster) -> Cluster:
    """The cluster once a worker has registered with the scheduler (a worker SERVING its own
    health may not have opened its stream yet; a shell action then fails for want of a runtime)."""
    for _ in range(5):
        outcome = await cluster.run("core.echo", {"message": "ready?"})
        if execution_state_from_proto(outcome.execution.state) == ExecutionState.SUCCEEDED:
            return cluster
    raise AssertionError(f"no worker ran core.echo: {outcome.execution.error}")
