"""request_id on RegisterPack, UpdateAction and CancelExecution: a retry returns the original
response and does nothing again; a reused id for another request is refused; refusals are not
logged; the sweeper prunes entries older than the TTL."""

from __future__ import annotations

import asyncio
import time

import grpc
import sqlalchemy as sa

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_from_proto
from attune.grpcutil.errors import violations_of
from attune.registry.v1 import registry_pb2
from attune.storage.schema import packs, request_log
from tests.scheduler.harness import Cluster, FakeWorker, pack_request
from tests.scheduler.test_registry import TWO_ACTIONS, expect_code, get_action, without_b
from tests.support.polling import eventually


def assert_refused_for_reuse(error: grpc.aio.AioRpcError, request_id: str) -> None:
    assert f"request_id {request_id!r} was used for a different request" in (error.details() or "")
    assert [v.field for v in violations_of(error)] == ["request_id"]


async def logged_ids(cluster: Cluster) -> set[str]:
    async with cluster.scheduler.db.read() as conn:
        return set((await conn.execute(sa.select(request_log.c.request_id))).scalars())


async def test_a_retried_register_pack_returns_the_original_response_and_changes_nothing(cluster: Cluster) -> None:
    await cluster.registry.RegisterPack(pack_request(TWO_ACTIONS))
    first = await cluster.registry.RegisterPack(pack_request(without_b(), request_id="register-1"))
    assert list(first.removed_action_refs) == ["demo.b"]
    restored = await cluster.registry.RegisterPack(pack_request(TWO_ACTIONS))  # demo.b is back
    retried = await cluster.registry.RegisterPack(pack_request(without_b(), request_id="register-1"))
    assert retried == first
    assert (await get_action(cluster, "demo.b")).action.ref == "demo.b"  # not removed again
    async with cluster.scheduler.db.read() as conn:
        digest = (await conn.execute(sa.select(packs.c.digest).where(packs.c.ref == "demo"))).scalar_one()
    assert digest == restored.pack.digest
    other_pack = await expect_code(
        cluster.registry.RegisterPack(pack_request(without_b({"actions/a.sh": b"echo 2\n"}), request_id="register-1")),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert_refused_for_reuse(other_pack, "register-1")
    assert (await get_action(cluster, "demo.a")).action.pack_digest == restored.pack.digest
    action = (await get_action(cluster, "demo.a")).action
    other_rpc = await expect_code(
        cluster.registry.UpdateAction(registry_pb2.UpdateActionRequest(action=action, request_id="register-1")),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert_refused_for_reuse(other_rpc, "register-1")
    assert "attune.registry.v1.RegistryService.RegisterPack" in (other_rpc.details() or "")


async def test_concurrent_retries_of_a_register_pack_register_once(cluster: Cluster) -> None:
    responses = await asyncio.gather(
        *(cluster.registry.RegisterPack(pack_request(TWO_ACTIONS, request_id="register-twice")) for _ in range(2))
    )
    assert responses[0] == responses[1]
    assert [a.ref for a in responses[0].actions] == ["demo.a", "demo.b"]


async def test_a_refused_request_is_not_logged_and_a_corrected_retry_succeeds(core: Cluster) -> None:
    broken = without_b({"actions/c.yaml": b"ref: demo.c\nrunner_type: ruby\n"})
    await expect_code(
        core.registry.RegisterPack(pack_request(broken, request_id="register-fixed")), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "register-fixed" not in await logged_ids(core)
    registered = await core.registry.RegisterPack(pack_request(TWO_ACTIONS, request_id="register-fixed"))
    assert [a.ref for a in registered.actions] == ["demo.a", "demo.b"]
    echo = (await get_action(core, "core.echo")).action
    renamed = registry_pb2.Action()
    renamed.CopyFrom(echo)
    renamed.name = "shout"
    await expect_code(
        core.registry.UpdateAction(
            registry_pb2.UpdateActionRequest(id=echo.id, action=renamed, request_id="update-fixed")
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    relabelled = registry_pb2.Action()
    relabelled.CopyFrom(echo)
    relabelled.label = "Fixed"
    updated = await core.registry.UpdateAction(
        registry_pb2.UpdateActionRequest(id=echo.id, action=relabelled, request_id="update-fixed")
    )
    assert updated.action.label == "Fixed"
    assert {"register-fixed", "update-fixed"} <= await logged_ids(core)


async def test_a_retried_update_action_returns_the_original_response_after_another_update(core: Cluster) -> None:
    echo = (await get_action(core, "core.echo")).action

    def relabel(label: str, request_id: str) -> registry_pb2.UpdateActionRequest:
        action = registry_pb2.Action()
        action.CopyFrom(echo)
        action.label = label
        return registry_pb2.UpdateActionRequest(action=action, request_id=request_id)

    first = await core.registry.UpdateAction(relabel("First", "update-1"))
    second = await core.registry.UpdateAction(relabel("Second", "update-2"))
    assert (first.action.label, second.action.label) == ("First", "Second")
    retried = await core.registry.UpdateAction(relabel("First", "update-1"))
    assert retried == first
    assert (await get_action(core, "core.echo")).action == second.action  # not re-applied
    reused = await expect_code(
        core.registry.UpdateAction(relabel("Third", "update-1")), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert_refused_for_reuse(reused, "update-1")
    assert (await get_action(core, "core.echo")).action.label == "Second"


async def test_a_retried_cancel_execution_returns_the_original_response(core: Cluster) -> None:
    worker = FakeWorker(core, "w", ["shell"])
    await worker.connect()
    execution = await core.request("core.echo", {"message": "hi"})
    await worker.wait_for(lambda: len(worker.assignments) == 1)
    cancel = execution_pb2.CancelExecutionRequest(id=execution.id, request_id="cancel-1")
    first = await core.executions.CancelExecution(cancel)
    assert execution_state_from_proto(first.execution.state) == "canceling"
    await core.submit_result(execution.id, "cancelled", error="cancelled on request")
    await core.wait_state(execution.id, "cancelled")
    retried = await core.executions.CancelExecution(cancel)
    assert retried == first  # the original answer, not the state now
    unlogged = await expect_code(
        core.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=execution.id)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "already cancelled" in (unlogged.details() or "")
    other = await core.request("core.noop")
    reused = await expect_code(
        core.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=other.id, request_id="cancel-1")),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert_refused_for_reuse(reused, "cancel-1")
    assert execution_state_from_proto((await core.get(other.id)).execution.state) == "scheduling"
    await worker.disconnect()


async def test_the_sweeper_prunes_only_entries_older_than_the_ttl(cluster: Cluster) -> None:
    ttl = cluster.settings.request_log_ttl
    now = time.time()
    entry = {"method": "attune.registry.v1.RegistryService.RegisterPack", "request_digest": "0" * 64, "response": b""}
    async with cluster.scheduler.db.write() as conn:
        await conn.execute(
            request_log.insert(),
            [
                {"request_id": "expired", **entry, "created_at": now - ttl - 60},
                {"request_id": "kept", **entry, "created_at": now - ttl + 60},
            ],
        )

    async def pruned() -> bool:
        return "expired" not in await logged_ids(cluster)

    await eventually(pruned, within=5, interval=0.05, what="the sweeper to prune the expired entry")
    assert await logged_ids(cluster) == {"kept"}
