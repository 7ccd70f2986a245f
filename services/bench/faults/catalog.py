"""The faults ``attune bench faults`` injects, in order: each one's name, how many replicas of
each service it runs, whether it needs the benchmark's own PostgreSQL, and how it is injected.

An injection returns when the dependency it took away is available again (a killed service
restarted and SERVING, the database accepting connections); for a killed replica at once, since
its peers never went away. The first, ``none``, injects nothing: a baseline for the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from attune_services.bench.faults.deployment import Deployment
from attune_services.bench.faults.scratch_postgres import ScratchPostgres

#: How long a killed service stays down before it is started again.
DOWN_S = 1.0
#: How long the database stays stopped in the stop fault.
DB_STOP_S = 10.0
RESTART_TIMEOUT_S = 60.0
SERVICES = ("scheduler", "coordinator", "completion", "worker")


@dataclass
class Injected:
    """When the fault was over (Unix time) and the worker ids it SIGKILLed."""

    back_at: float
    killed_workers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FaultTarget:
    """What an injection acts on."""

    deployment: Deployment
    postgres: ScratchPostgres | None


Inject = Callable[[FaultTarget], Awaitable[Injected]]


@dataclass(frozen=True)
class Fault:
    """One fault of the benchmark."""

    name: str
    inject: Inject
    replicas: int = 1
    needs_own_database: bool = False
    #: The control run: no fault, so its recovery figures are what queueing behind the load
    #: alone costs; it is left out of the total.
    control: bool = False


def _killed_worker(deployment: Deployment, name: str) -> list[str]:
    return [deployment.worker_ids[name]] if name.startswith("worker") else []


def _kill_and_restart(service: str) -> Inject:
    async def inject(target: FaultTarget) -> Injected:
        name = f"{service}-1"
        killed = _killed_worker(target.deployment, name)
        target.deployment.kill(name)
        await asyncio.sleep(DOWN_S)
        await target.deployment.restart(name, RESTART_TIMEOUT_S)
        return Injected(time.time(), killed)

    return inject


def _kill_replica(service: str) -> Inject:
    async def inject(target: FaultTarget) -> Injected:
        name = f"{service}-1"
        killed = _killed_worker(target.deployment, name)
        target.deployment.kill(name)
        return Injected(time.time(), killed)

    return inject


def _own_postgres(target: FaultTarget) -> ScratchPostgres:
    if target.postgres is None:
        raise RuntimeError("a database fault ran without the benchmark's own PostgreSQL")
    return target.postgres


def _restart_database(mode: str) -> Inject:
    async def inject(target: FaultTarget) -> Injected:
        await asyncio.to_thread(_own_postgres(target).restart, mode)
        return Injected(time.time())

    return inject


async def _stop_database(target: FaultTarget) -> Injected:
    postgres = _own_postgres(target)
    await asyncio.to_thread(postgres.stop, "fast")
    await asyncio.sleep(DB_STOP_S)
    await asyncio.to_thread(postgres.start)
    return Injected(time.time())


async def _no_fault(target: FaultTarget) -> Injected:
    return Injected(time.time())


FAULTS: tuple[Fault, ...] = (
    Fault("none", _no_fault, control=True),
    *(Fault(f"kill-{service}", _kill_and_restart(service)) for service in SERVICES),
    Fault("db-restart-fast", _restart_database("fast"), needs_own_database=True),
    Fault("db-restart-immediate", _restart_database("immediate"), needs_own_database=True),
    Fault(f"db-stop-{DB_STOP_S:g}s", _stop_database, needs_own_database=True),
    *(Fault(f"replica-kill-{service}", _kill_replica(service), replicas=2) for service in SERVICES),
)
FAULT_NAMES = tuple(fault.name for fault in FAULTS)
