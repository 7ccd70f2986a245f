"""Fixtures for scheduler tests: a running cluster (scheduler, completion, fake coordinator) per
test, on PostgreSQL and on SQLite (`database_url` from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.scheduler.harness import Cluster, start_cluster


@pytest.fixture
async def cluster(database_url: str) -> AsyncIterator[Cluster]:
    """The scheduler with its peers, stopped after the test."""
    running = await start_cluster(database_url)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def core(cluster: Cluster) -> Cluster:
    """A cluster with the bundled core pack registered."""
    await cluster.register_bundled("core")
    return cluster
