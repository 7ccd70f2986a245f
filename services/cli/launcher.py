"""Starts a whole Attune on one machine: migrations, the four services as child processes (and,
for `attune up`, the web console), readiness (every service SERVING on grpc.health.v1, the
console answering HTTP, a worker connected), the bundled packs.

Shared by ``attune up`` and ``attune bench`` (and usable by test harnesses)::

    launcher = Launcher(LaunchPlan.local(home, database_url))
    launcher.migrate(); launcher.start()
    await launcher.wait_ready(timeout=60)        # raises LaunchError with the child's last stderr
    ...
    launcher.stop()                              # the worker drains first, then the others

A service that exits while `attune up` runs is started again by `attune_services.cli.supervisor`.

The services die with the launching process however it ends, SIGKILL included (PDEATHSIG), so
a killed `attune up` leaves no service holding its ports.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attune.config import WORKER_WITHHELD_VARIABLES, Settings, normalize_database_url
from attune.grpcutil.channel import open_channel
from attune.packs import bundled_pack_path
from attune.security.certificates import init_material
from attune.security.sealing import DEFAULT_KEY_FILE_NAME, ensure_key_file
from attune.security.tokens import ADMIN_TOKEN_FILE, new_token, read_token_file
from attune.states import ExecutionState
from attune_services.cli.client import Client, CliError
from attune_services.cli.local_home import INSECURE_MARKER, TLS_FOLDER

#: The services in start order: (name, module, the Settings field holding its address).
SERVICES: tuple[tuple[str, str, str], ...] = (
    ("completion", "attune_services.completion", "completion_address"),
    ("coordinator", "attune_services.coordinator", "coordinator_address"),
    ("scheduler", "attune_services.scheduler", "scheduler_address"),
    ("worker", "attune_services.worker", "worker_address"),
)
#: The web console (services/console): an HTTP server, started after the services when the plan
#: asks for it (`LaunchPlan.console`), ready once it answers GET /healthz.
CONSOLE: tuple[str, str, str] = ("console", "attune_services.console", "console_address")
_STOP_POLL_S = 0.02
BUNDLED_PACKS = ("core", "examples")
_TAIL_LINES = 20
_PR_SET_PDEATHSIG = 1


class LaunchError(Exception):
    """A service did not start or did not become ready; the message names it and why."""


_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE_FILE.read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _binds(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now, for a server that binds it later (often in another
    process), chosen outside the kernel's ephemeral range. A port from bind(0) lies inside it, and
    until the server binds it the kernel may hand it to any other bind(0) or outgoing connection:
    seen in CI, a test's worker reached another server on its scheduler's port ("UNIMPLEMENTED
    Method not found"). No port is handed out twice by one process."""
    low, high = _ephemeral_range()
    first, last = (10_000, low - 1) if low > 11_000 else (high + 1, 65_535)
    for _ in range(200):
        port = random.randint(first, last)
        if port not in _handed_out and _binds(host, port):
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # the range is crowded: any port
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, kw_only=True)
class LaunchPlan:
    """Where everything goes: the database, ATTUNE_HOME, each service's address, extra env."""

    database_url: str
    home: Path
    addresses: Mapping[str, str]
    env: Mapping[str, str] = field(default_factory=dict)
    #: TLS, mutual TLS and authorization on, with the credentials kept in `home` (`secure_home`).
    secure: bool = False
    #: Each service's Prometheus endpoint (its ATTUNE_METRICS_ADDRESS); a service not named serves none.
    metrics: Mapping[str, str] = field(default_factory=dict)

    @property
    def console(self) -> bool:
        """Whether the web console runs too (its address is in `addresses`)."""
        return CONSOLE[0] in self.addresses

    @property
    def console_url(self) -> str | None:
        """The web console's URL, when it runs."""
        return f"http://{self.addresses[CONSOLE[0]]}/" if self.console else None

    @classmethod
    def local(
        cls,
        home: Path,
        database_url: str = "",
        *,
        ports: Mapping[str, int] | None = None,
        env: Mapping[str, str] | None = None,
        settings: Settings | None = None,
        secure: bool = False,
        metrics: bool = False,
        console: bool = False,
    ) -> LaunchPlan:
        """A plan on 127.0.0.1. Ports default to the settings' addresses (the worker gets a free
        port so its health can be checked); a port of 0 in ``ports`` means "pick a free one".
        With `metrics`, each service serves its metrics on a free port of its own; with
        `console`, the web console runs too (port from ATTUNE_CONSOLE_ADDRESS or ``ports``)."""
        settings = settings or Settings.from_env()
        url = normalize_database_url(database_url or f"sqlite:///{home / 'attune.db'}")
        addresses: dict[str, str] = {}
        for name, _, attr in (*SERVICES, *([CONSOLE] if console else [])):
            port = (ports or {}).get(name)
            if port is None:
                port = int(getattr(settings, attr).rsplit(":", 1)[1])
            addresses[name] = f"127.0.0.1:{port or free_port()}"
        served = {name: f"127.0.0.1:{free_port()}" for name, _, _ in SERVICES} if metrics else {}
        return cls(database_url=url, home=home, addresses=addresses, env=dict(env or {}), secure=secure, metrics=served)

    def child_env(self) -> dict[str, str]:
        """The environment of every child: ours plus the plan's ATTUNE_* settings."""
        env = dict(os.environ)
        env.update(self.env)
        env["ATTUNE_HOME"] = str(self.home)
        env["ATTUNE_DATABASE_URL"] = self.database_url
        for name, _, attr in (*SERVICES, CONSOLE):
            if name in self.addresses:
                env["ATTUNE_" + attr.upper()] = self.addresses[name]
        if self.secure:
            env["ATTUNE_TLS_DIR"] = str(self.home / TLS_FOLDER)
            env["ATTUNE_ADMIN_TOKEN_FILE"] = str(self.home / ADMIN_TOKEN_FILE)
        return env

    def admin_token(self) -> str | None:
        """The admin token a secure plan's clients send (None when security is off)."""
        return read_token_file(self.home / ADMIN_TOKEN_FILE) if self.secure else None


