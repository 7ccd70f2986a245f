"""ExecutionService requests: validation, defaults, secrets, idempotency, workflow children."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from attune.common.v1 import common_pb2
from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto
from attune.grpcutil.errors import violations_of
from attune.internal.execution.v1 import execution_pb2 as child_pb2
from attune.storage.schema import executions
from tests.scheduler.harness import Cluster, pack_request

DEPLOY_PACK = {
    "pack.yaml": b'ref: demo\nversion: "1.0.0"\n',
    "actions/deploy.yaml": b"""
ref: demo.deploy
runner_type: shell
entry_point: deploy.sh
timeout: 30
parameters:
  target: {type: string, required: true, enum: [staging, prod]}
  count: {type: integer, default: 2, minimum: 1}
  token: {type: string, secret: true}
""",
    "actions/deploy.sh": b"echo deploying\n",
}

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def demo(cluster: Cluster) -> Cluster:
    await cluster.register_bundled("core")
    await cluster.registry.RegisterPack(pack_request(DEPLOY_PACK))
    return cluster


async def test_unknown_action_is_not_found_by_name(demo: Cluster) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await demo.request("demo.nope")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "demo.nope" in (caught.value.details() or "")


async def test_bad_parameters_are_field_violations(demo: Cluster) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await demo.request("demo.deploy", {"target": "moon", "count": 0, "colour": "red"})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {v.field for v in violations_of(caught.value)}
    assert fields == {"parameters.target", "parameters.count", "parameters.colour"}
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await demo.request("demo.deploy", {})
    assert [v.field for v in violations_of(missing.value)] == ["parameters.target"]


async def test_defaults_applied_and_secrets_redacted(demo: Cluster) -> None:
    execution = await demo.request("demo.deploy", {"target": "prod", "token": "s3cr3t"})
    assert execution_state_from_proto(execution.state) == "scheduling"
    assert dict_from_struct(execution.parameters) == {"target": "prod", "count": 2, "token": "********"}
    assert execution.timeout_seconds == 30
    assert execution.runner_type == "shell"
    fetched = (await demo.get(execution.id)).execution
    assert "s3cr3t" not in str(fetched)
    async with demo.scheduler.db.read() as conn:
        stored = (await conn.execute(sa.select(executions).where(executions.c.id == execution.id))).mappings().one()
    sealed = json.loads(stored["parameters"])["token"]
    assert "s3cr3t" not in stored["parameters"], "sealed at rest"
    assert demo.scheduler.sealer is not None and demo.scheduler.sealer.unseal(sealed) == "s3cr3t"  # what a worker gets
    assert json.loads(stored["secret_names"]) == ["token"]
    overridden = await demo.request("demo.deploy", {"target": "prod"}, timeout_seconds=5)
    assert overridden.timeout_seconds == 5


async def test_request_id_returns_the_original_execution(demo: Cluster) -> None:
    first = await demo.request("core.noop", request_id="req-1")
    again = await demo.request("core.noop", request_id="req-1")
    assert again.id == first.id
    listed = await demo.executions.ListExecutions(execution_pb2.ListExecutionsRequest(action_ref="core.noop"))
    assert [e.id for e in listed.executions] == [first.id]


async def test_concurrent_requests_share_commits_and_list_newest_first(demo: Cluster) -> None:
    import asyncio

    created = await asyncio.gather(*(demo.request("core.noop", request_id=f"burst-{i % 50}") for i in range(100)))
    assert len({e.id for e in created}) == 50
    page1 = await demo.executions.ListExecutions(execution_pb2.ListExecutionsRequest(page_size=30))
    page2 = await demo.executions.ListExecutions(
        execution_pb2.ListExecutionsRequest(page_size=30, page_token=page1.next_page_token)
    )
    ids = [e.id for e in page1.executions] + [e.id for e in page2.executions]
    assert len(ids) == 50 and ids == sorted(ids, reverse=True) and not page2.next_page_token


async def test_child_executions_join_the_parent_and_report_errors_per_child(demo: Cluster) -> None:
    parent = await demo.request("core.noop")

    def child(
        request_id: str, ref: str, params: dict[str, Any], item_index: int = -1
    ) -> child_pb2.ChildExecutionRequest:
        return child_pb2.ChildExecutionRequest(
            action_ref=ref,
            parameters_json=json.dumps(params).encode(),
            request_id=request_id,
            parent_id=parent.id,
            link=common_pb2.WorkflowLink(
                workflow_execution_id=parent.id, task_name="echo", run=1, item_index=item_index, attempt=1
            ),
            trace=common_pb2.TraceContext(traceparent=TRACEPARENT),
            depth=1,
        )

    request = child_pb2.RequestChildExecutionsRequest(
        children=[
            child("c1", "core.echo", {"message": "hi"}),
            child("c2", "core.missing", {}),
            child("c3", "core.echo", {}, item_index=2),
        ]
    )
    response = await demo.children.RequestChildExecutions(request)
    ok, unknown, bad = response.children
    assert ok.request_id == "c1" and ok.execution_id and not ok.error
    assert not unknown.execution_id and "core.missing" in unknown.error
    assert not bad.execution_id and "message" in bad.error
    again = await demo.children.RequestChildExecutions(request)
    assert again.children[0].execution_id == ok.execution_id
    got = await demo.get(parent.id)
    assert [c.id for c in got.children] == [ok.execution_id]
    (stored,) = got.children
    assert stored.parent_id == parent.id and stored.trace_id == TRACEPARENT.split("-")[1]
    assert (stored.link.task_name, stored.link.run, stored.link.item_index, stored.link.attempt) == ("echo", 1, -1, 1)
    async with demo.scheduler.db.read() as conn:
        row = (await conn.execute(sa.select(executions).where(executions.c.id == ok.execution_id))).mappings().one()
    assert (row["depth"], row["item_index"], row["workflow_execution_id"]) == (1, None, parent.id)


async def test_list_filters_by_state_action_and_parent(demo: Cluster) -> None:
    from attune.common.v1 import common_pb2 as common

    noop = await demo.request("core.noop")
    deploy = await demo.request("demo.deploy", {"target": "staging"})
    await demo.submit_result(noop.id, "succeeded")

    async def listed(**filters: object) -> list[str]:
        response = await demo.executions.ListExecutions(execution_pb2.ListExecutionsRequest(**filters))  # type: ignore[arg-type]
        return [e.id for e in response.executions]

    assert await listed(state=common.EXECUTION_STATE_SUCCEEDED) == [noop.id]
    assert await listed(state=common.EXECUTION_STATE_SCHEDULING) == [deploy.id]
    assert await listed(action_ref="demo.deploy") == [deploy.id]
    assert await listed(parent_id=noop.id) == []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await demo.executions.GetExecution(execution_pb2.GetExecutionRequest(id="nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in (caught.value.details() or "")


async def test_pack_files_of_an_unknown_digest_are_not_found(demo: Cluster) -> None:
    from attune.internal.packs.v1 import packs_pb2

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await demo.pack_files.GetPackFiles(packs_pb2.GetPackFilesRequest(digest="0" * 64))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
