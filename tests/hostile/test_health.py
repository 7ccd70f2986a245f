"""Health tells the truth (issue #13): a service with a database is NOT_SERVING while that
database is unreachable or not migrated to the code's revision, says why in its log (once per
interval, not once per request), answers UNAVAILABLE meanwhile, and is SERVING again by itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attune.config import Settings
from attune.execution.v1 import execution_pb2, execution_pb2_grpc
from attune.grpcutil.channel import open_channel
from attune.grpcutil.server import ServerHandle, ServiceApp, start_server, stop_server
from attune.ids import new_id
from attune.storage.migrate import alembic_config, upgrade
from attune.storage.readiness import code_revision
from attune_services.cli.launcher import free_port
from attune_services.completion.app import CompletionApp
from attune_services.scheduler.app import SchedulerApp
from tests.cli.e2e import attune
from tests.hostile.errortools import refusal
from tests.integration.cluster import SERVICES, Cluster, ClusterFactory
from tests.support.databases import _admin
from tests.support.polling import eventually

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def health(address: str, settings: Settings) -> int:
    """The status a service answers (UNKNOWN when it does not answer)."""
    async with open_channel(address, settings) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            # types-grpcio-health-checking's HealthStub lists no methods; Check answers a HealthCheckResponse.
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)  # type: ignore[attr-defined]
        except grpc.aio.AioRpcError:
            return health_pb2.HealthCheckResponse.UNKNOWN
    status: int = reply.status
    return status


async def migrate_up(url: str, revision: str = "head") -> None:
    """Upgrades the database's schema to `revision`, as an operator would."""
    await asyncio.to_thread(upgrade, url, revision)


async def migrate_down(url: str, revision: str) -> None:
    """Downgrades the database's schema to `revision` ("base": no schema at all)."""
    await asyncio.to_thread(command.downgrade, alembic_config(url), revision)


def test_the_code_revision_is_the_head_of_the_migrations() -> None:
    # Read from the migration files without Alembic; it must agree with Alembic.
    assert code_revision() == ScriptDirectory.from_config(alembic_config("sqlite:///:memory:")).get_current_head()


class InProcess:
    """The scheduler and the completion service in this process, on one database."""

    def __init__(self, database_url: str) -> None:
        self.settings = Settings(
            database_url=database_url,
            scheduler_address=f"127.0.0.1:{free_port()}",
            completion_address=f"127.0.0.1:{free_port()}",
            coordinator_address=f"127.0.0.1:{free_port()}",
            health_check_interval=0.1,
            log_repeat_interval=60.0,
            shutdown_grace=1.0,
        )
        self.running: list[tuple[ServiceApp, ServerHandle]] = []

    async def start(self) -> None:
        completion = CompletionApp(self.settings)
        self.running.append((completion, await self._serve(completion, self.settings.completion_address)))
        scheduler = SchedulerApp(self.settings)
        self.running.append((scheduler, await self._serve(scheduler, self.settings.scheduler_address)))

    async def _serve(self, app: ServiceApp, address: str) -> ServerHandle:
        return await start_server(app, address=address, settings=self.settings)

    @property
    def addresses(self) -> list[str]:
        return [self.settings.completion_address, self.settings.scheduler_address]

    async def statuses(self) -> set[int]:
        return {await health(address, self.settings) for address in self.addresses}

    async def stop(self) -> None:
        for app, handle in reversed(self.running):
            await stop_server(app, handle, grace=0.5)


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[InProcess]:
    running = InProcess(database_url)
    await migrate_down(database_url, "base")  # a database no migration has touched
    await running.start()
    yield running
    await running.stop()


