"""RegistryService: packs registered as a whole, actions with immutable refs."""

from __future__ import annotations

import grpc
import pytest

from attune.grpcutil.convert import struct_from_dict
from attune.grpcutil.errors import violations_of
from attune.packs import bundled_pack_path, read_pack_files
from attune.registry.v1 import registry_pb2
from tests.scheduler.harness import Cluster, pack_request

DEMO_PACK = {
    "pack.yaml": b'ref: demo\nversion: "1.0.0"\n',
    "actions/hello.yaml": b"ref: demo.hello\nrunner_type: shell\nentry_point: hello.sh\n",
    "actions/hello.sh": b"echo hello\n",
}


async def test_register_bundled_core_pack(cluster: Cluster) -> None:
    (response,) = await cluster.register_bundled("core")
    assert response.pack.ref == "core"
    assert {a.ref for a in response.actions} == {"core.echo", "core.local", "core.noop", "core.sleep"}
    echo = (await cluster.registry.GetAction(registry_pb2.GetActionRequest(ref="core.echo"))).action
    assert echo.runner_type == "shell"
    assert echo.entry_point == "actions/echo.sh"
    assert echo.pack_digest == response.pack.digest
    listed = await cluster.registry.ListActions(registry_pb2.ListActionsRequest(pack="core"))
    assert [a.ref for a in listed.actions] == ["core.echo", "core.local", "core.noop", "core.sleep"]
    files = await cluster.registry.GetPackFiles(registry_pb2.GetPackFilesRequest(digest=response.pack.digest))
    assert files.pack_ref == "core"
    expected = read_pack_files(bundled_pack_path("core"))
    assert {f.path: f.content for f in files.files} == expected


async def test_reregistering_keeps_action_ids(cluster: Cluster) -> None:
    (first,) = await cluster.register_bundled("core")
    (second,) = await cluster.register_bundled("core")
    assert {a.ref: a.id for a in first.actions} == {a.ref: a.id for a in second.actions}


async def test_bad_pack_is_refused_naming_file_and_field(cluster: Cluster) -> None:
    files = dict(DEMO_PACK)
    files["actions/broken.yaml"] = b"ref: demo.broken\nrunner_type: ruby\nentry_point: hello.sh\n"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cluster.registry.RegisterPack(pack_request(files))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {v.field: v.description for v in violations_of(caught.value)}
    assert "actions/broken.yaml: runner_type" in fields
    assert "ruby" in fields["actions/broken.yaml: runner_type"]
    # Refused as a whole: the valid action of the same pack was not registered either.
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await cluster.registry.GetAction(registry_pb2.GetActionRequest(ref="demo.hello"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_changing_an_action_ref_is_refused_and_nothing_changes(core: Cluster) -> None:
    before = (await core.registry.GetAction(registry_pb2.GetActionRequest(ref="core.echo"))).action
    changed = registry_pb2.Action()
    changed.CopyFrom(before)
    changed.name = "shout"
    changed.label = "Shout"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await core.registry.UpdateAction(registry_pb2.UpdateActionRequest(id=before.id, action=changed))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert [v.field for v in violations_of(caught.value)] == ["name"]
    changed.name = before.name
    changed.pack = "other"
    with pytest.raises(grpc.aio.AioRpcError) as caught_pack:
        await core.registry.UpdateAction(registry_pb2.UpdateActionRequest(id=before.id, action=changed))
    assert [v.field for v in violations_of(caught_pack.value)] == ["pack"]
    after = (await core.registry.GetAction(registry_pb2.GetActionRequest(ref="core.echo"))).action
    assert after == before


async def test_update_action_changes_mutable_fields_by_ref(core: Cluster) -> None:
    before = (await core.registry.GetAction(registry_pb2.GetActionRequest(ref="core.echo"))).action
    changed = registry_pb2.Action()
    changed.CopyFrom(before)
    changed.label = "Loud echo"
    changed.enabled = False
    updated = (await core.registry.UpdateAction(registry_pb2.UpdateActionRequest(action=changed))).action
    assert (updated.id, updated.ref, updated.label, updated.enabled) == (before.id, "core.echo", "Loud echo", False)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await core.request("core.echo", {"message": "hi"})
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "core.echo" in (caught.value.details() or "")


async def test_create_action_checks_pack_runner_schema_and_entry_point(core: Cluster) -> None:
    def create(request_id: str = "", **fields: object) -> registry_pb2.CreateActionRequest:
        action = registry_pb2.Action(pack="core", name="greet", runner_type="shell", entry_point="actions/echo.sh", enabled=True)
        for key, value in fields.items():
            if key == "parameters":
                action.parameters.CopyFrom(struct_from_dict(value))  # type: ignore[arg-type]
            else:
                setattr(action, key, value)
        return registry_pb2.CreateActionRequest(action=action, request_id=request_id)

    cases = [
        (create(pack="nopack"), grpc.StatusCode.NOT_FOUND, None),
        (create(runner_type="cobol"), grpc.StatusCode.INVALID_ARGUMENT, "action.runner_type"),
        (create(entry_point="actions/missing.sh"), grpc.StatusCode.INVALID_ARGUMENT, "action.entry_point"),
        (create(parameters={"n": {"type": "matrix"}}), grpc.StatusCode.INVALID_ARGUMENT, "action.parameters.n.type"),
    ]
    for request, code, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await core.registry.CreateAction(request)
        assert caught.value.code() == code, request
        if field:
            assert field in [v.field for v in violations_of(caught.value)]
    first = (await core.registry.CreateAction(create(request_id="create-greet"))).action
    again = (await core.registry.CreateAction(create(request_id="create-greet"))).action
    assert first.id == again.id and first.ref == "core.greet" and first.pack_digest
    with pytest.raises(grpc.aio.AioRpcError) as duplicate:
        await core.registry.CreateAction(create(request_id="another"))
    assert duplicate.value.code() == grpc.StatusCode.ALREADY_EXISTS
    deleted = await core.registry.DeleteAction(registry_pb2.DeleteActionRequest(ref="core.greet"))
    assert deleted.ref == "core.greet"
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await core.registry.DeleteAction(registry_pb2.DeleteActionRequest(ref="core.greet"))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
