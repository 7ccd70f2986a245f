"""Every call authorized, over real TLS connections to the real services (scheduler, coordinator,
completion), on PostgreSQL and SQLite: internal RPCs by service certificate, public ones by token
and role, revocation within a second, and who requested what."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from attune.auth.v1 import auth_pb2, auth_pb2_grpc
from attune.execution.v1 import execution_pb2, execution_pb2_grpc
from attune.packs import bundled_pack_path, read_pack_files
from attune.registry.v1 import registry_pb2, registry_pb2_grpc
from attune.security.policy import POLICY, SERVICE_IDENTITIES, Role
from tests.security.authz_cluster import ADMIN_TOKEN, SecureCluster, start_secure_cluster
from tests.support.polling import eventually

DENIED = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}
INTERNAL = sorted(m for m in POLICY if ".internal." in m)
PUBLIC = sorted(m for m, rule in POLICY.items() if m.startswith("/attune.") and rule.role is not None)


@pytest.fixture
async def cluster(database_url: str, tls_dir: Path, tmp_path: Path) -> AsyncIterator[SecureCluster]:
    running = await start_secure_cluster(database_url, tls_dir, tmp_path)
    try:
        yield running
    finally:
        await running.stop()


async def _token(cluster: SecureCluster, name: str, role: Role) -> str:
    tokens = auth_pb2_grpc.TokenServiceStub(cluster.channel("scheduler", token=ADMIN_TOKEN))
    proto_role = {
        Role.VIEWER: auth_pb2.ROLE_VIEWER,
        Role.OPERATOR: auth_pb2.ROLE_OPERATOR,
        Role.ADMIN: auth_pb2.ROLE_ADMIN,
    }
    response = await tokens.CreateToken(auth_pb2.CreateTokenRequest(name=name, role=proto_role[role]))
    return response.secret


async def test_internal_rpcs_accept_only_the_identities_the_contract_names(cluster: SecureCluster) -> None:
    for method in INTERNAL:
        allowed = POLICY[method].identities
        # A client, even with an admin token, is refused, and told whose certificate is required.
        err = await cluster.error(method, identity="cli", token=ADMIN_TOKEN)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, method
        first = sorted(allowed)[0]
        assert f"requires the {first}'s certificate (spiffe://attune/{first})" in (err.details() or ""), err.details()
        for identity in sorted(SERVICE_IDENTITIES):
            code = await cluster.call(method, identity=identity)
            if identity in allowed:
                assert code not in DENIED, f"{method} refused the {identity}: {code}"
            else:
                assert code == grpc.StatusCode.PERMISSION_DENIED, f"{method} let the {identity} in: {code}"


async def test_a_worker_cannot_forge_a_result_or_start_a_workflow(cluster: SecureCluster) -> None:
    submit = await cluster.error("/attune.internal.completion.v1.CompletionService/SubmitResult", identity="worker")
    assert submit.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "the coordinator's certificate" in (submit.details() or "") and "the worker's" in (submit.details() or "")
    start = await cluster.error("/attune.internal.workflow.v1.CoordinatorService/StartWorkflows", identity="worker")
    assert start.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "requires the scheduler's certificate (spiffe://attune/scheduler)" in (start.details() or "")


async def test_each_role_may_call_exactly_what_it_needs(cluster: SecureCluster) -> None:
    tokens = {role: await _token(cluster, f"a-{role}", role) for role in Role}
    for method in PUBLIC:
        required = POLICY[method].role
        assert required is not None
        for role, token in tokens.items():
            code = await cluster.call(method, token=token)
            if role.allows(required):
                assert code not in DENIED, f"{method} refused role {role}: {code}"
            else:
                assert code == grpc.StatusCode.PERMISSION_DENIED, f"{method} let role {role} in: {code}"
    err = await cluster.error("/attune.registry.v1.RegistryService/DeleteAction", token=tokens[Role.OPERATOR])
    assert err.details() == (
        "/attune.registry.v1.RegistryService/DeleteAction requires role admin or higher; "
        "token 'a-operator' has role operator"
    )


async def test_missing_unknown_and_service_credentials_are_unauthenticated(cluster: SecureCluster) -> None:
    method = "/attune.execution.v1.ExecutionService/ListExecutions"
    missing = await cluster.error(method)
    assert missing.code() == grpc.StatusCode.UNAUTHENTICATED and "missing bearer token" in (missing.details() or "")
    unknown = await cluster.error(method, token="attune_made-up")
    assert unknown.code() == grpc.StatusCode.UNAUTHENTICATED
    assert unknown.details() == f"{method}: unknown or revoked token"
    # A service certificate is not a client credential, not even for a cancel: the coordinator
    # cancels a workflow's children through the internal CancelChildExecution.
    cancel = "/attune.execution.v1.ExecutionService/CancelExecution"
    for identity in sorted(SERVICE_IDENTITIES):
        assert await cluster.call(method, identity=identity) == grpc.StatusCode.UNAUTHENTICATED
        assert await cluster.call(cancel, identity=identity) == grpc.StatusCode.UNAUTHENTICATED


async def test_health_needs_nothing_and_reflection_a_viewer_or_a_service(cluster: SecureCluster) -> None:
    check = cluster.channel("scheduler").unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    assert (await check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING
    viewer = await _token(cluster, "looker", Role.VIEWER)

    async def services(target: str = "scheduler", **caller: str) -> list[str]:
        reflect = cluster.channel(target, **caller).stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        call = reflect(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        response = await call.read()
        assert isinstance(response, reflection_pb2.ServerReflectionResponse)
        return [s.name for s in response.list_services_response.service]

    assert "attune.auth.v1.TokenService" in await services(token=viewer)
    assert "attune.auth.v1.TokenService" in await services(identity="worker")

    # A refusal comes when the stream opens: read it without sending (a send racing the server's
    # close ends as a client-side INTERNAL instead).
    async def refusal(target: str = "scheduler", **caller: str) -> grpc.aio.AioRpcError:
        call = cluster.channel(target, **caller).stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call.read()
        return refused.value

    assert (await refusal()).code() == grpc.StatusCode.UNAUTHENTICATED
    # A service that serves only internal RPCs checks no tokens: a service certificate opens it.
    assert "attune.internal.workflow.v1.CoordinatorService" in await services("coordinator", identity="scheduler")
    no_tokens = await refusal("coordinator", token=viewer)
    assert no_tokens.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "accepts no tokens" in (no_tokens.details() or "")


async def test_a_revoked_token_is_refused_by_every_replica_within_a_second(cluster: SecureCluster) -> None:
    token = await _token(cluster, "short-lived", Role.OPERATOR)
    other = await cluster.add_scheduler()
    cluster.addresses["replica"] = other
    replica = execution_pb2_grpc.ExecutionServiceStub(cluster.channel("replica", token=token))
    await replica.ListExecutions(execution_pb2.ListExecutionsRequest())  # cached on the replica now
    admin = auth_pb2_grpc.TokenServiceStub(cluster.channel("scheduler", token=ADMIN_TOKEN))
    await admin.RevokeToken(auth_pb2.RevokeTokenRequest(name="short-lived"))
    assert await cluster.call("/attune.execution.v1.ExecutionService/ListExecutions", token=token) in DENIED

    async def refused() -> bool:
        try:
            await replica.ListExecutions(execution_pb2.ListExecutionsRequest())
        except grpc.aio.AioRpcError as err:
            return err.code() == grpc.StatusCode.UNAUTHENTICATED
        return False

    await eventually(refused, within=1.2, interval=0.05, what=lambda: "the replica to refuse the revoked token")
    listed = await admin.ListTokens(auth_pb2.ListTokensRequest())
    revoked = {t.name: t.HasField("revoked_at") for t in listed.tokens}
    assert revoked == {"admin": False, "short-lived": True}


async def test_who_registered_and_requested_is_recorded_and_shown(cluster: SecureCluster) -> None:
    deployer = await _token(cluster, "deployer", Role.ADMIN)
    runner = await _token(cluster, "runner", Role.OPERATOR)
    registry = registry_pb2_grpc.RegistryServiceStub(cluster.channel("scheduler", token=deployer))
    files = read_pack_files(bundled_pack_path("core"))
    registered = await registry.RegisterPack(
        registry_pb2.RegisterPackRequest(files=[registry_pb2.PackFile(path=p, content=c) for p, c in files.items()])
    )
    assert registered.pack.registered_by == "deployer"
    assert {a.updated_by for a in registered.actions} == {"deployer"}
    got = await registry.GetAction(registry_pb2.GetActionRequest(ref="core.noop"))
    assert got.action.updated_by == "deployer"
    listed = await registry.ListActions(registry_pb2.ListActionsRequest(pack="core"))
    assert {a.updated_by for a in listed.actions} == {"deployer"}

    executions = execution_pb2_grpc.ExecutionServiceStub(cluster.channel("scheduler", token=runner))
    requested = await executions.RequestExecution(execution_pb2.RequestExecutionRequest(action_ref="core.noop"))
    assert requested.execution.requested_by == "runner"
    fetched = await executions.GetExecution(execution_pb2.GetExecutionRequest(id=requested.execution.id))
    assert fetched.execution.requested_by == "runner"
    page = await executions.ListExecutions(execution_pb2.ListExecutionsRequest())
    assert [e.requested_by for e in page.executions if e.id == requested.execution.id] == ["runner"]
