"""The four services and a worker as real processes with TLS from `attune tls init`: every hop is
mutual TLS, an action and a workflow run end to end, and the scheduler's port refuses plaintext
and a client without a certificate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from attune.execution.v1 import execution_pb2, execution_pb2_grpc
from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto
from attune.security.certificates import init_material
from tests.integration.cluster import Cluster


@pytest.fixture
async def tls_cluster(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    tls_dir = tmp_path / "tls"
    init_material(tls_dir)
    cluster = Cluster(database_url, tmp_path / "cluster", ATTUNE_TLS_DIR=str(tls_dir))
    try:
        await cluster.start(workers=1)
        await cluster.register_bundled_packs()
        yield cluster
    finally:
        await cluster.stop()


async def test_an_action_and_a_workflow_run_over_mutual_tls(tls_cluster: Cluster) -> None:
    reply = await tls_cluster.run("core.echo", {"message": "over tls"})
    assert execution_state_from_proto(reply.execution.state) == "succeeded", reply.execution.error
    assert dict_from_struct(reply.execution.result)["stdout"] == "over tls\n"
    assert reply.execution.worker_id == "worker-1"

    reply = await tls_cluster.run("examples.single_echo", {"message": "tls all the way"})
    assert execution_state_from_proto(reply.execution.state) == "succeeded", reply.execution.error
    assert dict_from_struct(reply.execution.result) == {"succeeded": True, "message": "tls all the way"}
    [child] = reply.children
    assert child.action_ref == "core.echo" and execution_state_from_proto(child.state) == "succeeded"


async def test_the_scheduler_refuses_plaintext_and_clients_without_a_certificate(tls_cluster: Cluster) -> None:
    address = tls_cluster.addresses["scheduler"]
    ca = (Path(tls_cluster.env["ATTUNE_TLS_DIR"]) / "ca.pem").read_bytes()
    for channel in (
        grpc.aio.insecure_channel(address),
        grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca)),
    ):
        stub = execution_pb2_grpc.ExecutionServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListExecutions(execution_pb2.ListExecutionsRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        await channel.close()
