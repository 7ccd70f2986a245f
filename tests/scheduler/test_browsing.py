"""What a client browses and edits through the public API: packs (ListPacks, GetPack,
DeletePack refused while executions of its actions are active, unless forced), ListActions in
pages, UpdateAction with a field mask, timeouts as Durations, and reflection v1."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from google.protobuf.message_factory import GetMessageClass

from attune.grpcutil.errors import violations_of
from attune.grpcutil.reflection import V1_SERVICE_NAME, v1_file_descriptor
from attune.registry.v1 import registry_pb2
from attune.states import ExecutionState
from attune.storage import Database
from attune.storage.schema import executions, pack_files
from attune_services.bench.history_seed import execution_row
from tests.scheduler.harness import Cluster

SAY = {"message": "hi"}


async def _refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_packs_are_listed_got_and_deleted_unless_in_use(core: Cluster) -> None:
    await core.register_bundled("examples")
    packs = await core.registry.ListPacks(registry_pb2.ListPacksRequest(page_size=1))
    assert [p.ref for p in packs.packs] == ["core"] and packs.next_page_token
    rest = await core.registry.ListPacks(registry_pb2.ListPacksRequest(page_token=packs.next_page_token))
    assert [p.ref for p in rest.packs] == ["examples"] and not rest.next_page_token

    got = await core.registry.GetPack(registry_pb2.GetPackRequest(ref="core"))
    assert got.pack.version and len(got.pack.digest) == 64
    assert abs(got.pack.registered_at.ToSeconds() - time.time()) < 600
    assert [a.ref for a in got.actions] == ["core.ask", "core.echo", "core.local", "core.noop", "core.sleep"]
    missing = await _refused(core.registry.GetPack(registry_pb2.GetPackRequest(ref="nope")))
    assert missing.code() == grpc.StatusCode.NOT_FOUND

    # ListActions pages by ref; a token is bound to its pack filter.
    first = await core.registry.ListActions(registry_pb2.ListActionsRequest(pack="core", page_size=3))
    assert [a.ref for a in first.actions] == ["core.ask", "core.echo", "core.local"]
    last = await core.registry.ListActions(
        registry_pb2.ListActionsRequest(pack="core", page_size=3, page_token=first.next_page_token)
    )
    assert [a.ref for a in last.actions] == ["core.noop", "core.sleep"] and not last.next_page_token
    other = registry_pb2.ListActionsRequest(pack="examples", page_token=first.next_page_token)
    mismatch = await _refused(core.registry.ListActions(other))
    assert [v.field for v in violations_of(mismatch)] == ["page_token"]

    # An execution of one of its actions that has not ended: refused, naming force; then forced.
    db = Database(core.settings.database_url)
    try:
        async with db.write() as conn:
            await conn.execute(
                executions.insert().values(
                    execution_row(time.time(), action_ref="core.echo", state=ExecutionState.RUNNING)
                )
            )
        in_use = await _refused(core.registry.DeletePack(registry_pb2.DeletePackRequest(ref="core")))
        assert in_use.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert [v.field for v in violations_of(in_use)] == ["force"], in_use.details()
        assert (await core.registry.GetPack(registry_pb2.GetPackRequest(ref="core"))).actions  # nothing deleted

        forced = await core.registry.DeletePack(registry_pb2.DeletePackRequest(ref="core", force=True, request_id="d1"))
        assert list(forced.deleted_action_refs) == ["core.ask", "core.echo", "core.local", "core.noop", "core.sleep"]
        assert forced.active_executions == 1
        retried = await core.registry.DeletePack(
            registry_pb2.DeletePackRequest(ref="core", force=True, request_id="d1")
        )
        assert retried == forced
        async with db.read() as conn:
            files = (await conn.execute(pack_files.select().where(pack_files.c.pack_ref == "core"))).all()
        assert files == []
    finally:
        await db.close()
    gone = await _refused(core.registry.GetAction(registry_pb2.GetActionRequest(ref="core.echo")))
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    assert [p.ref for p in (await core.registry.ListPacks(registry_pb2.ListPacksRequest())).packs] == ["examples"]


async def test_update_mask_and_duration_timeouts(core: Cluster) -> None:
    # Only the description: the rest as stored (without a mask this is refused, as before).
    only = registry_pb2.Action(ref="core.echo", description="says it back")
    unmasked = await _refused(core.registry.UpdateAction(registry_pb2.UpdateActionRequest(action=only)))
    assert "action.runner_type" in [v.field for v in violations_of(unmasked)]
    mask = field_mask_pb2.FieldMask(paths=["description"])
    updated = (await core.registry.UpdateAction(registry_pb2.UpdateActionRequest(action=only, update_mask=mask))).action
    assert (updated.description, updated.runner_type, updated.entry_point) == (
        "says it back",
        "shell",
        "actions/echo.sh",
    )
    assert "message" in updated.parameters.fields  # the schema is kept
    bad = field_mask_pb2.FieldMask(paths=["description", "colour"])
    unknown = await _refused(core.registry.UpdateAction(registry_pb2.UpdateActionRequest(action=only, update_mask=bad)))
    assert unknown.code() == grpc.StatusCode.INVALID_ARGUMENT and "colour" in (unknown.details() or "")
    assert [v.field for v in violations_of(unknown)] == ["update_mask.paths[1]"]

    # The action's timeout as a Duration: it wins over timeout_seconds; responses fill both.
    timed = registry_pb2.Action(ref="core.echo", timeout=duration_pb2.Duration(seconds=90), timeout_seconds=5)
    masked = field_mask_pb2.FieldMask(paths=["timeout"])
    action = (
        await core.registry.UpdateAction(registry_pb2.UpdateActionRequest(action=timed, update_mask=masked))
    ).action
    assert (action.timeout.ToSeconds(), action.timeout_seconds, action.description) == (90, 90.0, "says it back")

    # A request's timeout: the Duration wins, the old field still works, both are filled.
    both = await core.request(
        "core.echo", SAY, timeout=duration_pb2.Duration(seconds=2, nanos=500_000_000), timeout_seconds=7
    )
    assert (both.timeout.ToNanoseconds(), both.timeout_seconds) == (2_500_000_000, 2.5)
    legacy = await core.request("core.echo", SAY, timeout_seconds=7)
    assert (legacy.timeout.ToSeconds(), legacy.timeout_seconds) == (7, 7.0)
    default = await core.request("core.echo", SAY)
    assert default.timeout.ToSeconds() == 90  # the action's
    negative = await _refused(core.request("core.echo", SAY, timeout=duration_pb2.Duration(seconds=-1)))
    assert [v.field for v in violations_of(negative)] == ["timeout"]


async def test_reflection_answers_as_v1(cluster: Cluster) -> None:
    """A v1 client (its messages built from the v1 descriptor) lists the services and gets the
    file of a public one."""
    service = v1_file_descriptor().services_by_name["ServerReflection"]
    request_class = GetMessageClass(service.methods_by_name["ServerReflectionInfo"].input_type)
    response_class = GetMessageClass(service.methods_by_name["ServerReflectionInfo"].output_type)
    call: Any = cluster.channel.stream_stream(
        f"/{V1_SERVICE_NAME}/ServerReflectionInfo",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_class.FromString,
    )
    requests = [
        request_class(list_services=""),
        request_class(file_containing_symbol="attune.registry.v1.RegistryService"),
    ]
    listed, described = [response async for response in call(iter(requests))]
    assert type(listed).DESCRIPTOR.full_name == "grpc.reflection.v1.ServerReflectionResponse"
    names = {s.name for s in listed.list_services_response.service}
    assert {V1_SERVICE_NAME, "grpc.reflection.v1alpha.ServerReflection", "attune.registry.v1.RegistryService"} <= names
    assert described.file_descriptor_response.file_descriptor_proto, described
