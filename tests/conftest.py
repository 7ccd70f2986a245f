"""Fixtures shared by every test package: real databases on both stores, TLS material."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from attune.security.certificates import init_material
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
