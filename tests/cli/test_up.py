"""`attune up` as a user runs it: SQLite in a fresh ATTUNE_HOME, ready line, a workflow run
against it, Ctrl-C stopping every child; and the failures it reports in one line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attune_services.cli.launcher import free_port
from tests.cli.e2e import attune, attune_script

pytestmark = pytest.mark.integration

READY_TIMEOUT = 120.0


def up_env(home: Path) -> dict[str, str]:
    """The environment of an `attune up` in `home`: none of ours, a short shutdown grace."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATTUNE_", "OTEL_"))}
    env.update({"ATTUNE_HOME": str(home), "ATTUNE_SHUTDOWN_GRACE": "3", "ATTUNE_LOG_LEVEL": "WARNING"})
    return env


def port_flags() -> list[str]:
    """Free ports for every service."""
    return [f"--{name}-port={free_port()}" for name in ("scheduler", "coordinator", "completion", "worker", "console")]


async def start_up(*args: str, env: dict[str, str]) -> tuple[asyncio.subprocess.Process, list[str]]:
    """Starts `attune up ARGS` and waits for its ready line; returns it with the lines it printed."""
    proc = await asyncio.create_subprocess_exec(
        attune_script(),
        "up",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    shown: list[str] = []
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            while not (shown and shown[-1].startswith("attune is ready")):
                line = (await proc.stdout.readline()).decode()
                if not line:
                    raise AssertionError("attune up ended before it was ready: " + (await proc.stderr.read()).decode())
                shown.append(line.rstrip("\n"))
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return proc, shown


@pytest.mark.parametrize("secure", [True, False], ids=["secure-default", "insecure"])
async def test_up_runs_everything_until_ctrl_c(tmp_path: Path, secure: bool) -> None:
    env = up_env(tmp_path)
    proc, shown = await start_up(*port_flags(), *([] if secure else ["--insecure"]), env=env)
    try:
        address = shown[-1].rsplit(" ", 1)[1]
        services = {"scheduler", "coordinator", "completion", "worker", "console:"}
        assert {line.split()[0] for line in shown[:-1]} == services
        children = psutil.Process(proc.pid).children()
        assert len(children) == 5
        assert (tmp_path / "attune.db").exists()
        assert tmp_path.stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
        if secure:  # credentials made on first start, found by the CLI below with no flags
            assert (tmp_path / "tls" / "ca.pem").exists() and (tmp_path / "tls" / "cli.key").exists()
            assert (tmp_path / "admin.token").stat().st_mode & 0o777 == 0o600
            assert await _plaintext_refused(address)
        else:
            assert not (tmp_path / "tls").exists() and not (tmp_path / "admin.token").exists()
            assert not await _plaintext_refused(address)

        outcome = await attune(
            "run", "examples.single_echo", "--wait", "--output", "json", env={**env, "ATTUNE_ADDRESS": address}
        )
        assert outcome.code == 0, outcome.stderr
        assert outcome.json()["children"][0]["task"] == "echo"
        # Each service's line names its metrics endpoint, which answers (docs/operations.md, Metrics).
        urls = [word for line in shown[:-1] for word in line.split() if word.endswith("/metrics")]
        assert len(urls) == 4, shown
        for url in urls:
            assert "attune_grpc_server_calls_total" in await asyncio.to_thread(_fetch, url)
        # The web console's URL is printed and it serves its page (docs/console.md).
        console = next(line.split()[1] for line in shown if line.startswith("console: "))
        assert console.startswith("http://127.0.0.1:") and console.endswith("/")
        assert "<html" in (await asyncio.to_thread(_fetch, console)).lower()
        # Secure, it asks for a token; insecure, every visitor is an admin without signing in.
        status, session = await asyncio.to_thread(_fetch_json, console + "api/session")
        if secure:
            assert status == 401
        else:
            assert status == 200 and session["role"] == "admin" and session["auth_enabled"] is False

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        async with asyncio.timeout(30):
            code = await proc.wait()
        assert code == 0
        _, still_running = psutil.wait_procs(children, timeout=5)
        assert still_running == []
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _fetch_json(url: str) -> tuple[int, Any]:
    """The status and JSON body of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return int(reply.status), json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return str(reply.read().decode())


async def test_up_reports_a_service_that_cannot_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        flags = [f for f in port_flags() if not f.startswith("--scheduler-port")] + [f"--scheduler-port={port}"]
        outcome = await attune("up", *flags, env=up_env(tmp_path), timeout=READY_TIMEOUT)
    assert outcome.code == 1
    assert "Traceback" not in outcome.stderr.split("last output")[0]
    assert "attune: error: " in outcome.stderr
    assert "scheduler" in outcome.stderr.split("attune: error: ", 1)[1].splitlines()[0]


async def test_up_reports_a_database_it_cannot_migrate(tmp_path: Path) -> None:
    outcome = await attune(
        "up",
        "--database-url",
        f"postgresql://nobody@127.0.0.1:{free_port()}/nothing",
        *port_flags(),
        env=up_env(tmp_path),
    )
    assert outcome.code == 1
    lines = outcome.stderr.strip().splitlines()
    assert lines[-1].startswith("attune: error: migrating ") and "Traceback" not in outcome.stderr


async def _plaintext_refused(address: str) -> bool:
    """Whether a plaintext health check of `address` fails (it does against a TLS port)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=3.0)  # type: ignore[attr-defined]
        except grpc.RpcError:
            return True
    return False
