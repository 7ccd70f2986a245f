"""Integration fixtures: one shared cluster per store for the whole session, and fresh clusters
for tests that kill or restart services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster, secure_overrides
from tests.support.databases import create_postgres_database, create_sqlite_database, drop_postgres_database


def _database(kind: str, folder: Path) -> str:
    return create_postgres_database() if kind == "postgres" else create_sqlite_database(folder)


@pytest.fixture(scope="session", params=["postgres", "sqlite"])
async def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """A running cluster (all services + one worker, bundled packs registered), shared per store.

    It runs as `attune up` does by default: TLS, mutual TLS between the services, and every call
    authorized (`secure_overrides`); the tests call it as the CLI with the admin token."""
    workdir = tmp_path_factory.mktemp(f"cluster-{request.param}")
    url = _database(request.param, workdir)
    c = Cluster(url, workdir, **secure_overrides(workdir))
    try:
        await c.start(workers=1)
        await c.register_bundled_packs()
        yield c
    finally:
        await c.stop()
        if request.param == "postgres":
            drop_postgres_database(url)


ClusterFactory = Callable[..., Awaitable[Cluster]]


@pytest.fixture(params=["postgres", "sqlite"])
async def fresh_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ClusterFactory]:
    """A factory for a private cluster (not started) on a fresh database of each store."""
    made: list[tuple[Cluster, str]] = []

    async def make(**overrides: str) -> Cluster:
        workdir = tmp_path / f"cluster-{uuid.uuid4().hex[:6]}"
        url = _database(request.param, workdir if request.param == "sqlite" else tmp_path)
        c = Cluster(url, workdir, **overrides)
        made.append((c, url))
        return c

    yield make
    for c, url in made:
        await c.stop()
        if request.param == "postgres":
            drop_postgres_database(url)
