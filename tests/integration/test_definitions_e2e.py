"""A workflow action made through the API with its `definition` (as the console's builder saves
one) runs on the real services, on PostgreSQL and SQLite: created, run by the coordinator; its
definition updated, `attune run` runs the new one."""

from __future__ import annotations

from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto, struct_from_dict
from attune.registry.v1 import registry_pb2
from tests.cli.e2e import attune
from tests.integration.cluster import Cluster

PACK = "consoleflows"
DEFINITION = """\
tasks:
  - name: greet
    action: core.echo
    input:
      message: "{version} {{{{ parameters.who }}}}"
    next:
      - when: "{{{{ succeeded() }}}}"
        publish:
          - said: "{{{{ result().stdout | trim }}}}"
output_map:
  - said: "{{{{ vars.said }}}}"
"""


async def _pack(cluster: Cluster) -> None:
    files = [registry_pb2.PackFile(path="pack.yaml", content=f'ref: {PACK}\nversion: "1.0.0"\n'.encode())]
    await cluster.registry.RegisterPack(registry_pb2.RegisterPackRequest(files=files), timeout=30)


async def test_a_definition_saved_through_the_api_is_what_runs(cluster: Cluster) -> None:
    await _pack(cluster)
    parameters = struct_from_dict({"who": {"type": "string", "default": "world"}})
    action = registry_pb2.Action(
        pack=PACK,
        name="greeter",
        runner_type="workflow",
        enabled=True,
        parameters=parameters,
        definition=DEFINITION.format(version="v1"),
    )
    created = (await cluster.registry.CreateAction(registry_pb2.CreateActionRequest(action=action))).action
    assert created.definition == DEFINITION.format(version="v1") and created.workflow_file == ""
    first = await cluster.run(f"{PACK}.greeter", {"who": "ada"})
    assert execution_state_from_proto(first.execution.state) == "succeeded", first.execution.error
    assert dict_from_struct(first.execution.result) == {"said": "v1 ada", "succeeded": True}

    updated = await cluster.registry.UpdateAction(
        registry_pb2.UpdateActionRequest(
            id=created.id,
            action=registry_pb2.Action(definition=DEFINITION.format(version="v2")),
            update_mask={"paths": ["definition"]},
        )
    )
    assert "v2" in updated.action.definition
    ran = await attune("run", f"{PACK}.greeter", "-p", "who=bob", "--wait", "--output", "json", env=cluster.cli_env())
    assert ran.code == 0, ran.stderr
    doc = ran.json()
    assert doc["state"] == "succeeded" and doc["result"] == {"said": "v2 bob", "succeeded": True}

    # Re-registering the pack keeps the action CreateAction made, with its definition.
    await _pack(cluster)
    kept = (await cluster.registry.GetAction(registry_pb2.GetActionRequest(ref=f"{PACK}.greeter"))).action
    assert kept.definition == DEFINITION.format(version="v2")
