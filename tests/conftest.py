"""Fixtures shared by every test package: real databases on both stores, TLS material, and the
integration clusters (one shared cluster per store for the whole session, and fresh clusters for
tests that kill or restart services)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from attune.security.certificates import init_material
from tests.integration.cluster import Cluster, ClusterFactory, secure_overrides
from tests.support.databases import create_postgres_database, create_sqlite_database, drop_postgres_database


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database: once on PostgreSQL, once on SQLite."""
    if request.param == "postgres":
        url = create_postgres_database()
        yield url
        drop_postgres_database(url)
    else:
        yield create_sqlite_database(tmp_path)


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TLS material from `attune tls init`: an authority and a certificate per identity."""
    folder = tmp_path_factory.mktemp("tls")
    init_material(folder)
    return folder


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database."""
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh, migrated SQLite database."""
    return create_sqlite_database(tmp_path)


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
