"""Request limits (issue #13): each limit at its value passes, one over it is refused with
INVALID_ARGUMENT (RESOURCE_EXHAUSTED for metadata) naming the field and the limit, and nothing is
stored; page tokens are opaque, validated and bound to their filters. Against the shared secure
cluster, with the default limits (docs/operations.md, Limits).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import grpc
import pytest

from attune.auth.v1 import auth_pb2, auth_pb2_grpc
from attune.config import Settings
from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import workflow_state_to_proto
from attune.grpcutil.errors import violations_of
from attune.ids import new_id
from attune.registry.v1 import registry_pb2
from attune.states import ExecutionState
from attune.storage import Database
from attune.storage.schema import executions, request_log
from attune.workflow.v1 import workflow_pb2
from tests.hostile.errortools import assert_serving, count, refusal
from tests.integration.cluster import Cluster

LIMITS = Settings()


@pytest.fixture
async def db(cluster: Cluster) -> AsyncIterator[Database]:
    """The cluster's database, read directly to see what was stored."""
    database = Database(cluster.database_url)
    yield database
    await database.close()


async def refused(call: Awaitable[Any], field: str, limit: int) -> grpc.aio.AioRpcError:
    """The call is INVALID_ARGUMENT with one violation, naming `field` and `limit`."""
    err = await refusal(call)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert [(v.field, str(limit) in v.description) for v in violations_of(err)] == [(field, True)], err.details()
    return err


async def test_request_id_up_to_its_limit(cluster: Cluster, db: Database) -> None:
    at = new_id() + "r" * (LIMITS.max_request_id_length - 32)
    first = await cluster.request("core.noop", request_id=at)
    assert (await cluster.request("core.noop", request_id=at)).id == first.id  # a retry, as ever
    over = at + "r"
    await refused(cluster.request("core.noop", request_id=over), "request_id", LIMITS.max_request_id_length)
    cancel = execution_pb2.CancelExecutionRequest(id=first.id, request_id=over)
    await refused(cluster.executions.CancelExecution(cancel), "request_id", LIMITS.max_request_id_length)
    assert await count(db, executions, executions.c.request_id.like(f"{at[:40]}%")) == 1
    assert await count(db, request_log, request_log.c.request_id == over[: LIMITS.max_request_id_length]) == 0
    await assert_serving(cluster)


async def test_refs_and_names_up_to_their_limit(cluster: Cluster, db: Database) -> None:
    limit = LIMITS.max_name_length
    at, over = "x." + "a" * (limit - 2), "x." + "a" * (limit - 1)
    before = await count(db, executions)
    err = await refusal(cluster.request(at))
    assert err.code() == grpc.StatusCode.NOT_FOUND  # within the limit: looked up, and unknown
    await refused(cluster.request(over), "action_ref", limit)
    await refused(cluster.registry.GetAction(registry_pb2.GetActionRequest(ref=over)), "ref", limit)
    await refused(cluster.registry.ListActions(registry_pb2.ListActionsRequest(pack="p" * (limit + 1))), "pack", limit)
    tokens = auth_pb2_grpc.TokenServiceStub(cluster.channel)
    name = "t" * (limit + 1)
    await refused(tokens.CreateToken(auth_pb2.CreateTokenRequest(name=name, role=auth_pb2.ROLE_VIEWER)), "name", limit)
    assert name[:limit] not in {t.name for t in (await tokens.ListTokens(auth_pb2.ListTokensRequest())).tokens}
    assert await count(db, executions) == before
    await assert_serving(cluster)


async def test_parameters_size_up_to_its_limit(cluster: Cluster, db: Database) -> None:
    limit = LIMITS.max_parameters_bytes
    envelope = len(json.dumps({"numbers": [""]}, separators=(",", ":")))
    at = {"numbers": ["x" * (limit - envelope)]}
    assert len(json.dumps(at, separators=(",", ":"))) == limit
    accepted = await cluster.request("examples.py_sum", at)
    assert accepted.id
    before = await count(db, executions)
    over = {"numbers": ["x" * (limit - envelope + 1)]}
    await refused(cluster.request("examples.py_sum", over), "parameters", limit)
    assert await count(db, executions) == before
    await assert_serving(cluster)


async def test_parameters_nesting_up_to_its_limit(cluster: Cluster, db: Database) -> None:
    limit = LIMITS.max_parameters_depth

    def nested(levels: int) -> dict[str, Any]:
        value: Any = 1
        for _ in range(levels - 1):  # the parameters object itself is the first level
            value = [value]
        return {"numbers": value}

    assert (await cluster.request("examples.py_sum", nested(limit))).id
    before = await count(db, executions)
    err = await refused(cluster.request("examples.py_sum", nested(limit + 1)), "parameters.numbers", limit)
    assert f"nests {limit + 1} levels" in (err.details() or "")
    assert await count(db, executions) == before
    await assert_serving(cluster)