def prepare_home(plan: LaunchPlan) -> None:
    """Makes `plan.home` (mode 0700: it holds the database, keys and tokens) and, on first use,
    what the plan's services need there: the key sealing secret values (`secret.key`, both modes),
    and for a secure plan the TLS material (`tls/`: an authority and a certificate per service
    and for the CLI) and the bootstrap admin token (`admin.token`, mode 0600). A secure plan
    removes the `insecure` marker an insecure one leaves, which tells the local CLI to connect
    without TLS (`local_tls_dir`)."""
    plan.home.mkdir(parents=True, exist_ok=True)
    plan.home.chmod(0o700)
    ensure_key_file(plan.home / DEFAULT_KEY_FILE_NAME)
    marker = plan.home / INSECURE_MARKER
    if not plan.secure:
        marker.write_text("attune up runs here without TLS (--insecure): the local CLI connects in plaintext\n")
        return
    marker.unlink(missing_ok=True)
    tls = plan.home / TLS_FOLDER
    if not (tls / "ca.pem").exists():
        init_material(tls)
    token_file = plan.home / ADMIN_TOKEN_FILE
    if not token_file.exists():
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(new_token() + "\n")


def exit_description(returncode: int) -> str:
    """How a process ended, as a person reads it: "exited with status 1", "killed by SIGKILL"."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


@dataclass
class ServiceProcess:
    """One running child service and where its output goes."""

    name: str
    address: str
    process: subprocess.Popen[bytes]
    log_path: Path
    #: How many times it was started again after it exited (`Launcher.restart`).
    restarts: int = 0

    def tail(self, lines: int = _TAIL_LINES) -> list[str]:
        """The last lines the child wrote to stderr/stdout."""
        try:
            with self.log_path.open("r", errors="replace") as log:
                return [line.rstrip("\n") for line in deque(log, maxlen=lines)]
        except OSError:
            return []

    def died(self) -> str | None:
        """A description of the child's death with its last output, None while it runs."""
        code = self.process.poll()
        if code is None:
            return None
        tail = "\n".join("  " + line for line in self.tail())
        return f"{self.name} {exit_description(code)} during start; its last output ({self.log_path}):\n{tail}"


