"""request_id on RequestExecution, child requests and CreateAction: a retry of the same request
gets the original row; the same request_id with a different request is refused with
FAILED_PRECONDITION naming `request_id` and creates nothing — also when both arrive in one
group-committed batch."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from attune.common.v1 import common_pb2
from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import struct_from_dict
from attune.grpcutil.errors import FailedPrecondition, violations_of
from attune.internal.execution.v1 import execution_pb2 as child_pb2
from attune.registry.v1 import registry_pb2
from attune.storage.schema import actions, executions
from tests.scheduler.harness import Cluster, pack_request
from tests.scheduler.test_registry import expect_code, get_action
from tests.scheduler.test_request_log import assert_refused_for_reuse
from tests.scheduler.test_requests import DEPLOY_PACK


@pytest.fixture
async def demo(cluster: Cluster) -> Cluster:
    """core, and demo.deploy: target (required), count (default 2), token (secret), timeout 30."""
    await cluster.register_bundled("core")
    await cluster.registry.RegisterPack(pack_request(DEPLOY_PACK))
    return cluster


async def execution_ids(cluster: Cluster) -> list[str]:
    async with cluster.scheduler.db.read() as conn:
        return list((await conn.execute(sa.select(executions.c.id).order_by(executions.c.id))).scalars())


async def update_deploy(cluster: Cluster, **changes: Any) -> None:
    """UpdateAction of demo.deploy with `changes` (parameters as a dict)."""
    action = registry_pb2.Action()
    action.CopyFrom((await get_action(cluster, "demo.deploy")).action)
    for field, value in changes.items():
        if field == "parameters":
            action.parameters.CopyFrom(struct_from_dict(value))
        else:
            setattr(action, field, value)
    await cluster.registry.UpdateAction(registry_pb2.UpdateActionRequest(action=action))


# --- RequestExecution ----------------------------------------------------------------------------


async def test_a_retry_of_the_same_request_returns_the_original_execution(demo: Cluster) -> None:
    first = await demo.request("demo.deploy", {"target": "prod", "token": "s3cr3t"}, request_id="deploy-1")
    # The same request: the stored count (2) is the default it leaves out.
    again = await demo.request("demo.deploy", {"token": "s3cr3t", "target": "prod"}, request_id="deploy-1")
    # Giving the default explicitly asks for the same execution too.
    explicit = await demo.request(
        "demo.deploy", {"target": "prod", "count": 2, "token": "s3cr3t"}, request_id="deploy-1"
    )
    timed = await demo.request("core.noop", request_id="noop-5s", timeout_seconds=5)
    timed_again = await demo.request("core.noop", request_id="noop-5s", timeout_seconds=5)
    assert again.id == explicit.id == first.id and timed_again.id == timed.id
    assert await execution_ids(demo) == sorted([first.id, timed.id])


REUSES: dict[str, tuple[tuple[str, dict[str, Any], float], tuple[str, dict[str, Any], float], str]] = {
    "action": (("demo.deploy", {"target": "prod"}, 0.0), ("core.noop", {}, 0.0), "action_ref"),
    "given-value": (
        ("demo.deploy", {"target": "prod"}, 0.0),
        ("demo.deploy", {"target": "staging"}, 0.0),
        "parameters.target",
    ),
    "left-out-value": (
        ("demo.deploy", {"target": "prod", "count": 5}, 0.0),
        ("demo.deploy", {"target": "prod"}, 0.0),
        "parameters.count",
    ),
    "extra-parameter": (
        ("demo.deploy", {"target": "prod"}, 0.0),
        ("demo.deploy", {"target": "prod", "token": "t"}, 0.0),
        "parameters.token",
    ),
    "timeout": (("demo.deploy", {"target": "prod"}, 0.0), ("demo.deploy", {"target": "prod"}, 5.0), "timeout_seconds"),
    "timeout-left-out": (
        ("demo.deploy", {"target": "prod"}, 5.0),
        ("demo.deploy", {"target": "prod"}, 0.0),
        "timeout_seconds",
    ),
    # Invalid now, so compared on the path that serves retries of requests the action no longer accepts.
    "invalid-now": (
        ("demo.deploy", {"target": "prod"}, 0.0),
        ("demo.deploy", {"target": "moon"}, 0.0),
        "parameters.target",
    ),
}


async def test_a_reused_request_id_with_another_request_is_refused_and_creates_nothing(demo: Cluster) -> None:
    # One cluster for every case (each with its own request_id): a cluster per case cost ~1 s each.
    for case, (first, reuse, difference) in REUSES.items():
        request_id = f"reused-{case}"
        ref, params, timeout = first
        original = await demo.request(ref, params, request_id=request_id, timeout_seconds=timeout)
        before = await execution_ids(demo)
        assert original.id in before, case
        ref, params, timeout = reuse
        refused = await expect_code(
            demo.request(ref, params, request_id=request_id, timeout_seconds=timeout),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert_refused_for_reuse(refused, request_id)
        assert f"other {difference}" in (refused.details() or ""), case
        assert "s3cr3t" not in (refused.details() or ""), case
        assert await execution_ids(demo) == before, case


async def test_a_retry_after_the_action_changed_or_was_disabled_returns_the_original(demo: Cluster) -> None:
    first = await demo.request("demo.deploy", {"target": "prod"}, request_id="before-change")
    spec = {
        "target": {"type": "string", "required": True, "enum": ["staging", "prod"]},
        "count": {"type": "integer", "default": 3, "minimum": 1},  # was 2
        "token": {"type": "string", "secret": True},
    }
    await update_deploy(demo, parameters=spec, timeout_seconds=60)  # was 30
    assert (await demo.request("demo.deploy", {"target": "prod"}, request_id="before-change")).id == first.id
    changed = await expect_code(
        demo.request("demo.deploy", {"target": "staging"}, request_id="before-change"),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert_refused_for_reuse(changed, "before-change")
    await update_deploy(demo, enabled=False)
    assert (await demo.request("demo.deploy", {"target": "prod"}, request_id="before-change")).id == first.id
    disabled = await expect_code(
        demo.request("demo.deploy", {"target": "staging"}, request_id="before-change"),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert_refused_for_reuse(disabled, "before-change")
    assert await execution_ids(demo) == [first.id]


async def test_reuse_with_another_request_in_one_batch_is_refused(demo: Cluster) -> None:
    requests = demo.scheduler.requests
    batches: list[list[str | None]] = []
    flush = requests._committer._flush

    async def recorded(rows: list[dict[str, Any]]) -> Any:
        batches.append([row["request_id"] for row in rows])
        return await flush(rows)

    requests._committer._flush = recorded
    await demo.request("demo.deploy", {"target": "prod"})  # the action is cached: both submit at once
    outcomes = await asyncio.gather(
        requests.request("demo.deploy", {"target": "prod"}, request_id="same-batch", timeout=0),
        requests.request("demo.deploy", {"target": "staging"}, request_id="same-batch", timeout=0),
        requests.request("demo.deploy", {"target": "prod"}, request_id="same-batch", timeout=0),
        return_exceptions=True,
    )
    assert ["same-batch"] * 3 in batches, f"the requests did not share a batch: {batches}"
    created, refused, retried = outcomes
    assert isinstance(created, dict) and json.loads(created["parameters"])["target"] == "prod"
    assert isinstance(refused, FailedPrecondition), refused
    assert [v.field for v in refused.violations] == ["request_id"]
    assert isinstance(retried, dict) and retried["id"] == created["id"]
    async with demo.scheduler.db.read() as conn:
        stored = (
            (await conn.execute(sa.select(executions).where(executions.c.request_id == "same-batch"))).mappings().all()
        )
    assert [row["id"] for row in stored] == [created["id"]]
    assert json.loads(stored[0]["parameters"])["target"] == "prod"


async def test_concurrent_reuse_over_grpc_creates_one_execution_per_request_id(demo: Cluster) -> None:
    outcomes = await asyncio.gather(
        *(
            demo.request("demo.deploy", {"target": target}, request_id=f"pair-{i}")
            for i in range(20)
            for target in ("prod", "staging")
        ),
        return_exceptions=True,
    )
    created = [o for o in outcomes if isinstance(o, execution_pb2.Execution)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(created) == len(refused) == 20
    for error in refused:
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
        assert [v.field for v in violations_of(error)] == ["request_id"]
    assert sorted(await execution_ids(demo)) == sorted(e.id for e in created)


# --- child executions ------------------------------------------------------------------------------


async def test_a_child_request_id_reused_for_another_child_is_that_child_s_error(demo: Cluster) -> None:
    parent = await demo.request("core.noop")

    def child(request_id: str, message: str, *, parent_id: str = parent.id) -> child_pb2.ChildExecutionRequest:
        return child_pb2.ChildExecutionRequest(
            action_ref="core.echo",
            parameters_json=json.dumps({"message": message}).encode(),
            request_id=request_id,
            parent_id=parent_id,
            depth=1,
            link=common_pb2.WorkflowLink(
                workflow_execution_id=parent_id, task_name="echo", run=1, item_index=-1, attempt=1
            ),
        )

    async def children(*requests: child_pb2.ChildExecutionRequest) -> list[child_pb2.ChildExecutionResponse]:
        response = await demo.children.RequestChildExecutions(
            child_pb2.RequestChildExecutionsRequest(children=requests)
        )
        return list(response.children)

    (first,) = await children(child("wf:echo", "hi"))
    (retried,) = await children(child("wf:echo", "hi"))
    assert first.execution_id and retried.execution_id == first.execution_id and not retried.error
    (other,) = await children(child("wf:echo", "bye"))
    assert not other.execution_id and "request_id 'wf:echo' was used for a different request" in other.error
    assert "parameters.message" in other.error
    # Two children sharing a request_id in one call (one batch): the second is refused.
    kept, twin = await children(child("wf:twin", "a"), child("wf:twin", "b"))
    assert kept.execution_id and not kept.error
    assert not twin.execution_id and "was used for a different request" in twin.error
    # A top-level request reusing a child's request_id is another request too.
    top = await expect_code(
        demo.request("core.echo", {"message": "hi"}, request_id="wf:echo"), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert_refused_for_reuse(top, "wf:echo")
    assert "parent_id" in (top.details() or "")
    assert sorted(c.id for c in (await demo.get(parent.id)).children) == sorted([first.execution_id, kept.execution_id])


# --- CreateAction ------------------------------------------------------------------------------------


def create(request_id: str, **fields: Any) -> registry_pb2.CreateActionRequest:
    action = registry_pb2.Action(pack="core", name="greet", runner_type="shell", entry_point="echo.sh", enabled=True)
    for field, value in fields.items():
        if field in ("parameters", "output"):
            getattr(action, field).CopyFrom(struct_from_dict(value))
        elif field == "tags":
            action.tags[:] = value
        else:
            setattr(action, field, value)
    return registry_pb2.CreateActionRequest(action=action, request_id=request_id)


async def action_refs(cluster: Cluster) -> list[str]:
    async with cluster.scheduler.db.read() as conn:
        return list(
            (
                await conn.execute(sa.select(actions.c.ref).where(actions.c.pack == "core").order_by(actions.c.ref))
            ).scalars()
        )


GREET_FIELDS = {
    "label": "Greet",
    "parameters": {"who": {"type": "string", "default": "you"}},
    "timeout_seconds": 9.0,
    "tags": ["a"],
}


async def test_a_retried_create_action_returns_the_action_it_created(demo: Cluster) -> None:
    before = await action_refs(demo)
    first = (await demo.registry.CreateAction(create("create-1", **GREET_FIELDS))).action
    # The same request; "actions/echo.sh" is the path "echo.sh" resolved to.
    again = (await demo.registry.CreateAction(create("create-1", **GREET_FIELDS))).action
    resolved = (
        await demo.registry.CreateAction(create("create-1", **{**GREET_FIELDS, "entry_point": "actions/echo.sh"}))
    ).action
    assert again == resolved == first and first.ref == "core.greet"
    assert await action_refs(demo) == sorted([*before, "core.greet"])


CREATE_CHANGES: dict[str, tuple[dict[str, Any], str]] = {
    "name": ({"name": "wave"}, "action.name"),
    "label": ({"label": "Hello"}, "action.label"),
    "runner": ({"runner_type": "noop", "entry_point": ""}, "action.runner_type"),
    "entry-point": ({"entry_point": "noop.sh"}, "action.entry_point"),
    "parameters": ({"parameters": {"who": {"type": "string", "default": "me"}}}, "action.parameters"),
    "timeout": ({"timeout_seconds": 0.0}, "action.timeout_seconds"),
    "tags": ({"tags": ["b"]}, "action.tags"),
    "enabled": ({"enabled": False}, "action.enabled"),
}


async def test_a_create_action_reusing_a_request_id_for_another_action_is_refused(demo: Cluster) -> None:
    await demo.registry.CreateAction(create("create-1", **GREET_FIELDS))
    refs = await action_refs(demo)
    for case, (changes, difference) in CREATE_CHANGES.items():
        refused = await expect_code(
            demo.registry.CreateAction(create("create-1", **{**GREET_FIELDS, **changes})),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert_refused_for_reuse(refused, "create-1")
        assert f"other {difference}" in (refused.details() or ""), case
        assert await action_refs(demo) == refs, case
        assert (await get_action(demo, "core.greet")).action.label == "Greet", case


async def test_a_retried_create_action_after_an_update_returns_the_action_as_it_is(demo: Cluster) -> None:
    first = (await demo.registry.CreateAction(create("create-1", **GREET_FIELDS))).action
    relabelled = registry_pb2.Action()
    relabelled.CopyFrom(first)
    relabelled.label = "Updated"
    await demo.registry.UpdateAction(registry_pb2.UpdateActionRequest(action=relabelled))
    retried = (await demo.registry.CreateAction(create("create-1", **GREET_FIELDS))).action
    assert retried.id == first.id and retried.label == "Updated"
    renamed = await expect_code(
        demo.registry.CreateAction(create("create-1", **{**GREET_FIELDS, "name": "wave"})),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert_refused_for_reuse(renamed, "create-1")


async def test_concurrent_create_actions_with_one_request_id(demo: Cluster) -> None:
    before = await action_refs(demo)
    same = await asyncio.gather(*(demo.registry.CreateAction(create("create-same", **GREET_FIELDS)) for _ in range(2)))
    assert same[0].action.id == same[1].action.id
    outcomes = await asyncio.gather(
        demo.registry.CreateAction(create("create-pair", name="left")),
        demo.registry.CreateAction(create("create-pair", name="right")),
        return_exceptions=True,
    )
    created = [o for o in outcomes if isinstance(o, registry_pb2.CreateActionResponse)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(created) == len(refused) == 1, outcomes
    assert refused[0].code() == grpc.StatusCode.FAILED_PRECONDITION, refused[0].details()
    assert_refused_for_reuse(refused[0], "create-pair")
    assert await action_refs(demo) == sorted([*before, "core.greet", created[0].action.ref])
