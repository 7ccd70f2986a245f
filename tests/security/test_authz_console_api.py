"""The API the console signs in and edits workflows with, under authentication (TLS and tokens),
on PostgreSQL and SQLite: WhoAmI tells each token its name and role, a viewer may validate a
workflow but not save one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from attune.auth.v1 import auth_pb2, auth_pb2_grpc
from attune.packs import bundled_pack_path, read_pack_files
from attune.registry.v1 import registry_pb2, registry_pb2_grpc
from tests.security.authz_cluster import ADMIN_TOKEN, SecureCluster, start_secure_cluster

DEFINITION = "tasks:\n  - name: hello\n    action: core.echo\n    input:\n      message: hi\n"


@pytest.fixture
async def cluster(database_url: str, tls_dir: Path, tmp_path: Path) -> AsyncIterator[SecureCluster]:
    running = await start_secure_cluster(database_url, tls_dir, tmp_path)
    try:
        yield running
    finally:
        await running.stop()


async def test_whoami_validate_and_create_by_role(cluster: SecureCluster) -> None:
    admin_channel = cluster.channel("scheduler", token=ADMIN_TOKEN)
    tokens = auth_pb2_grpc.TokenServiceStub(admin_channel)
    files = [registry_pb2.PackFile(path=p, content=c) for p, c in read_pack_files(bundled_pack_path("core")).items()]
    await registry_pb2_grpc.RegistryServiceStub(admin_channel).RegisterPack(
        registry_pb2.RegisterPackRequest(files=files)
    )
    secrets = {}
    for name, role in (("ann", auth_pb2.ROLE_VIEWER), ("otto", auth_pb2.ROLE_OPERATOR), ("ada", auth_pb2.ROLE_ADMIN)):
        secrets[name] = (await tokens.CreateToken(auth_pb2.CreateTokenRequest(name=name, role=role))).secret

    for name, role in (("ann", auth_pb2.ROLE_VIEWER), ("otto", auth_pb2.ROLE_OPERATOR), ("ada", auth_pb2.ROLE_ADMIN)):
        me = await auth_pb2_grpc.TokenServiceStub(cluster.channel("scheduler", token=secrets[name])).WhoAmI(
            auth_pb2.WhoAmIRequest()
        )
        assert (me.name, me.role, me.auth_enabled) == (name, role, True)
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await auth_pb2_grpc.TokenServiceStub(cluster.channel("scheduler")).WhoAmI(auth_pb2.WhoAmIRequest())
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED

    viewer = registry_pb2_grpc.RegistryServiceStub(cluster.channel("scheduler", token=secrets["ann"]))
    checked = await viewer.ValidateWorkflow(registry_pb2.ValidateWorkflowRequest(definition=DEFINITION, pack="core"))
    assert list(checked.problems) == [] and [n.name for n in checked.graph.nodes] == ["hello"]
    action = registry_pb2.Action(pack="core", name="hello_flow", runner_type="workflow", definition=DEFINITION)
    for name in ("ann", "otto"):
        registry = registry_pb2_grpc.RegistryServiceStub(cluster.channel("scheduler", token=secrets[name]))
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await registry.CreateAction(registry_pb2.CreateActionRequest(action=action))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "requires role admin" in (denied.value.details() or "")
    admin = registry_pb2_grpc.RegistryServiceStub(cluster.channel("scheduler", token=secrets["ada"]))
    created = (await admin.CreateAction(registry_pb2.CreateActionRequest(action=action))).action
    assert created.definition == DEFINITION and created.updated_by == "ada"
