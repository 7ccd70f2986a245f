"""The console's registry API on a running scheduler, on PostgreSQL and SQLite: ValidateWorkflow,
workflow actions created and updated with a `definition`, and WhoAmI with authentication off."""

from __future__ import annotations

import grpc
import pytest

from attune.auth.v1 import auth_pb2, auth_pb2_grpc
from attune.grpcutil.convert import dict_from_struct
from attune.grpcutil.errors import violations_of
from attune.registry.v1 import registry_pb2
from tests.scheduler.harness import Cluster

GOOD = """\
tasks:
  - name: greet
    action: core.echo
    input:
      message: hello
    next:
      - when: "{{ succeeded() }}"
        do: done
  - name: done
    action: core.noop
"""
BAD = """\
tasks:
  - name: greet
    action: core.echo
    next:
      - when: "{{ succeeded() }}"
        do: done
      - when: "{{ failed( }}"
        do: nowhere
  - name: done
    action: core.nope
"""


async def test_validate_workflow_returns_problems_document_and_graph(core: Cluster) -> None:
    ok = await core.registry.ValidateWorkflow(registry_pb2.ValidateWorkflowRequest(definition=GOOD, pack="core"))
    assert list(ok.problems) == []
    assert dict_from_struct(ok.workflow)["tasks"][0]["name"] == "greet"
    assert [n.name for n in ok.graph.nodes] == ["greet", "done"]
    assert [(e.from_task, e.to_task, e.kind) for e in ok.graph.edges] == [("greet", "done", "succeeded")]

    bad = await core.registry.ValidateWorkflow(registry_pb2.ValidateWorkflowRequest(definition=BAD, pack="core"))
    assert {(p.task, p.field, p.line, p.column) for p in bad.problems} == {
        ("greet", "next[1].when", 7, 15),
        ("greet", "next[1].do", 8, 13),
        ("done", "action", 10, 13),
    }
    assert len(bad.graph.nodes) == 2, "a document with problems still has its graph"

    syntax = await core.registry.ValidateWorkflow(registry_pb2.ValidateWorkflowRequest(definition="tasks: [\n"))
    [problem] = syntax.problems
    assert problem.line == 2 and problem.message.startswith("invalid YAML")
    assert not syntax.HasField("graph") and not syntax.HasField("workflow")

    elsewhere = await core.registry.ValidateWorkflow(
        registry_pb2.ValidateWorkflowRequest(definition=GOOD, pack="nosuchpack")
    )
    assert [p.message for p in elsewhere.problems] == ["pack 'nosuchpack' is not registered: register it first"]

    huge = GOOD + "#" * core.settings.max_yaml_bytes
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await core.registry.ValidateWorkflow(registry_pb2.ValidateWorkflowRequest(definition=huge, pack="core"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations_of(refused.value)] == ["definition"]

    me = await auth_pb2_grpc.TokenServiceStub(core.channel).WhoAmI(auth_pb2.WhoAmIRequest())
    assert (me.name, me.role, me.auth_enabled) == ("", auth_pb2.ROLE_ADMIN, False)


def _workflow(name: str, definition: str, description: str = "") -> registry_pb2.Action:
    return registry_pb2.Action(
        pack="core", name=name, runner_type="workflow", definition=definition, description=description
    )


async def test_a_workflow_action_is_created_and_updated_with_its_definition(core: Cluster) -> None:
    created = (
        await core.registry.CreateAction(
            registry_pb2.CreateActionRequest(action=_workflow("greeter", GOOD, description="v1"), request_id="mk-1")
        )
    ).action
    assert created.definition == GOOD and created.workflow_file == ""
    got = (await core.registry.GetAction(registry_pb2.GetActionRequest(ref="core.greeter"))).action
    assert got.definition == GOOD
    listed = await core.registry.ListActions(registry_pb2.ListActionsRequest(pack="core"))
    assert [a.definition for a in listed.actions if a.ref == "core.greeter"] == [""], "lists carry no definition"
    retried = await core.registry.CreateAction(
        registry_pb2.CreateActionRequest(action=_workflow("greeter", GOOD, description="v1"), request_id="mk-1")
    )
    assert retried.action.id == created.id

    # A definition with problems is refused naming action.definition, task, field and line.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await core.registry.CreateAction(registry_pb2.CreateActionRequest(action=_workflow("broken", BAD)))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    described = [v.description for v in violations_of(refused.value) if v.field == "action.definition"]
    assert any(d.startswith('task "greet", field next[1].when, line 7, column 15: syntax error') for d in described)
    assert any(d.startswith('task "done", field action, line 10, column 13: ') for d in described)

    # Only the definition changes with update_mask "definition".
    second = GOOD.replace("hello", "hello again")
    updated = (
        await core.registry.UpdateAction(
            registry_pb2.UpdateActionRequest(
                id=created.id, action=registry_pb2.Action(definition=second), update_mask={"paths": ["definition"]}
            )
        )
    ).action
    assert updated.definition == second and updated.description == "v1"
    # A mask that leaves the definition out keeps it.
    described_only = (
        await core.registry.UpdateAction(
            registry_pb2.UpdateActionRequest(
                id=created.id, action=registry_pb2.Action(description="v2"), update_mask={"paths": ["description"]}
            )
        )
    ).action
    assert (described_only.definition, described_only.description) == (second, "v2")

    # The ref is immutable: a renamed pack or name is refused, definition and all, and nothing changes.
    for field, value in (("name", "renamed"), ("pack", "examples")):
        tampered = _workflow("greeter", GOOD.replace("hello", "tampered"))
        setattr(tampered, field, value)
        with pytest.raises(grpc.aio.AioRpcError) as immutable:
            await core.registry.UpdateAction(registry_pb2.UpdateActionRequest(id=created.id, action=tampered))
        assert immutable.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert [v.field for v in violations_of(immutable.value)] == [field]
    after = (await core.registry.GetAction(registry_pb2.GetActionRequest(ref="core.greeter"))).action
    assert (after.definition, after.description, after.updated_at) == (second, "v2", described_only.updated_at)

    # Re-registering the pack keeps the action CreateAction made.
    await core.register_bundled("core")
    kept = (await core.registry.GetAction(registry_pb2.GetActionRequest(ref="core.greeter"))).action
    assert kept.definition == second


async def test_a_definition_is_for_workflow_actions_only(core: Cluster) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await core.registry.CreateAction(
            registry_pb2.CreateActionRequest(
                action=registry_pb2.Action(pack="core", name="odd", runner_type="noop", definition=GOOD)
            )
        )
    assert [v.field for v in violations_of(refused.value)] == ["action.definition"]
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await core.registry.CreateAction(registry_pb2.CreateActionRequest(action=_workflow("empty", "")))
    assert [v.field for v in violations_of(empty.value)] == ["action.definition"]
    assert "a definition or a workflow_file" in violations_of(empty.value)[0].description
