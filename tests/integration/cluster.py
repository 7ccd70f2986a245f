"""A real Attune cluster for integration tests: the four services and workers as separate
processes (`python -m attune_services.<svc>`) on free ports against a real database.

Timings are short (schedule timeout, worker grace, kill grace) so failure paths run in seconds.
Each process logs to <workdir>/<name>.log; spans go to <workdir>/spans.jsonl. Given
`ATTUNE_TLS_DIR=<folder>` (made by `attune.security.certificates.init_material`), every service
runs with TLS, so every call is authorized: the cluster's own probes and calls present the `cli`
certificate, and its calls the bootstrap admin token (`admin_token`, in <workdir>/admin.token).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attune.config import Settings
from attune.execution.v1 import execution_pb2, execution_pb2_grpc
from attune.grpcutil.channel import open_channel
from attune.grpcutil.convert import execution_state_from_proto, struct_from_dict
from attune.packs import bundled_pack_path
from attune.registry.v1 import registry_pb2, registry_pb2_grpc
from attune.security.certificates import init_material
from attune.security.sealing import DEFAULT_KEY_FILE_NAME, ensure_key_file
from attune.security.tokens import ADMIN_TOKEN_FILE, new_token
from attune.states import TERMINAL
from attune.workflow.v1 import workflow_pb2_grpc
from attune_services.cli.launcher import free_port, worker_env
from tests.support.polling import eventually

SERVICES = ("completion", "coordinator", "scheduler")

SHORT_TIMINGS = {
    "ATTUNE_SCHEDULE_TIMEOUT": "3",
    "ATTUNE_WORKER_GRACE": "1.5",
    "ATTUNE_HEARTBEAT_INTERVAL": "0.5",
    "ATTUNE_KILL_GRACE": "0.5",
    "ATTUNE_SHUTDOWN_GRACE": "5",
    "ATTUNE_RETRY_INTERVAL": "0.2",
    "ATTUNE_POLL_INTERVAL": "0.02",
}


def secure_overrides(workdir: Path) -> dict[str, str]:
    """What makes a cluster secure, laid out as `attune up` lays out ATTUNE_HOME: TLS material in
    <workdir>/tls (and, made by the cluster, the admin token in <workdir>/admin.token), so the
    `attune` script run with ATTUNE_HOME=<workdir> finds both (`Cluster.cli_env`)."""
    tls = workdir / "tls"
    if not (tls / "ca.pem").exists():
        init_material(tls)
    return {"ATTUNE_TLS_DIR": str(tls)}


class Cluster:
    """Processes of one cluster sharing one database and one environment."""

    def __init__(self, database_url: str, workdir: Path, **overrides: str) -> None:
        self.database_url = database_url
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        # The key sealing secret parameters, where `attune up` keeps it ($ATTUNE_HOME/secret.key).
        self.secret_key_file = ensure_key_file(workdir / DEFAULT_KEY_FILE_NAME)
        self.addresses = {name: f"127.0.0.1:{free_port()}" for name in SERVICES}
        self.trace_file = workdir / "spans.jsonl"
        self.env = {
            **os.environ,
            "ATTUNE_HOME": str(workdir),
            "ATTUNE_DATABASE_URL": database_url,
            "ATTUNE_SCHEDULER_ADDRESS": self.addresses["scheduler"],
            "ATTUNE_COORDINATOR_ADDRESS": self.addresses["coordinator"],
            "ATTUNE_COMPLETION_ADDRESS": self.addresses["completion"],
            "ATTUNE_ADDRESS": self.addresses["scheduler"],
            "ATTUNE_TRACE_FILE": str(self.trace_file),
            "ATTUNE_PACK_CACHE_DIR": str(workdir / "pack-cache"),
            "ATTUNE_LOG_FORMAT": "json",
            **SHORT_TIMINGS,
            **overrides,
        }
        self.env.pop("OTEL_TRACES_EXPORTER", None)
        self.admin_token = self._admin_token() if self.env.get("ATTUNE_TLS_DIR") else None
        # How this test process calls the services: as the CLI would (its certificate under TLS).
        self.client_settings = Settings.from_env(self.env).replace(identity="cli")
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.worker_addresses: dict[str, str] = {}
        # Each process's Prometheus endpoint (ATTUNE_METRICS_ADDRESS), by process name; kept
        # across restarts of the process.
        self.metrics_addresses: dict[str, str] = {}
        self._channel: grpc.aio.Channel | None = None
        #: The web console's base URL once `start_console` has started it.
        self.console_url: str | None = None

    def cli_env(self) -> dict[str, str]:
        """The environment under which the `attune` script reaches this cluster as a user would:
        its address, and its ATTUNE_HOME, where the CLI finds the TLS material and admin token."""
        return {"ATTUNE_ADDRESS": self.addresses["scheduler"], "ATTUNE_HOME": str(self.workdir)}

    def _admin_token(self) -> str:
        """With TLS every call is authorized: a token the scheduler makes the admin's at start."""
        token = new_token()
        token_file = self.workdir / ADMIN_TOKEN_FILE
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        self.env["ATTUNE_ADMIN_TOKEN_FILE"] = str(token_file)
        return token

    # --- processes ----------------------------------------------------------------------------

    def _spawn(self, name: str, module: str, env: dict[str, str]) -> None:
        metrics = self.metrics_addresses.setdefault(name, f"127.0.0.1:{free_port()}")
        env = {**env, "ATTUNE_METRICS_ADDRESS": metrics}
        with open(self.workdir / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", f"attune_services.{module}"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )

    async def start_service(self, name: str) -> None:
        """Starts one of scheduler, coordinator, completion and waits until it is SERVING."""
        self._spawn(name, name, self.env)
        await self.wait_serving(self.addresses[name], name)

    async def start_worker(self, worker_id: str = "worker-1", **env: str) -> str:
        """Starts a worker process; returns its process name. Waits until it is SERVING."""
        name = f"worker:{worker_id}"
        address = f"127.0.0.1:{free_port()}"
        self.worker_addresses[name] = address
        # As `attune up` does: the worker gets no database URL or other platform credential.
        self._spawn(
            name,
            "worker",
            worker_env({**self.env, "ATTUNE_WORKER_ID": worker_id, "ATTUNE_WORKER_ADDRESS": address, **env}),
        )
        await self.wait_serving(address, name)
        return name

    async def start(self, *, workers: int = 1) -> None:
        """Starts every service, then `workers` workers: each group at once, as `attune up` starts
        its children, and waits until every process is SERVING."""
        await asyncio.gather(*(self.start_service(name) for name in SERVICES))
        await asyncio.gather(*(self.start_worker(f"worker-{i + 1}") for i in range(workers)))

    async def start_console(self, timeout: float = 30.0) -> str:
        """Starts the web console (`python -m attune_services.console`) against this cluster's
        scheduler, as `attune up` does, and waits until it answers; returns its base URL. It
        presents the `cli` certificate under TLS and holds no token: each user brings their own."""
        address = f"127.0.0.1:{free_port()}"
        self._spawn("console", "console", {**self.env, "ATTUNE_CONSOLE_ADDRESS": address})
        url = f"http://{address}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.processes["console"]
            if proc.poll() is not None:
                raise RuntimeError(f"console exited with {proc.returncode}:\n{self.log_tail('console')}")
            if await asyncio.to_thread(_answers, f"{url}/healthz"):
                self.console_url = url
                return url
            await asyncio.sleep(0.05)
        raise TimeoutError(f"console not answering at {url} after {timeout}s:\n{self.log_tail('console')}")

    async def wait_serving(self, address: str, name: str, timeout: float = 30.0) -> None:
        """Polls grpc.health.v1 until SERVING; fails with the process's log if it died."""
        deadline = time.monotonic() + timeout
        async with open_channel(address, self.client_settings) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                proc = self.processes.get(name)
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
                try:
                    # types-grpcio-health-checking's HealthStub lists no methods; Check answers a HealthCheckResponse.
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)  # type: ignore[attr-defined]
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError(f"{name} not SERVING at {address} after {timeout}s:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last lines a process logged."""
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def signal(self, name: str, sig: int) -> None:
        """Sends a signal to one process."""
        self.processes[name].send_signal(sig)

    def kill(self, name: str) -> None:
        """SIGKILLs one process and reaps it."""
        proc = self.processes.pop(name)
        proc.kill()
        proc.wait(10)

    def terminate(self, name: str, timeout: float = 15.0) -> int:
        """SIGTERMs one process and waits for it; returns its exit code."""
        proc = self.processes.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise

    async def stop(self) -> None:
        """Stops everything (workers first), SIGKILL after a grace."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        # Replicas (tests/integration/replicas.py) are named "<service>-<n>".
        order = [n for n in self.processes if n == "console" or n.startswith("worker:")] + [
            n for svc in ("scheduler", "coordinator", "completion") for n in self.processes if n.split("-")[0] == svc
        ]
        logged = {name: self._log_size(name) for name in order}
        for name in order:
            self.processes[name].send_signal(signal.SIGTERM)
        stopping = {name: self.processes.pop(name) for name in order}
        deadline = time.monotonic() + 10
        while stopping and time.monotonic() < deadline:
            for name, proc in list(stopping.items()):
                if proc.poll() is not None or self._logged_stopped(name, logged[name]):
                    _EXITING.append(stopping.pop(name))
            await asyncio.sleep(0.02)
        for proc in stopping.values():
            proc.kill()
            proc.wait(5)
        _reap_exited()

    def _log_size(self, name: str) -> int:
        path = self.workdir / f"{name}.log"
        return path.stat().st_size if path.exists() else 0

    def _logged_stopped(self, name: str, since: int) -> bool:
        """Whether the process logged, after byte `since` of its log, that it stopped: its servers,
        streams, pools and runs are closed; what is left is the interpreter's exit, which gRPC's
        exit handlers hold up for ~2 s (waiting on its poller thread), so `stop` does not wait
        for it (`_reap_exited`)."""
        with open(self.workdir / f"{name}.log", "rb") as log:
            log.seek(since)
            return any(b'"msg": "stopped"' in line for line in log)

    # --- clients ------------------------------------------------------------------------------

    @property
    def channel(self) -> grpc.aio.Channel:
        """A channel to the scheduler (the one client address)."""
        if self._channel is None:
            self._channel = open_channel(self.addresses["scheduler"], self.client_settings, token=self.admin_token)
        return self._channel

    @property
    def executions(self) -> execution_pb2_grpc.ExecutionServiceStub:
        return execution_pb2_grpc.ExecutionServiceStub(self.channel)

    @property
    def registry(self) -> registry_pb2_grpc.RegistryServiceStub:
        return registry_pb2_grpc.RegistryServiceStub(self.channel)

    @property
    def workflows(self) -> workflow_pb2_grpc.WorkflowServiceStub:
        return workflow_pb2_grpc.WorkflowServiceStub(self.channel)

    async def register_pack(self, folder: Path) -> registry_pb2.RegisterPackResponse:
        """Uploads a pack folder's files."""
        files = [
            registry_pb2.PackFile(path=p.relative_to(folder).as_posix(), content=p.read_bytes())
            for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        ]
        return await self.registry.RegisterPack(registry_pb2.RegisterPackRequest(files=files), timeout=30)

    async def register_bundled_packs(self) -> None:
        """Registers the bundled core and examples packs."""
        await self.register_pack(bundled_pack_path("core"))
        await self.register_pack(bundled_pack_path("examples"))

    async def request(
        self, action_ref: str, parameters: dict[str, Any] | None = None, **kw: Any
    ) -> execution_pb2.Execution:
        """Requests an execution; returns it as created."""
        reply = await self.executions.RequestExecution(
            execution_pb2.RequestExecutionRequest(
                action_ref=action_ref, parameters=struct_from_dict(parameters or {}), **kw
            ),
            timeout=10,
        )
        return reply.execution

    async def wait_terminal(self, execution_id: str, timeout: float = 30.0) -> execution_pb2.GetExecutionResponse:
        """Polls until the execution is terminal; returns it with its children."""
        last = ""

        async def terminal() -> execution_pb2.GetExecutionResponse | None:
            nonlocal last
            reply = await self.executions.GetExecution(execution_pb2.GetExecutionRequest(id=execution_id), timeout=5)
            last = execution_state_from_proto(reply.execution.state)
            return reply if last in TERMINAL else None

        return await eventually(
            terminal, within=timeout, interval=0.05, what=lambda: f"execution {execution_id} to end (still {last})"
        )

    async def run(
        self, action_ref: str, parameters: dict[str, Any] | None = None, timeout: float = 30.0, **kw: Any
    ) -> execution_pb2.GetExecutionResponse:
        """Requests an execution and waits until it ends."""
        execution = await self.request(action_ref, parameters, **kw)
        return await self.wait_terminal(execution.id, timeout)

    def spans(self) -> list[dict[str, Any]]:
        """Every span the services exported so far."""
        if not self.trace_file.exists():
            return []
        return [json.loads(line) for line in self.trace_file.read_text().splitlines() if line.strip()]


def _answers(url: str) -> bool:
    """Whether an HTTP GET of `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


#: Processes that logged "stopped" and are exiting (`Cluster.stop`): reaped later, and at the
#: latest when the test session ends.
_EXITING: list[subprocess.Popen[bytes]] = []


def _reap_exited() -> None:
    _EXITING[:] = [proc for proc in _EXITING if proc.poll() is None]


@atexit.register
def _reap_exiting() -> None:
    for proc in _EXITING:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


#: Makes a private cluster (not started) on a fresh database: the `fresh_cluster` fixture.
ClusterFactory = Callable[..., Awaitable[Cluster]]
