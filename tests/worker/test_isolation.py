"""Actions cannot read the platform's credentials (docs/operations.md, What an action can see).

A real worker process (`python -m attune_services.worker`) is started the way a careless launcher
would start it: a database URL and a sealing key in its environment, a TLS key and an admin token
(mode 0600) in its ATTUNE_HOME. It runs, against a fake scheduler and completion service in this
process, an action that tries every way we know to those credentials and reports what it found.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.config import WORKER_WITHHELD_VARIABLES, Settings
from attune.grpcutil.server import RpcContext
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.internal.packs.v1 import packs_pb2, packs_pb2_grpc
from attune.internal.worker.v1 import worker_pb2, worker_pb2_grpc
from attune.registry.v1 import registry_pb2
from attune_services.cli.launcher import LaunchPlan, free_port, worker_env
from attune_services.worker.app import pack_cache_root
from attune_services.worker.runtimes import ActionProcess, ActionUser, RunRequest, action_user, detect_runtimes
from tests.support.fakes import FakeCompletionService
from tests.support.polling import eventually

IS_ROOT = os.geteuid() == 0
NOT_ROOT = "the worker is not root: actions run as its own user and can read what it can (documented as weaker)"
NOBODY = pwd.getpwnam("nobody") if IS_ROOT else None

CANARY_DATABASE_URL = "postgresql://attune:canary-db-password@db.invalid/attune"
CANARY_SECRET_KEY = base64.b64encode(b"canary-sealing-key-of-32-bytes!!").decode()
CANARY_TLS_KEY = "-----BEGIN PRIVATE KEY-----\ncanary-tls-key\n-----END PRIVATE KEY-----\n"
CANARY_TOKEN = "canary-admin-token"
CANARIES = ("canary-db-password", CANARY_SECRET_KEY, "canary-tls-key", CANARY_TOKEN)

#: What the README's "What an action receives" documents, and nothing else.
DOCUMENTED = {"PATH", "HOME", "LANG", "ATTUNE_EXECUTION_ID", "ATTUNE_ACTION_REF", "ATTUNE_PACK_DIR"}
DOCUMENTED_PREFIXES = ("ATTUNE_PARAM_", "ATTUNE_TRACEPARENT")

PROBE = """\
import json, os, sys
params = json.load(sys.stdin)
reads = {}
for path in params["paths"] + ["/proc/%d/environ" % os.getppid()]:
    try:
        with open(path, "rb") as f:
            reads[path] = "read:" + f.read().decode("utf-8", "replace")
    except OSError as err:
        reads[path] = "refused:" + type(err).__name__
