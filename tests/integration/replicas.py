"""Several replicas of every service against one database: for the replica tests and the fault
benchmark.

`start_replicas` starts `count` processes of each service on the cluster's database (named
"completion", "completion-2", …, each listening on its own port) and `workers` workers, and gives
every client the comma-separated list of a service's replicas as its address, as an operator
would (docs/operations.md, Replicas): the cluster's own client channel, the CLI environment, the
coordinators' and workers' channels to the schedulers, and so on. Killing one replica leaves the
others reachable through the same address.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from pathlib import Path

from attune_services.cli.launcher import free_port
from tests.integration.cluster import SERVICES, Cluster

#: The environment variable holding each service's address (a list, with replicas).
ADDRESS_VARIABLES = {
    "scheduler": ("ATTUNE_SCHEDULER_ADDRESS", "ATTUNE_ADDRESS"),
    "coordinator": ("ATTUNE_COORDINATOR_ADDRESS",),
    "completion": ("ATTUNE_COMPLETION_ADDRESS",),
}

#: The test pack whose action logs every process start (duplicate starts show as repeated lines).
STARTLOG_PACK = Path(__file__).parent / "packs" / "startlog"


def start_log() -> Path:
    """A fresh file startlog.sleep can append to: actions may run as another user
    (ATTUNE_ACTION_USER), so it lives in its own world-writable folder under the system's temp
    folder, not in a test's private tmp_path. The caller removes it."""
    folder = Path(tempfile.mkdtemp(prefix="attune-starts-"))
    folder.chmod(0o777)
    log = folder / "starts.log"
    log.touch()
    log.chmod(0o666)
    return log


def replica_name(service: str, index: int) -> str:
    """The process name of replica `index` (0-based) of `service`: the first keeps the plain name."""
    return service if index == 0 else f"{service}-{index + 1}"


async def start_replicas(cluster: Cluster, *, count: int | Mapping[str, int] = 2, workers: int = 2) -> dict[str, str]:
    """Starts `count` replicas of each service (or `count[service]`, 1 for a service it does not
    name), then `workers` workers ("worker-1", …), on a cluster that is not started yet; returns
    each service process's listen address by process name. The first replica of every service
    starts at once, as `attune up` starts its children, then the second of each, and so on (the
    fault benchmark's order: replicas started together on a fresh database race to create the
    bootstrap admin token), then the workers; every process is awaited SERVING."""
    counts = {s: count if isinstance(count, int) else count.get(s, 1) for s in SERVICES}
    listen = {replica_name(s, i): f"127.0.0.1:{free_port()}" for s in SERVICES for i in range(counts[s])}
    for service in SERVICES:
        joined = ",".join(listen[replica_name(service, i)] for i in range(counts[service]))
        cluster.addresses[service] = joined
        for variable in ADDRESS_VARIABLES[service]:
            cluster.env[variable] = joined
    for i in range(max(counts.values())):
        wave = {replica_name(s, i): s for s in SERVICES if i < counts[s]}
        for name, service in wave.items():
            cluster._spawn(name, service, {**cluster.env, "ATTUNE_LISTEN_ADDRESS": listen[name]})
        await asyncio.gather(*(cluster.wait_serving(listen[name], name) for name in wave))
    await asyncio.gather(*(cluster.start_worker(f"worker-{i + 1}") for i in range(workers)))
    return listen
