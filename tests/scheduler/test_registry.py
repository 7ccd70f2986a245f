"""RegistryService: packs registered as a whole, actions with immutable refs."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from alembic import command

from attune.grpcutil.convert import struct_from_dict
from attune.grpcutil.errors import violations_of
from attune.internal.packs.v1 import packs_pb2
from attune.packs import bundled_pack_path, read_pack_files
from attune.registry.v1 import registry_pb2
from attune.storage import Database
from attune.storage.migrate import alembic_config, upgrade
from attune.storage.schema import actions
from attune_services.cli.client import Client
from attune_services.cli.cmd_pack import register_pack
from attune_services.cli.output import TEXT
from tests.scheduler.harness import Cluster, pack_request

DEMO_PACK = {
    "pack.yaml": b'ref: demo\nversion: "1.0.0"\n',
    "actions/hello.yaml": b"ref: demo.hello\nrunner_type: shell\nentry_point: hello.sh\n",
    "actions/hello.sh": b"echo hello\n",
}


async def test_register_bundled_core_pack(cluster: Cluster) -> None:
    (response,) = await cluster.register_bundled("core")
    assert response.pack.ref == "core"
    assert {a.ref for a in response.actions} == {"core.ask", "core.echo", "core.local", "core.noop", "core.sleep"}
    echo = (await cluster.registry.GetAction(registry_pb2.GetActionRequest(ref="core.echo"))).action
    assert echo.runner_type == "shell"
    assert echo.entry_point == "actions/echo.sh"
    assert echo.pack_digest == response.pack.digest
    listed = await cluster.registry.ListActions(registry_pb2.ListActionsRequest(pack="core"))
    assert [a.ref for a in listed.actions] == ["core.ask", "core.echo", "core.local", "core.noop", "core.sleep"]
    files = await cluster.pack_files.GetPackFiles(packs_pb2.GetPackFilesRequest(digest=response.pack.digest))
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
        action = registry_pb2.Action(
            pack="core", name="greet", runner_type="shell", entry_point="actions/echo.sh", enabled=True
        )
        for key, value in fields.items():
            if key == "parameters":
                # Tests pass parameters as a dict; the other fields as their own types.
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


# --- re-registration: the registry matches the pack folder ---------------------------------------

TWO_ACTIONS = {
    "pack.yaml": b'ref: demo\nversion: "1.0.0"\n',
    "actions/a.yaml": b"ref: demo.a\nlabel: A\nrunner_type: shell\nentry_point: a.sh\n",
    "actions/a.sh": b"echo a\n",
    "actions/b.yaml": b"ref: demo.b\nrunner_type: noop\n",
}


def without_b(changes: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """TWO_ACTIONS minus actions/b.yaml, with `changes` ({path: content}) applied."""
    files = {p: c for p, c in TWO_ACTIONS.items() if p != "actions/b.yaml"}
    return {**files, **(changes or {})}


async def expect_code(call: Awaitable[object], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """Awaits `call`, which must fail with `code`; returns the error."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value


def get_action(cluster: Cluster, ref: str) -> Awaitable[registry_pb2.GetActionResponse]:
    return cluster.registry.GetAction(registry_pb2.GetActionRequest(ref=ref))


async def test_reregistering_without_an_action_removes_it_and_updates_the_rest(cluster: Cluster) -> None:
    first = await cluster.registry.RegisterPack(pack_request(TWO_ACTIONS))
    assert [a.ref for a in first.actions] == ["demo.a", "demo.b"] and not first.removed_action_refs
    earlier = await cluster.request("demo.b")
    relabelled = without_b({"actions/a.yaml": b"ref: demo.a\nlabel: A2\nrunner_type: shell\nentry_point: a.sh\n"})
    second = await cluster.registry.RegisterPack(pack_request(relabelled))
    assert list(second.removed_action_refs) == ["demo.b"]
    assert [(a.ref, a.id, a.label) for a in second.actions] == [("demo.a", first.actions[0].id, "A2")]
    assert (await get_action(cluster, "demo.a")).action.pack_digest == second.pack.digest
    await expect_code(get_action(cluster, "demo.b"), grpc.StatusCode.NOT_FOUND)
    await expect_code(cluster.request("demo.b"), grpc.StatusCode.NOT_FOUND)
    listed = await cluster.registry.ListActions(registry_pb2.ListActionsRequest(pack="demo"))
    assert [a.ref for a in listed.actions] == ["demo.a"]
    # Executions store their action_ref as text: the earlier one is untouched.
    assert (await cluster.get(earlier.id)).execution.action_ref == "demo.b"
    third = await cluster.registry.RegisterPack(pack_request(relabelled))
    assert not third.removed_action_refs


async def test_reregistering_keeps_actions_created_through_the_api(cluster: Cluster) -> None:
    await cluster.registry.RegisterPack(pack_request(TWO_ACTIONS))
    created = registry_pb2.Action(pack="demo", name="extra", runner_type="shell", entry_point="a.sh", enabled=True)
    extra = (await cluster.registry.CreateAction(registry_pb2.CreateActionRequest(action=created))).action
    assert extra.pack_digest  # the digest alone cannot tell it from the pack's own actions
    second = await cluster.registry.RegisterPack(pack_request(without_b({"actions/a.sh": b"echo a2\n"})))
    assert list(second.removed_action_refs) == ["demo.b"]
    kept = (await get_action(cluster, "demo.extra")).action
    assert (kept.id, kept.entry_point) == (extra.id, "actions/a.sh")
    assert (await cluster.request("demo.extra")).action_ref == "demo.extra"


