"""Helpers for the error and limit catalogue: a call's refusal checked for leaks, its field
violations, the cluster still healthy, and counts of what the cluster's database holds."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attune.execution.v1 import execution_pb2
from attune.grpcutil.errors import violations_of
from attune.storage import Database
from tests.integration.cluster import Cluster

# What no answer to a client may contain: a traceback, SQL, a driver's or Python's internals.
LEAKS = re.compile(r"Traceback|SELECT |INSERT |sqlalche|asyncpg|aiosqlite|Error:|Exception|<class|\[SQL")


async def refusal(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error a call ends with (it must fail), its message free of internals."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    err = caught.value
    assert not LEAKS.search(err.details() or ""), err.details()
    return err


def fields(err: grpc.aio.AioRpcError) -> list[str]:
    """The fields of the violations the error carries."""
    return [v.field for v in violations_of(err)]


async def assert_serving(cluster: Cluster) -> None:
    """The scheduler says SERVING and answers a query that reads the database."""
    stub = health_pb2_grpc.HealthStub(cluster.channel)
    # types-grpcio-health-checking's HealthStub lists no methods; Check answers a HealthCheckResponse.
    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)  # type: ignore[attr-defined]
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    await cluster.executions.ListExecutions(execution_pb2.ListExecutionsRequest(page_size=1), timeout=5)


async def count(db: Database, table: sa.Table, where: Any = None) -> int:
    """How many rows of `table` match `where` (all without it)."""
    query = sa.select(sa.func.count()).select_from(table)
    async with db.read() as conn:
        return int((await conn.execute(query if where is None else query.where(where))).scalar_one())