async def test_a_service_is_serving_only_on_a_database_migrated_to_its_revision(
    services: InProcess, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="attune.grpcutil.server")
    assert await services.statuses() == {NOT_SERVING}  # from the first answer on: the check ran at start
    started = [r.getMessage() for r in caplog.get_records("setup") if r.name == "attune.grpcutil.server"]
    reason = "NOT_SERVING: the database is not migrated: run `python -m attune.storage.migrate upgrade`"
    assert len([m for m in started if m.startswith(reason)]) == len(services.addresses), started
    async with open_channel(services.settings.scheduler_address, services.settings) as channel:
        executions = execution_pb2_grpc.ExecutionServiceStub(channel)
        err = await refusal(executions.GetExecution(execution_pb2.GetExecutionRequest(id=new_id())))
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        address, env = services.settings.scheduler_address, {"ATTUNE_HOME": "/nonexistent"}
        ready = await attune("health", address, env=env)
        assert ready.code == 1 and "is NOT_SERVING" in ready.stderr and "Traceback" not in ready.stderr
        live = await attune("health", "--live", address, env=env)  # alive: a restart would not help
        assert (live.code, live.stdout.strip()) == (0, "NOT_SERVING")

        previous = f"{int(code_revision()) - 1:04d}"
        await migrate_up(database_url, previous)
        await eventually(lambda: f"migrated to revision {previous}, this code needs {code_revision()}" in caplog.text)
        assert await services.statuses() == {NOT_SERVING}

        await migrate_up(database_url)
        await eventually(_all(services, SERVING), within=5, what="SERVING again once migrated")
        assert "SERVING again: the database is reachable and migrated" in caplog.text
        err = await refusal(executions.GetExecution(execution_pb2.GetExecutionRequest(id=new_id())))
        assert err.code() == grpc.StatusCode.NOT_FOUND  # the database answers again

        await migrate_down(database_url, previous)  # and back: a downgrade takes it out again
        await eventually(_all(services, NOT_SERVING), within=5, what="NOT_SERVING once downgraded")


def _all(services: InProcess, status: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await services.statuses() == {status}

    return check


# PostgreSQL only: on SQLite the unmigrated database (above) stands for an outage.
@pytest.mark.parametrize("fresh_cluster", ["postgres"], indirect=True)
async def test_a_database_outage_is_unavailable_and_not_serving_then_heals(
    fresh_cluster: ClusterFactory, tmp_path: Path
) -> None:
    """PostgreSQL closed to connections and every session ended: the services answer UNAVAILABLE
    and say NOT_SERVING, log the outage once rather than per request, and recover by themselves."""
    cluster = await fresh_cluster(ATTUNE_HEALTH_CHECK_INTERVAL="0.2", ATTUNE_LOG_REPEAT_INTERVAL="60")
    for name in SERVICES:
        await cluster.start_service(name)
    name = cluster.database_url.rsplit("/", 1)[1]
    logs_before = {service: _log_size(cluster.workdir, service) for service in SERVICES}
    await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    try:
        await _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        requests = [
            cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=new_id()), timeout=10)
            for _ in range(100)
        ]
        errors = [await refusal(call) for call in requests]
        assert {err.code() for err in errors} == {grpc.StatusCode.UNAVAILABLE}
        assert {err.details() for err in errors} == {"the database is unavailable; retry shortly"}
        for service in SERVICES:
            await eventually(_is(cluster, service, NOT_SERVING), within=5, what=f"{service} NOT_SERVING")
        outcome = await attune("execution", "get", new_id(), env=cluster.cli_env())
        assert outcome.code == 1 and "Traceback" not in outcome.stderr
        assert "is unavailable: the database is unavailable; retry shortly" in outcome.stderr
    finally:
        await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    for service in SERVICES:
        await eventually(_is(cluster, service, SERVING), within=10, what=f"{service} SERVING again")
    err = await refusal(cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=new_id())))
    assert err.code() == grpc.StatusCode.NOT_FOUND

    scheduler = _lines_since(cluster.workdir, "scheduler", logs_before["scheduler"])
    answered = [line for line in scheduler if line.get("kind") == "database unavailable"]
    assert 1 <= len(answered) <= 2, answered  # 100 failed requests, one line (the interval is 60 s)
    assert not [line for line in scheduler if "exc" in line], "no traceback for an outage"
    for service in SERVICES:
        messages = [line["msg"] for line in _lines_since(cluster.workdir, service, logs_before[service])]
        assert any(m.startswith("NOT_SERVING: the database is unreachable") for m in messages), (service, messages)
        assert "SERVING again: the database is reachable and migrated" in messages, (service, messages)


def _is(cluster: Cluster, service: str, status: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await health(cluster.addresses[service], cluster.client_settings) == status

    return check


def _log_size(workdir: Path, service: str) -> int:
    path = workdir / f"{service}.log"
    return path.stat().st_size if path.exists() else 0


def _lines_since(workdir: Path, service: str, offset: int) -> list[dict[str, Any]]:
    with open(workdir / f"{service}.log", "rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
