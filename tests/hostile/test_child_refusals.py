"""A child the scheduler cannot store for a reason that is not an outage is refused on its own
(issue #13): its siblings in the batch are stored, the stream stays open, and the coordinator
fails that task instead of sending the batch again forever. Against the shared secure cluster,
calling the scheduler's internal ChildExecutionService as the coordinator does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.grpcutil.channel import open_channel
from attune.ids import new_id
from attune.internal.execution.v1 import execution_pb2 as child_pb2
from attune.internal.execution.v1 import execution_pb2_grpc as child_pb2_grpc
from attune.storage import Database
from attune.storage.schema import executions
from tests.hostile.errortools import LEAKS, assert_serving, count
from tests.integration.cluster import Cluster


@pytest.fixture
async def children(cluster: Cluster) -> AsyncIterator[child_pb2_grpc.ChildExecutionServiceStub]:
    """The scheduler's ChildExecutionService, reached with the coordinator's certificate."""
    settings = cluster.client_settings.replace(identity="coordinator")
    channel = open_channel(cluster.addresses["scheduler"], settings)
    try:
        yield child_pb2_grpc.ChildExecutionServiceStub(channel)
    finally:
        await channel.close()


def child(workflow_id: str, request_id: str, task: str = "t") -> child_pb2.ChildExecutionRequest:
    return child_pb2.ChildExecutionRequest(
        action_ref="core.noop",
        parameters_json=b"{}",
        request_id=request_id,
        parent_id=workflow_id,
        link=common_pb2.WorkflowLink(
            workflow_execution_id=workflow_id, task_name=task, run=1, item_index=-1, attempt=1
        ),
        depth=1,
    )


# PostgreSQL only: SQLite stores a string of any length in a VARCHAR(255), so no child's row is refused there.
@pytest.mark.parametrize("cluster", ["postgres"], indirect=True)
async def test_a_child_its_row_refuses_is_refused_alone_and_the_stream_goes_on(
    cluster: Cluster, children: child_pb2_grpc.ChildExecutionServiceStub
) -> None:
    workflow_id = new_id()
    # request_id is VARCHAR(255); the coordinator never sends a longer one (task names are capped),
    # and nothing before the insert checks it: the insert itself fails, for this row only.
    bad = child(workflow_id, f"{workflow_id}:" + "x" * 300, task="bad")
    good = [child(workflow_id, f"{workflow_id}:good/{i}", task=f"good{i}") for i in range(3)]
    stream = children.StreamChildExecutions()
    try:
        await stream.write(child_pb2.StreamChildExecutionsRequest(batch_id=1, children=[good[0], bad, *good[1:]]))
        answer = await stream.read()
        assert isinstance(answer, child_pb2.StreamChildExecutionsResponse), await stream.code()
        assert answer.batch_id == 1
        refused = answer.children[1]
        assert (refused.execution_id, refused.request_id) == ("", bad.request_id)
        assert "internal error" in refused.error and "error id" in refused.error, refused.error
        assert not LEAKS.search(refused.error), refused.error
        stored = [a.execution_id for i, a in enumerate(answer.children) if i != 1]
        assert all(stored) and not any(a.error for i, a in enumerate(answer.children) if i != 1), answer

        # The same stream answers the next batch; a retry of a stored sibling gets its execution.
        await stream.write(child_pb2.StreamChildExecutionsRequest(batch_id=2, children=[good[0]]))
        again = await stream.read()
        assert isinstance(again, child_pb2.StreamChildExecutionsResponse), await stream.code()
        assert (again.batch_id, again.children[0].execution_id) == (2, stored[0])
    finally:
        stream.cancel()
    db = Database(cluster.database_url)
    try:
        assert await count(db, executions, executions.c.parent_id == workflow_id) == len(good)
    finally:
        await db.close()
    await assert_serving(cluster)


# PostgreSQL only: SQLite stores a string of any length in a VARCHAR(255), so no child's row is refused there.
@pytest.mark.parametrize("cluster", ["postgres"], indirect=True)
async def test_the_unary_call_refuses_the_same_child_alone(
    cluster: Cluster, children: child_pb2_grpc.ChildExecutionServiceStub
) -> None:
    workflow_id = new_id()
    request = child_pb2.RequestChildExecutionsRequest(
        children=[child(workflow_id, f"{workflow_id}:" + "y" * 300), child(workflow_id, f"{workflow_id}:ok")]
    )
    try:
        response = await children.RequestChildExecutions(request, timeout=10)
    except grpc.aio.AioRpcError as err:
        pytest.fail(f"the batch failed as a whole: {err.code().name}: {err.details()}")
    bad, ok = response.children
    assert not bad.execution_id and "error id" in bad.error, bad
    assert ok.execution_id and not ok.error, ok