class Launcher:
    """Runs the plan's services as child processes of this one."""

    def __init__(self, plan: LaunchPlan) -> None:
        self.plan = plan
        self.children: list[ServiceProcess] = []
        self.log_dir = plan.home / "logs"

    @property
    def scheduler_address(self) -> str:
        """Where clients connect."""
        return self.plan.addresses["scheduler"]

    def client_settings(self) -> Settings:
        """The settings this process calls the services with: the children's, as the CLI (with
        TLS configured in the plan, health probes and calls present the `cli` certificate)."""
        return Settings.from_env(self.plan.child_env()).replace(identity="cli")

    def client(self) -> Client:
        """A client of the plan's scheduler, with its credentials when security is on."""
        return Client(self.scheduler_address, self.client_settings(), token=self.plan.admin_token())

    def migrate(self) -> None:
        """Brings the database schema up to date, once, before any service starts."""
        try:
            from attune.storage.migrate import upgrade  # SQLAlchemy and Alembic: only `up` and `bench` need them

            upgrade(self.plan.database_url)
        except Exception as err:
            raise LaunchError(f"migrating {_safe_url(self.plan.database_url)} failed: {err}") from err

    def start(self) -> None:
        """Starts every service (``python -m attune_services.<svc>``), each logging to a file.

        Each is killed by the kernel when the thread that called this ends (PDEATHSIG follows
        the thread): call it, and `restart`, from the thread that lives as long as the services,
        the main one."""
        prepare_home(self.plan)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name, module, _ in self._launched():
            log_path = self.log_dir / f"{name}.log"
            process = self._spawn(name, module, log_path, append=False)
            self.children.append(ServiceProcess(name, self.plan.addresses[name], process, log_path))

    def _launched(self) -> tuple[tuple[str, str, str], ...]:
        """What the plan runs, in start order: the services, then the console when asked for."""
        return (*SERVICES, *([CONSOLE] if self.plan.console else []))

    def restart(self, child: ServiceProcess) -> None:
        """Starts `child`'s service again (it has exited), on the same address and settings; its
        log goes on in the same file."""
        if child.process.poll() is None:
            raise RuntimeError(f"{child.name} (pid {child.process.pid}) is still running")
        module = next(module for name, module, _ in self._launched() if name == child.name)
        child.process = self._spawn(child.name, module, child.log_path, append=True)
        child.restarts += 1

    def _spawn(self, name: str, module: str, log_path: Path, *, append: bool) -> subprocess.Popen[bytes]:
        env = self.plan.child_env()
        # One address per process: the same one given to all four would serve only the first.
        env["ATTUNE_METRICS_ADDRESS"] = self.plan.metrics.get(name, "")
        prefix, preexec = _dying_with_us()
        log: IO[bytes] = log_path.open("ab" if append else "wb")
        try:
            return subprocess.Popen(
                [*prefix, sys.executable, "-m", module],
                env=worker_env(env) if name == "worker" else env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
                preexec_fn=preexec,
            )
        finally:
            log.close()

    def check_alive(self) -> None:
        """Raises LaunchError naming the first child that has exited."""
        for child in self.children:
            death = child.died()
            if death:
                raise LaunchError(death)

    async def wait_ready(self, timeout: float, *, register_packs: bool = True) -> None:
        """Every service SERVING, the bundled packs registered, a worker proven by a core.noop run."""
        deadline = time.monotonic() + timeout
        settings = self.client_settings()
        await asyncio.gather(
            *(
                wait_answering(child, deadline, alive=self.check_alive)
                if child.name == CONSOLE[0]
                else wait_serving(child, deadline, settings, alive=self.check_alive)
                for child in self.children
            )
        )
        async with self.client() as client:
            if register_packs:
                await self._retrying(deadline, "registering the bundled packs", lambda: register_bundled_packs(client))
            await self._retrying(deadline, "running core.noop on the worker", lambda: prove_worker(client))

    async def _retrying(self, deadline: float, what: str, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            self.check_alive()
            remaining = deadline - time.monotonic()
            try:
                await asyncio.wait_for(step(), timeout=max(remaining, 0.1))
                return
            except (TimeoutError, CliError) as err:
                if time.monotonic() > deadline:
                    raise LaunchError(f"{what} did not succeed in time: {err or 'timed out'}") from err
            await asyncio.sleep(0.2)

    def stop(self, grace: float | None = None, *, report: Callable[[str], None] | None = None) -> dict[str, float]:
        """Stops the worker, then the other services; returns how long each took (seconds).

        The worker stops alone, while every other service is up, so each result it sends is
        stored and nothing it ran is left `running`. It gets the time its drain may take
        (`ATTUNE_SHUTDOWN_GRACE` for running actions, `ATTUNE_KILL_GRACE` to cancel the rest,
        `ATTUNE_SHUTDOWN_GRACE` for the completion service to acknowledge their results) plus
        `grace`, then SIGKILL. Then the others together, each given `grace` (default
        `ATTUNE_SHUTDOWN_GRACE` + 2 s): every hand-off between them is durable (an outbox row,
        re-sent until acknowledged, ignored when it arrives twice), so no order loses anything,
        and together they stop in the time of the slowest. `report` is told what is stopping."""
        settings = Settings.from_env(self.plan.child_env())
        grace = settings.shutdown_grace + 2.0 if grace is None else grace
        running = {c.name: c.process for c in self.children if c.process.poll() is None}
        took: dict[str, float] = {}
        if "worker" in running:
            if report is not None:
                report(
                    f"stopping the worker: no new work; running actions get {settings.shutdown_grace:g}s "
                    "(ATTUNE_SHUTDOWN_GRACE), then are cancelled and reported"
                )
            worker_time = 2 * settings.shutdown_grace + settings.kill_grace + grace
            took.update(_stop_processes({"worker": running.pop("worker")}, worker_time))
        if running:
            if report is not None:
                report("stopping " + ", ".join(running))
            took.update(_stop_processes(running, grace))
        return took

    def pids(self) -> dict[str, int]:
        """Each service's process id."""
        return {child.name: child.process.pid for child in self.children}


def _stop_processes(processes: Mapping[str, subprocess.Popen[bytes]], timeout: float) -> dict[str, float]:
    """SIGTERM to each, up to `timeout` seconds to exit, then SIGKILL; returns the seconds each took."""
    began = time.monotonic()
    for process in processes.values():
        process.send_signal(signal.SIGTERM)
    took: dict[str, float] = {}
    while True:
        now = time.monotonic()
        for name, process in processes.items():
            if name in took:
                continue
            if process.poll() is not None:
                took[name] = now - began
            elif now - began > timeout:
                process.kill()
                process.wait()
                took[name] = time.monotonic() - began
        if len(took) == len(processes):
            return took
        time.sleep(_STOP_POLL_S)


@functools.cache
def _dying_with_us() -> tuple[list[str], Callable[[], None] | None]:
    """What makes a service die with this process, however it ends: PR_SET_PDEATHSIG (SIGKILL,
    like its parent's death), set in the child by util-linux `setpriv` before it execs the
    service (an argv prefix); on a host without setpriv (or one older than util-linux 2.33), by
    prctl in the forked child (a preexec_fn: CPython then forks instead of vfork, which only
    costs at these four spawns)."""
    setpriv = shutil.which("setpriv")
    if setpriv and "--pdeathsig" in subprocess.run([setpriv, "--help"], capture_output=True, text=True).stdout:
        return [setpriv, "--pdeathsig=KILL", "--"], None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it

    def set_pdeathsig() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return [], set_pdeathsig


async def wait_serving(
    child: ServiceProcess, deadline: float, settings: Settings, *, alive: Callable[[], None]
) -> None:
    """Polls `child`'s grpc.health.v1 until SERVING. `alive` raises LaunchError when a process
    that matters has exited; LaunchError too once `deadline` (time.monotonic()) passes."""
    channel = open_channel(child.address, settings)
    stub = health_pb2_grpc.HealthStub(channel)
    last = "no answer"
    try:
        while True:
            alive()
            try:
                # types-grpcio-health-checking's HealthStub lists no methods; Check answers a HealthCheckResponse.
                response = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)  # type: ignore[attr-defined]
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            except grpc.RpcError as err:
                last = f"{err.code().name}: {err.details()}"
            if time.monotonic() > deadline:
                raise LaunchError(f"{child.name} at {child.address} is not SERVING ({last}); see {child.log_path}")
            await asyncio.sleep(0.1)
    finally:
        await channel.close()


