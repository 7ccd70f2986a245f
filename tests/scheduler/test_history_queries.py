"""ListExecutions over a long history: every filter (top-level by default, states, action,
parent, requester, creation-time range) returns exactly the matching rows newest first across
pages, and on PostgreSQL each filter's first page is an index scan read backwards — no sort of
the matching rows."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from google.protobuf import timestamp_pb2

from attune.common.v1 import common_pb2
from attune.execution.v1 import execution_pb2
from attune.grpcutil.errors import InvalidArgument
from attune.storage import Database
from attune.storage.schema import executions
from attune_services.bench.history_seed import seed_history
from attune_services.scheduler.history import id_bound, list_page, listing_query

NOW = float(round(time.time()))  # top-level rows then sit on whole seconds (1,200 over 60 days)
DAY = 86400.0


def _stamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMicroseconds(round(seconds * 1e6))
    return stamp


@pytest.fixture
async def history(database_url: str) -> AsyncIterator[tuple[Database, list[dict[str, Any]]]]:
    """A database holding 1,200 executions over 60 days, and those rows."""
    db = Database(database_url)
    await seed_history(db, 1200, now=NOW)
    everything = listing_query(execution_pb2.ListExecutionsRequest(include_children=True), after="", limit=5000)
    async with db.read() as conn:
        rows = [dict(r) for r in (await conn.execute(everything)).mappings()]
    try:
        yield db, rows
    finally:
        await db.close()


async def _all_pages(db: Database, request: execution_pb2.ListExecutionsRequest, size: int) -> list[str]:
    ids: list[str] = []
    while True:
        page, token = await list_page(db, request, size)
        ids += [r["id"] for r in page]
        if not token:
            return ids
        request.page_token = token


def _cases(rows: list[dict[str, Any]]) -> list[tuple[execution_pb2.ListExecutionsRequest, list[str]]]:
    parent = next(r["parent_id"] for r in rows if r["parent_id"] is not None)
    since, until = NOW - 20 * DAY - 1000.5, NOW - 10 * DAY + 1000.5  # between rows
    newest = sorted(rows, key=lambda r: r["id"], reverse=True)

    def ids(keep: Any, *, top_level: bool = True) -> list[str]:
        return [r["id"] for r in newest if keep(r) and (r["parent_id"] is None or not top_level)]

    failed, cancelled = common_pb2.EXECUTION_STATE_FAILED, common_pb2.EXECUTION_STATE_CANCELLED
    return [
        (execution_pb2.ListExecutionsRequest(), ids(lambda r: True)),
        (execution_pb2.ListExecutionsRequest(include_children=True), ids(lambda r: True, top_level=False)),
        (execution_pb2.ListExecutionsRequest(state=failed), ids(lambda r: r["state"] == "failed")),
        (
            execution_pb2.ListExecutionsRequest(states=[failed, cancelled], include_children=True),
            ids(lambda r: r["state"] in ("failed", "cancelled"), top_level=False),
        ),
        (
            execution_pb2.ListExecutionsRequest(state=cancelled, states=[failed]),
            ids(lambda r: r["state"] in ("failed", "cancelled")),
        ),
        (execution_pb2.ListExecutionsRequest(action_ref="core.echo"), ids(lambda r: r["action_ref"] == "core.echo")),
        (
            execution_pb2.ListExecutionsRequest(parent_id=parent),
            ids(lambda r: r["parent_id"] == parent, top_level=False),
        ),
        (
            execution_pb2.ListExecutionsRequest(requested_by="ops", include_children=True),
            ids(lambda r: r["requested_by"] == "ops", top_level=False),
        ),
        (
            execution_pb2.ListExecutionsRequest(created_after=_stamp(since), created_before=_stamp(until)),
            ids(lambda r: since <= r["created_at"] < until),
        ),
        (
            execution_pb2.ListExecutionsRequest(
                state=common_pb2.EXECUTION_STATE_SUCCEEDED, created_after=_stamp(since)
            ),
            ids(lambda r: r["state"] == "succeeded" and r["created_at"] >= since),
        ),
    ]


async def test_each_filter_pages_through_exactly_its_rows_newest_first(
    history: tuple[Database, list[dict[str, Any]]],
) -> None:
    db, rows = history
    assert len(rows) == 1200
    # A requester of some rows, children among them (the seed has "admin" for top-level rows).
    ops = {r["id"] for r in rows[::7]}
    async with db.write() as conn:
        await conn.execute(executions.update().where(executions.c.id.in_(ops)).values(requested_by="ops"))
    rows = [{**r, "requested_by": "ops" if r["id"] in ops else r["requested_by"]} for r in rows]
    assert any(r["parent_id"] for r in rows if r["id"] in ops)
    for request, expected in _cases(rows):
        assert expected, f"the seeded history has no row for {request}"
        assert await _all_pages(db, request, 97) == expected, f"filter {request}"


async def test_a_page_token_is_refused_with_other_filters(history: tuple[Database, list[dict[str, Any]]]) -> None:
    db, _ = history
    failed, cancelled = common_pb2.EXECUTION_STATE_FAILED, common_pb2.EXECUTION_STATE_CANCELLED
    first = execution_pb2.ListExecutionsRequest(states=[failed, cancelled])
    _, token = await list_page(db, first, 5)
    assert token
    same = execution_pb2.ListExecutionsRequest(states=[cancelled, failed, failed], page_token=token)
    assert (await list_page(db, same, 5))[0]  # the same filters, spelt otherwise
    for other in (
        execution_pb2.ListExecutionsRequest(states=[failed], page_token=token),
        execution_pb2.ListExecutionsRequest(states=[failed, cancelled], include_children=True, page_token=token),
        execution_pb2.ListExecutionsRequest(states=[failed, cancelled], requested_by="ops", page_token=token),
    ):
        with pytest.raises(InvalidArgument) as refused:
            await list_page(db, other, 5)
        assert [v.field for v in refused.value.violations] == ["page_token"]
    for bad, field in (
        (execution_pb2.ListExecutionsRequest(states=[common_pb2.EXECUTION_STATE_UNSPECIFIED]), "states[0]"),
        (execution_pb2.ListExecutionsRequest(states=[failed, cast(common_pb2.ExecutionState, 99)]), "states[1]"),
        (execution_pb2.ListExecutionsRequest(requested_by="a\0b"), "requested_by"),
    ):
        with pytest.raises(InvalidArgument) as refused:
            await list_page(db, bad, 5)
        assert [v.field for v in refused.value.violations] == [field]


async def test_time_range_bounds_are_exact_at_the_edges(history: tuple[Database, list[dict[str, Any]]]) -> None:
    db, rows = history
    row = [r for r in sorted(rows, key=lambda r: r["id"]) if r["parent_id"] is None][500]
    at = row["created_at"]
    # created_after is inclusive, created_before exclusive.
    around = execution_pb2.ListExecutionsRequest(created_after=_stamp(at), created_before=_stamp(at + 1e-6))
    page, _ = await list_page(db, around, 10)
    assert [r["id"] for r in page] == [row["id"]]
    before = execution_pb2.ListExecutionsRequest(created_after=_stamp(at - 1e-3), created_before=_stamp(at))
    page, _ = await list_page(db, before, 10)
    assert row["id"] not in [r["id"] for r in page]


def test_id_bound_orders_like_the_ids_it_bounds() -> None:
    assert id_bound(NOW) < id_bound(NOW + 0.001)
    assert id_bound(-5.0) == "0" * 32
    assert id_bound(1e30) == "f" * 12 + "0" * 20


async def test_each_first_page_is_an_index_scan_read_backwards_on_postgresql(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        await seed_history(db, 30_000, now=NOW)
        async with db.asyncpg() as raw:
            await raw.execute("ANALYZE executions")
            parent = await raw.fetchval("SELECT parent_id FROM executions WHERE parent_id IS NOT NULL LIMIT 1")
        # The planner may read a common value's rows along the primary key instead (51 of them
        # are near); a rare one's through its own index. Either way: read backwards, never sorted.
        # Top-level rows (the default) are read through their partial index (migration 0011).
        requests = [
            ("ix_executions_top_level_id", execution_pb2.ListExecutionsRequest()),
            ("", execution_pb2.ListExecutionsRequest(include_children=True)),
            ("", execution_pb2.ListExecutionsRequest(state=common_pb2.EXECUTION_STATE_FAILED)),
            ("", execution_pb2.ListExecutionsRequest(action_ref="core.local")),
            ("ix_executions_parent_id_id", execution_pb2.ListExecutionsRequest(parent_id=parent)),
            ("ix_executions_action_ref_id", execution_pb2.ListExecutionsRequest(action_ref="core.none")),
            ("ix_executions_state_id", execution_pb2.ListExecutionsRequest(state=common_pb2.EXECUTION_STATE_CANCELING)),
            (
                "ix_executions_top_level_id",
                execution_pb2.ListExecutionsRequest(
                    created_after=_stamp(NOW - 30 * DAY), created_before=_stamp(NOW - 29 * DAY)
                ),
            ),
        ]
        for index, request in requests:
            query = listing_query(request, after="", limit=51)
            compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
            async with db.read() as conn:
                plan = "\n".join((await conn.exec_driver_sql(f"EXPLAIN {compiled}")).scalars())
            assert f"Index Scan Backward using {index}" in plan, f"{request}:\n{plan}"
            assert "Sort" not in plan, f"{request}:\n{plan}"
        # Several states: one backward index scan per state, merged (a Merge Append, no Sort).
        several = execution_pb2.ListExecutionsRequest(
            states=[common_pb2.EXECUTION_STATE_FAILED, common_pb2.EXECUTION_STATE_CANCELING]
        )
        compiled = listing_query(several, after="", limit=51).compile(db.engine, compile_kwargs={"literal_binds": True})
        async with db.read() as conn:
            plan = "\n".join((await conn.exec_driver_sql(f"EXPLAIN {compiled}")).scalars())
        # (a common state's top-level rows may come through the top-level index instead)
        assert plan.count("Index Scan Backward using ") == 2, plan
        assert "Merge Append" in plan and "Sort  " not in plan and "Seq Scan" not in plan, plan
    finally:
        await db.close()
