"""`attune health ADDRESS`, the probe of deploy/: the real script against a real TLS server.

The server demands client certificates, as the coordinator and completion services do, so the
check passes only when it presents the certificate ATTUNE_IDENTITY names from ATTUNE_TLS_DIR.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from attune.config import Settings
from attune.grpcutil.server import ServerHandle, start_server, stop_server
from attune.security.tls import ClientAuth

ATTUNE = str(Path(sys.executable).with_name("attune"))


class HealthOnly:
    """A service app serving nothing but health, demanding client certificates under TLS."""

    service_names: Sequence[str] = ()
    client_auth = ClientAuth.REQUIRED

    def register(self, server: grpc.aio.Server) -> None:
        pass

    async def start(self) -> None:
        pass

    async def drain(self) -> None:
        pass

    async def close(self) -> None:
        pass


@pytest.fixture
async def server(tls_dir: Path) -> AsyncIterator[tuple[HealthOnly, ServerHandle]]:
    app = HealthOnly()
    settings = Settings(tls_dir=str(tls_dir), identity="coordinator")
    handle = await start_server(app, address="127.0.0.1:0", settings=settings)
    yield app, handle
    await stop_server(app, handle, grace=0.1)


async def attune_health(port: int, **env: str) -> tuple[int, str, str]:
    """Runs `attune health 127.0.0.1:PORT` with only `env` among ATTUNE_* variables."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("ATTUNE_")}
    process = await asyncio.create_subprocess_exec(
        ATTUNE,
        "health",
        f"127.0.0.1:{port}",
        env={**clean, "ATTUNE_HOME": "/nonexistent", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_health_passes_over_mutual_tls_with_the_identity_of_the_container(
    server: tuple[HealthOnly, ServerHandle], tls_dir: Path
) -> None:
    _, handle = server
    code, out, err = await attune_health(handle.port, ATTUNE_TLS_DIR=str(tls_dir), ATTUNE_IDENTITY="coordinator")
    assert (code, out.strip()) == (0, "SERVING"), err


async def test_health_fails_in_one_line_when_the_service_is_not_serving(
    server: tuple[HealthOnly, ServerHandle], tls_dir: Path
) -> None:
    _, handle = server
    await handle.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    code, out, err = await attune_health(handle.port, ATTUNE_TLS_DIR=str(tls_dir), ATTUNE_IDENTITY="coordinator")
    assert code == 1 and not out
    assert err.strip().startswith(f"attune: error: 127.0.0.1:{handle.port} is NOT_SERVING (")
    assert "database is unreachable or not migrated" in err and len(err.strip().splitlines()) == 1


async def test_health_fails_without_tls_against_a_tls_port(server: tuple[HealthOnly, ServerHandle]) -> None:
    _, handle = server
    code, _, err = await attune_health(handle.port)
    assert code == 1
    assert err.startswith(f"attune: error: health check of 127.0.0.1:{handle.port} failed: UNAVAILABLE"), err
    assert len(err.strip().splitlines()) == 1, err


async def test_health_names_the_missing_certificate(server: tuple[HealthOnly, ServerHandle], tmp_path: Path) -> None:
    _, handle = server
    code, _, err = await attune_health(handle.port, ATTUNE_TLS_DIR=str(tmp_path), ATTUNE_IDENTITY="worker")
    assert code == 1
    assert str(tmp_path / "ca.pem") in err, err
