"""TLS on the wire, with real grpc.aio servers and channels: mutual TLS names the caller, and
plaintext, a missing client certificate or a certificate from another CA never get through.
Without TLS a service serves loopback only, unless ATTUNE_INSECURE=1."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attune.config import Settings
from attune.grpcutil.channel import open_channel
from attune.grpcutil.server import start_server, stop_server
from attune.security import tls
from attune.security.certificates import init_material
from attune.security.identity import peer_identity
from attune.security.tls import ClientAuth, InsecureListenError, TlsMaterial, is_loopback, load_material
from attune_services.cli.client import error_from_rpc
from attune_services.cli.launcher import free_port

WHO = "/attune.test.Who/Ask"


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tls")
    init_material(folder)
    return folder


@pytest.fixture(scope="module")
def other_material(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("other-tls")
    init_material(folder)
    return folder


def _material(folder: Path, identity: str) -> TlsMaterial:
    loaded = load_material(Settings(tls_dir=str(folder), identity=identity))
    assert loaded is not None
    return loaded


async def _who(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return (peer_identity(context) or "nobody").encode()


@pytest.fixture
async def who_server(material: Path) -> AsyncIterator[int]:
    """A bare server that answers each call with the caller's identity, requiring client certificates."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("attune.test.Who", {"Ask": grpc.unary_unary_rpc_method_handler(_who)})]
    )
    credentials = tls.server_credentials(_material(material, "scheduler"), ClientAuth.REQUIRED)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    yield port
    await server.stop(None)


async def _ask(channel: grpc.aio.Channel) -> str:
    ask: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(WHO)
    reply = await ask(b"", timeout=5)
    return reply.decode()


@pytest.mark.parametrize("identity", ["worker", "coordinator", "completion", "scheduler", "cli"])
async def test_mutual_tls_names_the_caller(material: Path, who_server: int, identity: str) -> None:
    settings = Settings(tls_dir=str(material), identity=identity)
    async with open_channel(f"127.0.0.1:{who_server}", settings) as channel:
        assert await _ask(channel) == identity
    async with open_channel(f"localhost:{who_server}", settings) as channel:  # verified by DNS name too
        assert await _ask(channel) == identity


async def _refused(channel: grpc.aio.Channel) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _ask(channel)
    await channel.close()
    return caught.value


async def test_plaintext_to_a_tls_port_fails(who_server: int) -> None:
    error = await _refused(grpc.aio.insecure_channel(f"127.0.0.1:{who_server}"))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_client_without_a_certificate_is_refused(material: Path, who_server: int) -> None:
    ca_only = grpc.ssl_channel_credentials(root_certificates=(material / "ca.pem").read_bytes())
    error = await _refused(grpc.aio.secure_channel(f"127.0.0.1:{who_server}", ca_only))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_from_another_ca_is_refused(material: Path, other_material: Path, who_server: int) -> None:
    # A worker certificate the server's CA never signed, presented by a client that trusts the server.
    forged = _material(other_material, "worker")
    credentials = grpc.ssl_channel_credentials((material / "ca.pem").read_bytes(), forged.key, forged.cert)
    error = await _refused(grpc.aio.secure_channel(f"127.0.0.1:{who_server}", credentials))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    # And a client of the other CA does not trust this server.
    error = await _refused(open_channel(f"127.0.0.1:{who_server}", Settings(tls_dir=str(other_material))))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


class HealthOnlyApp:
    """The smallest service: health and reflection from the bootstrap, nothing of its own."""

    service_names: Sequence[str] = ()

    def __init__(self, client_auth: ClientAuth = ClientAuth.REQUIRED) -> None:
        self.client_auth = client_auth

    def register(self, server: grpc.aio.Server) -> None:
        """Nothing to add."""

    async def start(self) -> None:
        """Nothing to start."""

    async def drain(self) -> None:
        """Nothing in flight."""

    async def close(self) -> None:
        """Nothing to release."""


async def _health(channel: grpc.aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    # types-grpcio-health-checking's HealthStub lists no methods; Check answers a HealthCheckResponse.
    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)  # type: ignore[attr-defined]
    status: int = reply.status
    await channel.close()
    return status