home = os.environ.get("HOME", "")
print(json.dumps({
    "ppid": os.getppid(), "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "env": dict(os.environ), "reads": reads, "home_writable": os.access(home, os.W_OK),
}))
"""
PACK_FILES = {
    "pack.yaml": b"ref: probe\n",
    "actions/probe.py": PROBE.encode(),
    "actions/whoami.sh": b'printf \'{"uid": %s}\\n\' "$(id -u)"\n',
    "actions/whoami.js": b"console.log(JSON.stringify({ uid: process.getuid() }));\n",
    "actions/whoami.py": b'import json, os\nprint(json.dumps({"uid": os.getuid()}))\n',
}
DIGEST = "e" * 64


class FakeScheduler(worker_pb2_grpc.WorkerServiceServicer, packs_pb2_grpc.PackFilesServiceServicer):
    """Welcomes one worker, serves the probe pack, sends the assignments the test queues."""

    def __init__(self) -> None:
        self.hellos: list[worker_pb2.Hello] = []
        self.outbox: asyncio.Queue[worker_pb2.ConnectResponse] = asyncio.Queue()

    async def Connect(self, request_iterator: Any, context: RpcContext) -> AsyncIterator[Any]:
        first = await anext(request_iterator)
        self.hellos.append(first.hello)
        drain = asyncio.create_task(self._drain(request_iterator))
        try:
            yield worker_pb2.ConnectResponse(welcome=worker_pb2.Welcome(scheduler_id="fake"))
            while True:
                yield await self.outbox.get()
        finally:
            drain.cancel()

    async def _drain(self, request_iterator: Any) -> None:
        async for request in request_iterator:  # started, released, heartbeats: not the point here
            if request.WhichOneof("kind") == "logs":
                # Acknowledged as the scheduler does once stored: a worker holds a run's result, and
                # at shutdown its exit, until its output is acknowledged (or a timeout passes).
                last: dict[str, int] = {}
                for chunk in request.logs.chunks:
                    last[chunk.execution_id] = max(chunk.seq, last.get(chunk.execution_id, 0))
                acks = [worker_pb2.LogAck(execution_id=e, seq=seq) for e, seq in last.items()]
                self.outbox.put_nowait(worker_pb2.ConnectResponse(log_acks=worker_pb2.LogAcks(acks=acks)))

    async def GetPackFiles(self, request: Any, context: RpcContext) -> Any:
        return packs_pb2.GetPackFilesResponse(
            pack_ref="probe", files=[registry_pb2.PackFile(path=p, content=c) for p, c in PACK_FILES.items()]
        )

    def assign(self, execution_id: str, entry_point: str, runtime: str, parameters: dict[str, Any]) -> None:
        assignment = worker_pb2.Assignment(
            execution_id=execution_id,
            action_ref=f"probe.{execution_id}",
            runtime=runtime,
            entry_point=entry_point,
            pack_ref="probe",
            pack_digest=DIGEST,
            parameters_json=json.dumps(parameters).encode(),
            trace=common_pb2.TraceContext(traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        )
        self.outbox.put_nowait(worker_pb2.ConnectResponse(assignments=worker_pb2.Assignments(assignments=[assignment])))


class WorkerProcess:
    """The fakes in this process and one real worker process with planted credentials."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.scheduler = FakeScheduler()
        self.completion = FakeCompletionService()
        self.addresses = {name: f"127.0.0.1:{free_port()}" for name in ("scheduler", "completion", "worker")}
        self.servers: list[grpc.aio.Server] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.log = home.parent / f"{home.name}-worker.log"

    async def start(self) -> None:
        scheduler = grpc.aio.server()
        worker_pb2_grpc.add_WorkerServiceServicer_to_server(self.scheduler, scheduler)
        packs_pb2_grpc.add_PackFilesServiceServicer_to_server(self.scheduler, scheduler)
        completion = grpc.aio.server()
        completion_pb2_grpc.add_CompletionServiceServicer_to_server(self.completion, completion)
        for server, name in ((scheduler, "scheduler"), (completion, "completion")):
            assert server.add_insecure_port(self.addresses[name])
            await server.start()
            self.servers.append(server)
        env = {name: value for name, value in os.environ.items() if not name.startswith(("ATTUNE_", "OTEL_"))}
        env.update(
            ATTUNE_HOME=str(self.home),
            ATTUNE_SCHEDULER_ADDRESS=self.addresses["scheduler"],
            ATTUNE_COMPLETION_ADDRESS=self.addresses["completion"],
            ATTUNE_WORKER_ADDRESS=self.addresses["worker"],
            ATTUNE_WORKER_ID="isolation-worker",
            ATTUNE_HEARTBEAT_INTERVAL="0.2",
            ATTUNE_LOG_FORMAT="text",
            # What a launcher must not pass (it is the point of the test that one did):
            ATTUNE_DATABASE_URL=CANARY_DATABASE_URL,
            ATTUNE_SECRET_KEY=CANARY_SECRET_KEY,
        )
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "attune_services.worker"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        await eventually(lambda: self._hello(), within=30.0, what="the worker's Hello")

    def _hello(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the worker exited with {self.process.returncode}:\n{self.log.read_text()}")
        return bool(self.scheduler.hellos)

    async def run(self, execution_id: str, entry_point: str, runtime: str, **parameters: Any) -> dict[str, Any]:
        """Runs one action to its end; its result (which must be a success)."""
        self.scheduler.assign(execution_id, entry_point, runtime, parameters)
        result: completion_pb2.ExecutionResult = await eventually(
            lambda: self.completion.result_of(execution_id), within=20.0, what=f"the result of {execution_id}"
        )
        outcome: dict[str, Any] = json.loads(result.result_json)
        assert result.state == common_pb2.EXECUTION_STATE_SUCCEEDED, (result.error, outcome)
        return outcome

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for server in self.servers:
            await server.stop(None)


def plant_credentials(home: Path) -> list[Path]:
    """What `attune up` keeps in ATTUNE_HOME, 0600, in folders anyone may search (the files' own
    modes and the user switch have to keep them, not a locked parent)."""
    (home / "tls").mkdir(mode=0o755)
    files = {
        home / "tls" / "worker.key": CANARY_TLS_KEY,
        home / "tls" / "ca.key": CANARY_TLS_KEY,
        home / "admin.token": CANARY_TOKEN,
        home / "secret.key": CANARY_SECRET_KEY,
    }
    for path, text in files.items():
        path.write_text(text)
        path.chmod(0o600)
    return list(files)


@pytest.fixture
def home() -> Iterator[Path]:
    # Not tmp_path: pytest's base folder is 0700, which would hide everything from the action
    # user and prove nothing about the files' own protection.
    folder = Path(tempfile.mkdtemp(prefix="attune-isolation-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.with_name(f"{folder.name}-worker.log").unlink(missing_ok=True)


@pytest.fixture
async def worker(home: Path) -> AsyncIterator[WorkerProcess]:
    process = WorkerProcess(home)
    try:
        await process.start()
        yield process
    finally:
        await process.stop()


async def probe(worker: WorkerProcess, execution_id: str = "probe-1") -> dict[str, Any]:
    planted = plant_credentials(worker.home)
    assert worker.process is not None
    paths = [str(p) for p in planted] + [f"/proc/{worker.process.pid}/environ"]
    return await worker.run(execution_id, "actions/probe.py", "python", paths=paths)


async def test_the_action_environment_holds_nothing_of_the_worker(worker: WorkerProcess) -> None:
    report = await probe(worker)
    env: dict[str, str] = report["env"]
    extra = {n for n in env if n not in DOCUMENTED and not n.startswith(DOCUMENTED_PREFIXES)}
    assert extra == set(), f"variables beyond the documented ones: {sorted(extra)}"
    assert env["ATTUNE_PARAM_PATHS"]  # the probe's own (non-secret) parameter, as documented
    for canary in CANARIES:
        assert all(canary not in value for value in env.values())
    # HOME is a scratch folder of the run, not the worker's home or its ATTUNE_HOME.
    assert env["HOME"] != str(worker.home) and not env["HOME"].startswith(str(worker.home))
    assert report["home_writable"]
    assert not os.path.exists(env["HOME"]), "the run's HOME outlived the run"
    assert "is set in the worker's environment; the worker never uses it" in worker.log.read_text()


@pytest.mark.skipif(not IS_ROOT, reason=NOT_ROOT)
async def test_the_action_cannot_read_the_worker_credentials(worker: WorkerProcess) -> None:
    report = await probe(worker)
    assert NOBODY is not None
    assert (report["uid"], report["euid"], report["gid"]) == (NOBODY.pw_uid, NOBODY.pw_uid, NOBODY.pw_gid)
    assert set(report["groups"]) <= {NOBODY.pw_gid}, "supplementary groups were kept"
    reads: dict[str, str] = report["reads"]
    assert worker.process is not None
    assert report["ppid"] == worker.process.pid  # its parent is the worker: one environ to try
    assert len(reads) == 5  # four planted files and the worker's environ
    for path, what in reads.items():
        assert what.startswith("refused:"), f"the action read {path}: {what[:200]}"
        assert not any(canary in what for canary in CANARIES)


@pytest.mark.skipif(not IS_ROOT, reason=NOT_ROOT)
@pytest.mark.parametrize(
    ("runtime", "entry_point"),
    [("shell", "actions/whoami.sh"), ("python", "actions/whoami.py"), ("nodejs", "actions/whoami.js")],
)
async def test_every_runtime_runs_as_the_action_user(worker: WorkerProcess, runtime: str, entry_point: str) -> None:
    if runtime not in worker.scheduler.hellos[0].runtimes:
        pytest.skip(f"no {runtime} interpreter on this host")
    assert NOBODY is not None
    assert (await worker.run(f"whoami-{runtime}", entry_point, runtime))["uid"] == NOBODY.pw_uid


# --- the pieces, without a worker process --------------------------------------------------------


def test_launchers_give_the_worker_no_platform_credential(tmp_path: Path) -> None:
    plan = LaunchPlan.local(tmp_path, "postgresql://attune:pw@db/attune", ports={"scheduler": 0})
    services = plan.child_env()
    assert services["ATTUNE_DATABASE_URL"]  # the services get it ...
    assert not set(WORKER_WITHHELD_VARIABLES) & set(worker_env(services))  # ... the worker does not
    compose = Path(__file__).parents[2] / "deploy" / "docker-compose.yaml"
    import yaml

    worker = yaml.safe_load(compose.read_text())["services"]["worker"]
    assert not set(WORKER_WITHHELD_VARIABLES) & set(worker.get("environment") or {})


@pytest.mark.skipif(not IS_ROOT, reason="only root can switch users")
def test_an_unknown_or_root_action_user_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="ATTUNE_ACTION_USER='no-such-user-here': no such user on this host"):
        action_user("no-such-user-here")
    with pytest.raises(ValueError, match="is root"):
        action_user("root")
    numeric = action_user("65533")  # a uid without a passwd entry, as in many containers
    assert numeric is not None and (numeric.uid, numeric.gid) == (65533, 65533)
    env = {**os.environ, "ATTUNE_ACTION_USER": "no-such-user-here", "ATTUNE_HOME": tempfile.gettempdir()}
    worker = subprocess.run(
        [sys.executable, "-m", "attune_services.worker"], env=env, capture_output=True, text=True, timeout=30
    )
    assert worker.returncode == 2
    assert worker.stderr.startswith("attune-worker: ATTUNE_ACTION_USER='no-such-user-here': no such user")


def test_not_root_means_no_user_switch() -> None:
    assert (action_user("nobody") is None) == (not IS_ROOT)


@pytest.mark.skipif(not IS_ROOT, reason=NOT_ROOT)
def test_the_pack_cache_moves_where_the_action_user_can_reach_it(tmp_path: Path) -> None:
    user = action_user("nobody")
    locked = tmp_path / "home"  # under pytest's 0700 base folder: out of nobody's reach
    root, temporary = pack_cache_root(Settings(pack_cache_dir=str(locked / "packs")), user)
    try:
        assert temporary and user is not None and user.can_reach(root)
        assert not user.can_reach(locked / "packs")
    finally:
        shutil.rmtree(root)
    with tempfile.TemporaryDirectory() as reachable:
        Path(reachable).chmod(0o755)
        kept = Path(reachable) / "packs"
        assert pack_cache_root(Settings(pack_cache_dir=str(kept)), user) == (kept, False)


@pytest.fixture
def actions() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="attune-isolation-pack-"))
    folder.chmod(0o755)
    (folder / "actions").mkdir(mode=0o755)
    yield folder / "actions"
    shutil.rmtree(folder, ignore_errors=True)