async def test_page_size_within_its_bounds(cluster: Cluster) -> None:
    limit = LIMITS.max_page_size
    await cluster.executions.ListExecutions(execution_pb2.ListExecutionsRequest(page_size=limit))
    for size in (limit + 1, -1):
        request = execution_pb2.ListExecutionsRequest(page_size=size)
        err = await refusal(cluster.executions.ListExecutions(request))
        assert (err.code(), [v.field for v in violations_of(err)]) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_size"])
    runs = workflow_pb2.ListWorkflowRunsRequest(page_size=limit + 1)
    await refused(cluster.workflows.ListWorkflowRuns(runs), "page_size", limit)
    await assert_serving(cluster)


async def test_metadata_up_to_its_limit(cluster: Cluster) -> None:
    limit = LIMITS.max_metadata_bytes
    request = execution_pb2.ListExecutionsRequest(page_size=1)
    await cluster.executions.ListExecutions(request, metadata=(("x-pad", "a" * (limit - 1024)),))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cluster.executions.ListExecutions(request, metadata=(("x-pad", "a" * limit),))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"vs. {limit}" in (caught.value.details() or "")
    await assert_serving(cluster)


def _forged(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


async def test_page_tokens_are_validated_and_bound_to_their_filters(cluster: Cluster) -> None:
    for _ in range(3):
        await cluster.request("core.noop")
    list_noop = execution_pb2.ListExecutionsRequest(action_ref="core.noop", page_size=2)
    first = await cluster.executions.ListExecutions(list_noop)
    assert len(first.executions) == 2 and first.next_page_token
    following = execution_pb2.ListExecutionsRequest(
        action_ref="core.noop", page_size=2, page_token=first.next_page_token
    )
    second = await cluster.executions.ListExecutions(following)
    assert second.executions and max(e.id for e in second.executions) < min(e.id for e in first.executions)

    token = first.next_page_token
    mismatched = [
        execution_pb2.ListExecutionsRequest(action_ref="core.echo", page_token=token),
        execution_pb2.ListExecutionsRequest(page_token=token),
        execution_pb2.ListExecutionsRequest(action_ref="core.noop", state=first.executions[0].state, page_token=token),
    ]
    bad = [
        "zzz",
        "!!not base64!!",
        _forged(b"not json"),
        _forged(json.dumps({"after": "../../etc", "filters": "0"}).encode()),
        _forged(json.dumps({"after": new_id(), "filters": "0123456789abcdef"}).encode()),
        token[:-4],
    ]
    requests = [*mismatched, *(execution_pb2.ListExecutionsRequest(action_ref="core.noop", page_token=t) for t in bad)]
    for request in requests:
        err = await refusal(cluster.executions.ListExecutions(request))
        assert (err.code(), [v.field for v in violations_of(err)]) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])
    await assert_serving(cluster)


async def test_workflow_run_page_tokens_are_bound_to_their_filters(cluster: Cluster) -> None:
    for _ in range(2):
        await cluster.run("examples.single_echo", {"message": "paged"})
    succeeded = workflow_state_to_proto(ExecutionState.SUCCEEDED)
    first = await cluster.workflows.ListWorkflowRuns(workflow_pb2.ListWorkflowRunsRequest(state=succeeded, page_size=1))
    assert first.next_page_token
    following = workflow_pb2.ListWorkflowRunsRequest(state=succeeded, page_size=1, page_token=first.next_page_token)
    second = await cluster.workflows.ListWorkflowRuns(following)
    assert second.runs[0].execution_id < first.runs[0].execution_id
    executions_token = (
        await cluster.executions.ListExecutions(execution_pb2.ListExecutionsRequest(page_size=1))
    ).next_page_token
    for request in [
        workflow_pb2.ListWorkflowRunsRequest(page_token=first.next_page_token),  # issued for state=succeeded
        workflow_pb2.ListWorkflowRunsRequest(page_token=executions_token),  # issued by ListExecutions
        workflow_pb2.ListWorkflowRunsRequest(state=succeeded, page_token="zzz"),
    ]:
        err = await refusal(cluster.workflows.ListWorkflowRuns(request))
        assert (err.code(), [v.field for v in violations_of(err)]) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])
    await assert_serving(cluster)