async def test_the_bootstrap_serves_tls_as_the_app_declares(material: Path) -> None:
    settings = Settings(tls_dir=str(material), identity="completion")
    required = HealthOnlyApp(ClientAuth.REQUIRED)
    optional = HealthOnlyApp(ClientAuth.NONE)
    handles = [await start_server(app, address="127.0.0.1:0", settings=settings) for app in (required, optional)]
    try:
        client = Settings(tls_dir=str(material))
        serving = health_pb2.HealthCheckResponse.SERVING
        assert await _health(open_channel(f"127.0.0.1:{handles[0].port}", client)) == serving
        assert await _health(open_channel(f"127.0.0.1:{handles[1].port}", client)) == serving
        ca_only = grpc.ssl_channel_credentials(root_certificates=(material / "ca.pem").read_bytes())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _health(grpc.aio.secure_channel(f"127.0.0.1:{handles[0].port}", ca_only))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        # Health-only (the worker's server): no certificate asked for.
        assert await _health(grpc.aio.secure_channel(f"127.0.0.1:{handles[1].port}", ca_only)) == serving
        with pytest.raises(grpc.aio.AioRpcError):
            await _health(grpc.aio.insecure_channel(f"127.0.0.1:{handles[1].port}"))
    finally:
        for app, handle in zip((required, optional), handles, strict=True):
            await stop_server(app, handle, grace=0.5)


def test_loopback_addresses() -> None:
    for address in ["127.0.0.1:50051", "127.1.2.3:0", "localhost:50051", "[::1]:50051", "unix:/tmp/attune.sock"]:
        assert is_loopback(address), address
    for address in ["0.0.0.0:50051", "[::]:50051", "10.0.0.5:50051", "scheduler:50051", ":50051"]:
        assert not is_loopback(address), address


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0"])
async def test_plaintext_beyond_loopback_is_refused_unless_insecure(
    address: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = HealthOnlyApp()
    with pytest.raises(InsecureListenError) as caught:
        await start_server(app, address=address, settings=Settings())
    message = str(caught.value)
    assert address in message and "attune tls init" in message and "ATTUNE_TLS_DIR" in message
    assert "ATTUNE_INSECURE=1" in message
    monkeypatch.setattr(tls, "_warned_insecure", False)
    with caplog.at_level(logging.WARNING, logger=tls.__name__):
        handles = [await start_server(app, address=address, settings=Settings(insecure=True)) for _ in range(2)]
    try:
        assert [r.getMessage() for r in caplog.records if r.name == tls.__name__] == [
            f"serving plaintext on {address} (ATTUNE_INSECURE=1): no TLS, no authorization"
        ]
        assert await _health(grpc.aio.insecure_channel(f"127.0.0.1:{handles[0].port}")) == 1
    finally:
        for handle in handles:
            await stop_server(app, handle, grace=0.5)


async def test_a_service_process_refuses_0000_without_tls_and_starts_with_insecure(sqlite_url: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ATTUNE_DATABASE_URL": sqlite_url,
        "ATTUNE_COMPLETION_ADDRESS": f"0.0.0.0:{port}",
        "ATTUNE_LOG_FORMAT": "text",
    }
    for name in ("ATTUNE_TLS_DIR", "ATTUNE_TLS_CA", "ATTUNE_TLS_CERT", "ATTUNE_TLS_KEY", "ATTUNE_INSECURE"):
        env.pop(name, None)
    command = [sys.executable, "-m", "attune_services.completion"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert f"refusing to listen on 0.0.0.0:{port} without TLS" in refused.stdout + refused.stderr
    process = subprocess.Popen(
        command, env={**env, "ATTUNE_INSECURE": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        status = 0
        for _ in range(200):
            try:
                status = await _health(grpc.aio.insecure_channel(f"127.0.0.1:{port}"))
                break
            except grpc.aio.AioRpcError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                await asyncio.sleep(0.1)
        assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert "serving plaintext on 0.0.0.0" in output


async def test_the_cli_names_a_tls_mismatch(material: Path, other_material: Path, who_server: int) -> None:
    address = f"127.0.0.1:{who_server}"
    untrusted = await _refused(open_channel(address, Settings(tls_dir=str(other_material))))
    message = error_from_rpc(untrusted, address).message
    assert message.startswith(f"TLS handshake with attune at {address} failed (")
    assert "ATTUNE_TLS_DIR" in message
    plaintext = await _refused(grpc.aio.insecure_channel(address))
    message = error_from_rpc(plaintext, address).message
    assert message.startswith(f"attune at {address} closed the connection; if it runs with TLS, ATTUNE_TLS_DIR")
