"""An execution's direct children as the API shows them: a summary by state and pages, oldest first.

A workflow may have 100,000 children: GetExecution and WatchExecution show their count by state
(`children_summary`) and one page of them, and ListExecutions continues from that page's token.
Their order is the one GetExecution always had, oldest first (ids are time-ordered,
attune.ids), so the token a page hands out says so (`pages.py`, oldest_first) and ListExecutions
gives a token like it to `next_page` here, not to its newest-first history query.

Rows are read with `bounded_columns`: a result larger than a view carries is cut to its preview
in the query, so a page of children with 3 MiB results reads kilobytes, not megabytes. A page
also ends early when its views would pass `budget` bytes (large parameters), so that a response
always fits in one message; the token then continues after the last child shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from google.protobuf.message import Message

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_to_proto
from attune.states import ExecutionState
from attune.storage import Database
from attune.storage.schema import executions
from attune_services.scheduler.pages import key_after, page_token
from attune_services.scheduler.views import (
    CHILD_RESULT_INLINE_BYTES,
    RESULT_PREVIEW_BYTES,
    ExecutionRow,
    execution_view,
)

#: Children in a page when the request names no page_size.
DEFAULT_CHILDREN_PAGE = 100
#: The listing a children token is bound to (with the parent's id), apart from ListExecutions' own.
CHILDREN_LISTING = "children"
# What a response holds besides the children's views (the execution itself is counted apart).
_ENVELOPE_BYTES = 64 * 1024


def result_size(db: Database) -> sa.ColumnElement[Any]:
    """The result's size in bytes, in SQL (NULL without a result)."""
    if db.is_sqlite:
        return sa.func.length(sa.cast(executions.c.result, sa.LargeBinary))
    return sa.func.octet_length(executions.c.result)


def bounded_columns(db: Database, inline_bytes: int) -> list[sa.ColumnElement[Any]]:
    """Every column of `executions`, with `result` whole only up to `inline_bytes` (else its
    first RESULT_PREVIEW_BYTES characters) and its size as `result_size` (views.result_fields)."""
    size = result_size(db)
    result = sa.case(
        (size <= inline_bytes, executions.c.result), else_=sa.func.substr(executions.c.result, 1, RESULT_PREVIEW_BYTES)
    )
    others: list[sa.ColumnElement[Any]] = [c for c in executions.c if c.name != "result"]
    return [*others, result.label("result"), size.label("result_size")]


async def read_execution(db: Database, execution_id: str, inline_bytes: int) -> dict[str, Any] | None:
    """One executions row read with `bounded_columns`, None when there is none."""
    query = sa.select(*bounded_columns(db, inline_bytes)).where(executions.c.id == execution_id)
    async with db.read() as conn:
        row = (await conn.execute(query)).mappings().first()
    return None if row is None else dict(row)


async def children_summary(db: Database, parent_id: str) -> execution_pb2.ChildrenSummary:
    """How many direct children `parent_id` has, by state (one indexed aggregate)."""
    async with db.read() as conn:
        counts = {state: int(count) for state, count in (await conn.execute(_counts_query(parent_id))).all()}
    return summary_of(counts)


def _counts_query(parent_id: str) -> sa.Select[Any]:
    c = executions.c
    return sa.select(c.state, sa.func.count()).where(c.parent_id == parent_id).group_by(c.state)


async def read_with_summary(
    db: Database, execution_id: str, inline_bytes: int
) -> tuple[dict[str, Any] | None, execution_pb2.ChildrenSummary]:
    """An executions row read with `bounded_columns` (None when there is none) and its children's
    summary: on PostgreSQL in one statement on the asyncpg connection, since every Get and every
    re-read of a watch takes this path (a plain execution's Get stays one round trip)."""
    if db.is_sqlite:
        row = await read_execution(db, execution_id, inline_bytes)
        return row, (await children_summary(db, execution_id) if row is not None else summary_of({}))
    async with db.asyncpg() as raw:
        record = await raw.fetchrow(_ROW_AND_COUNTS_PG, execution_id, inline_bytes, RESULT_PREVIEW_BYTES)
    if record is None:
        return None, summary_of({})
    row = dict(record)
    counted = row.pop("child_counts")  # the pool's connections decode json (attune.storage)
    counts: dict[str, int] = counted if isinstance(counted, dict) else json.loads(counted)
    return row, summary_of(counts)