def group_members(pgid: int) -> list[int]:
    """Processes of a process group still alive (zombies aside)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


@pytest.mark.skipif(not IS_ROOT, reason=NOT_ROOT)
@pytest.mark.parametrize("switch", ["setpriv", "popen"])
async def test_cancel_kills_the_action_user_process_group(actions: Path, switch: str) -> None:
    user = action_user("nobody")
    assert user is not None
    if switch == "popen":
        user = ActionUser(name=user.name, uid=user.uid, gid=user.gid, setpriv=None)
    elif user.setpriv is None:
        pytest.skip("setpriv is not installed")
    script = actions / "tree.sh"
    script.write_text("sleep 30 &\nsleep 30 &\nid -u > /dev/null\nwait\n")
    script.chmod(0o644)
    request = RunRequest(
        execution_id="tree",
        action_ref="probe.tree",
        runtime="shell",
        entry_point=script,
        working_dir=actions,
        parameters={},
        kill_grace_s=0.5,
        user=user,
    )
    process = ActionProcess(request, detect_runtimes(user))
    await process.start()
    assert process.pid is not None
    await eventually(lambda: len(group_members(process.pid or 0)) >= 3, what="the script and its two sleeps")
    owners = {Path(f"/proc/{pid}").stat().st_uid for pid in group_members(process.pid)}
    assert owners == {user.uid}
    process.cancel()
    outcome = await process.wait()
    assert outcome.state == "cancelled"
    await eventually(lambda: not group_members(process.pid or 0), what="no process left in the group")