async def wait_answering(child: ServiceProcess, deadline: float, *, alive: Callable[[], None]) -> None:
    """Polls the console's GET /healthz until it answers 200; LaunchError as `wait_serving`."""
    url = f"http://{child.address}/healthz"
    while True:
        alive()
        if await asyncio.to_thread(_http_ok, url):
            return
        if time.monotonic() > deadline:
            raise LaunchError(f"{child.name} at http://{child.address}/ does not answer; see {child.log_path}")
        await asyncio.sleep(0.1)


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1.0) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def worker_env(env: Mapping[str, str]) -> dict[str, str]:
    """A worker's environment: the services' without the platform's credentials, which it never
    uses and an action must not find (docs/operations.md, What an action can see)."""
    return {name: value for name, value in env.items() if name not in WORKER_WITHHELD_VARIABLES}


async def register_bundled_packs(client: Client) -> None:
    """Uploads the bundled ``core`` and ``examples`` packs."""
    from attune_services.cli.cmd_pack import upload_pack

    for name in BUNDLED_PACKS:
        await upload_pack(client, bundled_pack_path(name))


async def prove_worker(client: Client) -> None:
    """Runs one core.noop to its end: proof that a worker is connected and results flow."""
    from attune_services.cli.cmd_run import request_execution
    from attune_services.cli.output import state_of
    from attune_services.cli.watching import wait_until_terminal

    execution = await request_execution(client, "core.noop", {})
    final = await wait_until_terminal(client, execution.id)
    state = state_of(final.execution)
    if state != ExecutionState.SUCCEEDED:
        raise CliError(f"core.noop ended {state}: {final.execution.error}")


def _safe_url(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"
    return url