async def test_an_api_action_the_pack_files_then_declare_belongs_to_the_pack(cluster: Cluster) -> None:
    await cluster.registry.RegisterPack(pack_request(without_b()))
    created = registry_pb2.Action(pack="demo", name="b", runner_type="noop", enabled=True)
    await cluster.registry.CreateAction(registry_pb2.CreateActionRequest(action=created))
    claimed = await cluster.registry.RegisterPack(pack_request(TWO_ACTIONS))
    assert [a.ref for a in claimed.actions] == ["demo.a", "demo.b"]
    dropped = await cluster.registry.RegisterPack(pack_request(without_b()))
    assert list(dropped.removed_action_refs) == ["demo.b"]


async def test_refused_reregistration_deletes_nothing(cluster: Cluster) -> None:
    await cluster.registry.RegisterPack(pack_request(TWO_ACTIONS))
    before = {
        a.ref: a for a in (await cluster.registry.ListActions(registry_pb2.ListActionsRequest(pack="demo"))).actions
    }
    broken = without_b({"actions/c.yaml": b"ref: demo.c\nrunner_type: ruby\n"})
    error = await expect_code(cluster.registry.RegisterPack(pack_request(broken)), grpc.StatusCode.INVALID_ARGUMENT)
    assert "actions/c.yaml: runner_type" in {v.field for v in violations_of(error)}
    after = {
        a.ref: a for a in (await cluster.registry.ListActions(registry_pb2.ListActionsRequest(pack="demo"))).actions
    }
    assert after == before and set(after) == {"demo.a", "demo.b"}


async def test_a_workflow_may_not_call_an_action_its_pack_no_longer_declares(cluster: Cluster) -> None:
    await cluster.registry.RegisterPack(pack_request(TWO_ACTIONS))
    workflow = b"ref: demo.flow\nversion: 1.0\ntasks:\n  - name: first\n    action: demo.b\n"
    error = await expect_code(
        cluster.registry.RegisterPack(pack_request(without_b({"workflows/flow.workflow.yaml": workflow}))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    fields = {v.field: v.description for v in violations_of(error)}
    assert "demo.b" in fields['workflows/flow.workflow.yaml: task "first", field action']
    assert (await get_action(cluster, "demo.b")).action.ref == "demo.b"


async def test_cli_pack_register_prints_the_removed_actions(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "demo"
    for path, content in TWO_ACTIONS.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(content)
    client = Client("127.0.0.1:1")  # never dialled: its registry stub is the cluster's
    client.registry = cluster.registry
    try:
        args = argparse.Namespace(directory=folder, output=TEXT)
        assert await register_pack(args, client) == 0
        assert "removed" not in capsys.readouterr().out
        (folder / "actions" / "b.yaml").unlink()
        assert await register_pack(args, client) == 0
        printed = capsys.readouterr().out
    finally:
        await client.close()
    assert "demo.a" in printed
    assert printed.splitlines()[-1] == "removed actions no longer in the pack folder: demo.b"


async def test_migration_0002_marks_the_rows_of_each_pack_s_latest_registration(database_url: str) -> None:
    """Rows from before revision 0002: those matching their pack's latest registration (digest and
    the registration's time) are the pack's; the rest stay unmarked, so they are kept."""
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "0001")
    db = Database(database_url)
    try:
        async with db.write() as conn:
            # The tables as revision 0001 has them (schema.packs and schema.actions have later columns).
            pack = {
                "ref": "demo",
                "digest": "d2",
                "registered_at": 20.0,
                "label": "",
                "version": "1",
                "description": "",
            }
            await conn.execute(sa.table("packs", *(sa.column(name) for name in pack)).insert(), [pack])
            rows = [
                _old_action("demo.registered", digest="d2", updated_at=20.0),
                _old_action("demo.created", digest="d2", updated_at=21.5),  # CreateAction, later
                _old_action("demo.left_behind", digest="d1", updated_at=10.0),
            ]
            await conn.execute(sa.table("actions", *(sa.column(name) for name in rows[0])).insert(), rows)
        upgrade(database_url)
        async with db.read() as conn:
            marked = dict((await conn.execute(sa.select(actions.c.ref, actions.c.from_pack_files))).all())
    finally:
        await db.close()
    assert marked == {"demo.registered": True, "demo.created": False, "demo.left_behind": False}


def _old_action(ref: str, *, digest: str, updated_at: float) -> dict[str, object]:
    return {
        "id": ref.replace(".", "_"),
        "ref": ref,
        "pack": "demo",
        "name": ref.split(".")[1],
        "label": "",
        "description": "",
        "enabled": True,
        "runner_type": "noop",
        "parameters": "{}",
        "output": "{}",
        "tags": "[]",
        "pack_digest": digest,
        "created_at": updated_at,
        "updated_at": updated_at,
    }