def summary_of(counts: Mapping[str, int]) -> execution_pb2.ChildrenSummary:
    """A ChildrenSummary from counts by state name, in the order of the state machine."""
    order = {state.value: i for i, state in enumerate(ExecutionState)}
    by_state = [
        execution_pb2.StateCount(state=execution_state_to_proto(state), count=count)
        for state, count in sorted(counts.items(), key=lambda item: order.get(item[0], len(order)))
        if count
    ]
    return execution_pb2.ChildrenSummary(total=sum(counts.values()), by_state=by_state)


@dataclass(frozen=True)
class ChildrenPage:
    """One page of children as views, and the token of the next one ("" on the last)."""

    children: list[execution_pb2.Execution]
    next_page_token: str


def children_filters(parent_id: str) -> dict[str, str | int]:
    """The filters a children token is bound to: the parent, and nothing else."""
    return {"parent_id": parent_id}


async def children_page(db: Database, parent_id: str, *, size: int, after: str, budget: int) -> ChildrenPage:
    """Up to `size` children after id `after` (all from the first when ""), oldest first, their
    views together within `budget` bytes."""
    query = (
        sa.select(*bounded_columns(db, CHILD_RESULT_INLINE_BYTES))
        .where(executions.c.parent_id == parent_id)
        .order_by(executions.c.id)
        .limit(size + 1)
    )
    if after:
        query = query.where(executions.c.id > after)
    async with db.read() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return page_within(rows, parent_id, size=size, budget=budget)


def page_within(rows: Sequence[ExecutionRow], parent_id: str, *, size: int, budget: int) -> ChildrenPage:
    """The views of up to `size` of `rows` (read with one more row than a page, to know whether
    there is a next), stopping before the one that would pass `budget` bytes (at least one)."""
    views: list[execution_pb2.Execution] = []
    used = 0
    for row in rows[:size]:
        view = execution_view(row)
        used += view.ByteSize() + 8
        if views and used > budget:
            break
        views.append(view)
    more = len(views) < len(rows)
    last = views[-1].id if views and more else ""
    return ChildrenPage(views, page_token(last, CHILDREN_LISTING, children_filters(parent_id), oldest_first=True))


def children_budget(max_message_bytes: int, *taken: Message) -> int:
    """Bytes left for a page of children in a message that also carries `taken`."""
    return max(0, max_message_bytes - _ENVELOPE_BYTES - sum(m.ByteSize() for m in taken))


async def next_page(
    db: Database, request: execution_pb2.ListExecutionsRequest, *, size: int, max_message_bytes: int
) -> tuple[list[execution_pb2.Execution], str]:
    """ListExecutions given the token of a children page: the next page, oldest first. The token
    is bound to its parent and no other filter: the request must name the same parent and no
    other filter (InvalidArgument naming page_token otherwise)."""
    filters: dict[str, str | int] = {
        field.name: str(value) for field, value in request.ListFields() if field.name not in ("page_size", "page_token")
    }
    after = key_after(request.page_token, CHILDREN_LISTING, filters)
    page = await children_page(db, request.parent_id, size=size, after=after, budget=children_budget(max_message_bytes))
    return page.children, page.next_page_token


_ROW_AND_COUNTS_PG = (
    "SELECT "
    + ", ".join(f'"{c.name}"' for c in executions.c if c.name != "result")
    + ", CASE WHEN octet_length(result) <= $2 THEN result ELSE substr(result, 1, $3) END AS result"
    ", octet_length(result) AS result_size"
    ", (SELECT coalesce(json_object_agg(state, n), '{}') FROM"
    " (SELECT state, count(*) AS n FROM executions WHERE parent_id = $1 GROUP BY state) AS counted) AS child_counts"
    " FROM executions WHERE id = $1"
)
