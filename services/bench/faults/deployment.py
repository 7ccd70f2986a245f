"""The services under test: one or two replicas of each, started, killed and restarted one
process at a time (``attune up``'s launcher starts them only all together).

Everything but the spawning comes from the launcher: the plan's environment, ATTUNE_HOME with
its TLS material and tokens, the worker's withheld variables, the readiness proofs. Replicas
listen on their own ports (ATTUNE_LISTEN_ADDRESS) and are reached through one multi-address
target per service (``ipv4:127.0.0.1:A,127.0.0.1:B``), which gRPC's round_robin spreads calls
over and fails over between.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from attune.config import Settings
from attune_services.cli.client import Client
from attune_services.cli.cmd_pack import upload_pack
from attune_services.cli.launcher import (
    SERVICES,
    LaunchError,
    LaunchPlan,
    ServiceProcess,
    free_port,
    prepare_home,
    prove_worker,
    register_bundled_packs,
    wait_serving,
    worker_env,
)

#: How long a SIGTERMed process may take before it is killed when the deployment stops.
STOP_GRACE_S = 10.0


def _target(addresses: list[str]) -> str:
    """One address as is; several as a gRPC ``ipv4:`` target naming each."""
    return addresses[0] if len(addresses) == 1 else "ipv4:" + ",".join(addresses)


def _pdeathsig_prefix() -> list[str]:
    """``setpriv --pdeathsig=KILL``, so no service outlives a benchmark that is killed."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig=KILL", "--"] if setpriv else []


class Deployment:
    """`replicas` processes of each service against one database, named ``<service>-<n>``."""

    def __init__(self, home: Path, database_url: str, *, replicas: int, env: Mapping[str, str], secure: bool) -> None:
        self.replicas = replicas
        self.listen: dict[str, str] = {}
        targets: dict[str, str] = {}
        for service, _, _ in SERVICES:
            own = [f"127.0.0.1:{free_port()}" for _ in range(replicas)]
            self.listen.update({f"{service}-{n + 1}": address for n, address in enumerate(own)})
            targets[service] = _target(own)
        self.plan = LaunchPlan(database_url=database_url, home=home, addresses=targets, env=dict(env), secure=secure)
        self.processes: dict[str, ServiceProcess] = {}
        #: The worker id each worker process runs under; a restarted worker gets a new one, as a
        #: restarted process does by default (host and pid).
        self.worker_ids: dict[str, str] = {}
        self._incarnations: dict[str, int] = {}
        self.log_dir = home / "logs"

    @property
    def names(self) -> list[str]:
        """Every process name, services in start order."""
        return list(self.listen)

    def client(self) -> Client:
        """A client of the scheduler replicas, as the CLI (with its credentials when secure)."""
        settings = self.plan_settings()
        return Client(self.plan.addresses["scheduler"], settings, token=self.plan.admin_token())

    def plan_settings(self) -> Settings:
        """The settings this process calls the services with: theirs, as the CLI."""
        return Settings.from_env(self.plan.child_env()).replace(identity="cli")

    def spawn(self, name: str) -> None:
        """Starts process `name` (``python -m attune_services.<service>``), logging to a file."""
        service = name.rsplit("-", 1)[0]
        module = next(module for svc, module, _ in SERVICES if svc == service)
        env = self.plan.child_env()
        env["ATTUNE_LISTEN_ADDRESS"] = self.listen[name]
        if service == "worker":
            incarnation = self._incarnations.get(name, 0) + 1
            self._incarnations[name] = incarnation
            self.worker_ids[name] = f"{name}" if incarnation == 1 else f"{name}.{incarnation}"
            env.update(ATTUNE_WORKER_ADDRESS=self.listen[name], ATTUNE_WORKER_ID=self.worker_ids[name])
            env = worker_env(env)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log: IO[bytes] = log_path.open("ab")
        try:
            process = subprocess.Popen(
                [*_pdeathsig_prefix(), sys.executable, "-m", module],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.processes[name] = ServiceProcess(name, self.listen[name], process, log_path)

    async def start(self, timeout: float, extra_packs: list[Path]) -> None:
        """Starts every process, waits until each is SERVING, registers the bundled packs and
        `extra_packs`, and proves a worker with a core.noop run."""
        prepare_home(self.plan)
        deadline = time.monotonic() + timeout
        # One replica of each service at a time: replicas started together on a fresh database
        # race to create the bootstrap admin token, and the loser exits (a start-up defect this
        # benchmark is not about).
        for n in range(1, self.replicas + 1):
            wave = [name for name in self.names if name.endswith(f"-{n}")]
            for name in wave:
                self.spawn(name)
            await asyncio.gather(*(self.wait_serving(name, deadline) for name in wave))
        async with self.client() as client:
            while True:
                try:
                    await register_bundled_packs(client)
                    for folder in extra_packs:
                        await upload_pack(client, folder)
                    await prove_worker(client)
                    return
                except Exception as err:
                    if time.monotonic() > deadline:
                        raise LaunchError(f"the deployment did not become ready: {err}") from err
                    await asyncio.sleep(0.2)

    async def wait_serving(self, name: str, deadline: float) -> None:
        """Polls grpc.health.v1 of process `name` until SERVING; LaunchError if it dies or the
        deadline (time.monotonic()) passes."""
        child = self.processes[name]

        def alive() -> None:
            death = child.died()
            if death:
                raise LaunchError(death)

        await wait_serving(child, deadline, self.plan_settings(), alive=alive)

    def kill(self, name: str) -> None:
        """SIGKILL to process `name`, reaped."""
        process = self.processes[name].process
        process.kill()
        process.wait()

    async def restart(self, name: str, timeout: float) -> None:
        """Starts process `name` again and waits until it is SERVING."""
        self.spawn(name)
        await self.wait_serving(name, time.monotonic() + timeout)

    def stop(self) -> None:
        """SIGTERM to every process, workers first; SIGKILL to what is left after a grace."""
        order = sorted(self.processes.values(), key=lambda child: not child.name.startswith("worker"))
        for child in order:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in order:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
