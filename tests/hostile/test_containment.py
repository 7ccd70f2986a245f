"""No process of an action outlives its run, and no service outlives `attune up` (issue #13):
a grandchild in a session of its own and a double-forked daemon are gone after a cancel, after a
timeout, and after the worker stops or is SIGKILLed; `attune up` SIGKILLed takes every service (and their
actions) with it, and the next `attune up` starts on the same ports."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import psutil
import pytest

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_from_proto
from attune_services.worker.runtimes import ContainmentError, open_containment
from tests.cli.e2e import attune
from tests.cli.test_up import port_flags, start_up, up_env
from tests.integration.cluster import Cluster, ClusterFactory
from tests.support.polling import eventually
from tests.worker.processes import gone, written

pytestmark = pytest.mark.integration

PACK = Path(__file__).parent / "packs" / "contain"
PROCESSES = ("leader", "setsid", "daemon")  # the pid files contain.detach writes


@pytest.fixture
def pid_dir() -> Iterator[Path]:
    """Where contain.detach writes its pids: open to the action user of a root worker."""
    folder = Path(tempfile.mkdtemp(prefix="attune-contain-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


async def detached(folder: Path) -> dict[str, int]:
    """The pids of contain.detach's script, its setsid grandchild and its daemon, all running."""
    pids: dict[str, int] = {}
    for name in PROCESSES:
        path = folder / f"{name}.pid"
        pids[name] = int(await eventually(partial(written, path), within=15, what=str(path)))
    assert not [name for name, pid in pids.items() if gone(pid)]
    return pids


async def all_gone(pids: dict[str, int], within: float = 5.0) -> None:
    def left() -> dict[str, int]:
        return {name: pid for name, pid in pids.items() if not gone(pid)}

    await eventually(lambda: not left(), within=within, what=lambda: f"{left()} to end")


async def test_cancel_ends_every_process_of_the_action(cluster: Cluster, pid_dir: Path) -> None:
    await cluster.register_pack(PACK)
    execution = await cluster.request("contain.detach", {"dir": str(pid_dir)})
    pids = await detached(pid_dir)
    await cluster.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=execution.id))
    reply = await cluster.wait_terminal(execution.id, timeout=15)
    assert execution_state_from_proto(reply.execution.state) == "cancelled"
    await all_gone(pids)


async def test_timeout_ends_every_process_of_the_action(cluster: Cluster, pid_dir: Path) -> None:
    await cluster.register_pack(PACK)
    execution = await cluster.request("contain.detach", {"dir": str(pid_dir)}, timeout_seconds=2.5)
    pids = await detached(pid_dir)
    reply = await cluster.wait_terminal(execution.id, timeout=15)
    assert execution_state_from_proto(reply.execution.state) == "timeout"
    await all_gone(pids)


def _cgroups_here() -> bool:
    try:
        open_containment("cgroup").close()
    except ContainmentError:
        return False
    return True


_WITHOUT_CGROUP = "without a cgroup only the action's own process dies with a SIGKILLed worker (docs/operations.md)"


@pytest.mark.parametrize("fresh_cluster", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "how", ["SIGTERM", pytest.param("SIGKILL", marks=pytest.mark.skipif(not _cgroups_here(), reason=_WITHOUT_CGROUP))]
)
async def test_the_worker_ending_ends_every_process_of_its_actions(
    fresh_cluster: ClusterFactory, pid_dir: Path, how: str
) -> None:
    cluster = await fresh_cluster(ATTUNE_SHUTDOWN_GRACE="0.5")  # a stopping worker cancels at once
    await cluster.start(workers=1)
    await cluster.register_pack(PACK)
    await cluster.request("contain.detach", {"dir": str(pid_dir)})
    pids = await detached(pid_dir)
    if how == "SIGTERM":
        assert cluster.terminate("worker:worker-1") == 0
    else:
        cluster.kill("worker:worker-1")  # the worker does nothing more
    await all_gone(pids)


async def test_a_killed_attune_up_leaves_nothing_running(tmp_path: Path, pid_dir: Path) -> None:
    env = up_env(tmp_path)
    flags = [*port_flags(), "--insecure"]
    up, shown = await start_up(*flags, env=env)
    try:
        cli = {**env, "ATTUNE_ADDRESS": shown[-1].rsplit(" ", 1)[1]}
        registered = await attune("pack", "register", str(PACK), env=cli)
        assert registered.code == 0, registered.stderr
        ran = await attune("run", "contain.detach", "--params-json", json.dumps({"dir": str(pid_dir)}), env=cli)
        assert ran.code == 0, ran.stderr
        pids = await detached(pid_dir)
        # The four services, the worker's watchdog, the action's script and what it started.
        pids.update({f"{p.name()} {p.pid}": p.pid for p in psutil.Process(up.pid).children(recursive=True)})
        up.kill()
        await up.wait()
    finally:
        if up.returncode is None:
            up.kill()
            await up.wait()
    await all_gone(pids, within=10.0)

    again, _ = await start_up(*flags, env=env)  # same ports, same home
    again.send_signal(signal.SIGINT)
    async with asyncio.timeout(30):
        assert await again.wait() == 0
