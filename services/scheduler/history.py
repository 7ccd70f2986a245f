"""The query behind ListExecutions: one page of the history, newest first, by id.

Pages are keyed by id (see `pages.py`), and every filter has an index ending with id
(attune.storage.schema, migration 0009), so a first page is an index range scan read backwards
however long the history is. A creation-time range is turned into an id range as well: an id
starts with the milliseconds of the moment it was made (attune.ids), read from the same clock as
created_at just before it, so the id bounds — widened by ID_CLOCK_SLACK_S on each side — never
exclude a row in the range, and created_at itself then decides exactly.
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_from_proto
from attune.grpcutil.errors import invalid_field
from attune.storage import Database
from attune.storage.schema import executions
from attune_services.scheduler.pages import key_after, page_token

#: How far apart an id's milliseconds and its row's created_at may be (both are read by the
#: scheduler within one insert; this is far more than a paused process takes between them).
ID_CLOCK_SLACK_S = 60.0
_ID_RANDOM_DIGITS = 20


def id_bound(seconds: float) -> str:
    """The smallest id that attune.ids.new_id could make at Unix time `seconds` (or later)."""
    millis = min(max(0, math.floor(seconds * 1000)), 16**12 - 1)
    return f"{millis:012x}" + "0" * _ID_RANDOM_DIGITS


def check_time_range(request: execution_pb2.ListExecutionsRequest) -> None:
    """InvalidArgument naming the field for a time bound outside the range a Timestamp may hold
    (years 1 to 9999)."""
    for field in ("created_after", "created_before"):
        if request.HasField(field):
            try:
                getattr(request, field).ToMicroseconds()
            except ValueError:
                raise invalid_field(field, "must be a valid timestamp (years 1 to 9999)") from None


def listing_filters(request: execution_pb2.ListExecutionsRequest) -> dict[str, str | int]:
    """The filters a page token is bound to. The time bounds are there only when set, so a
    token issued before they existed stays valid."""
    filters: dict[str, str | int] = {
        "state": request.state,
        "action_ref": request.action_ref,
        "parent_id": request.parent_id,
    }
    if request.HasField("created_after"):
        filters["created_after"] = request.created_after.ToMicroseconds()
    if request.HasField("created_before"):
        filters["created_before"] = request.created_before.ToMicroseconds()
    return filters


def listing_query(request: execution_pb2.ListExecutionsRequest, *, after: str, limit: int) -> sa.Select[Any]:
    """Up to `limit` executions matching the request's filters, with ids below `after` (when
    set), newest first."""
    query = sa.select(executions).order_by(executions.c.id.desc()).limit(limit)
    if request.state:
        query = query.where(executions.c.state == execution_state_from_proto(request.state))
    if request.action_ref:
        query = query.where(executions.c.action_ref == request.action_ref)
    if request.parent_id:
        query = query.where(executions.c.parent_id == request.parent_id)
    if request.HasField("created_after"):
        since = request.created_after.ToMicroseconds() / 1e6
        query = query.where(executions.c.created_at >= since, executions.c.id >= id_bound(since - ID_CLOCK_SLACK_S))
    if request.HasField("created_before"):
        until = request.created_before.ToMicroseconds() / 1e6
        query = query.where(executions.c.created_at < until, executions.c.id < id_bound(until + ID_CLOCK_SLACK_S))
    if after:
        query = query.where(executions.c.id < after)
    return query


async def list_page(
    db: Database, request: execution_pb2.ListExecutionsRequest, size: int
) -> tuple[list[dict[str, Any]], str]:
    """One page of at most `size` executions for the request, and the next page's token ("" on
    the last page); InvalidArgument for a page token issued for other filters."""
    check_time_range(request)
    filters = listing_filters(request)
    after = key_after(request.page_token, "executions", filters)
    async with db.read() as conn:
        rows = [dict(r) for r in (await conn.execute(listing_query(request, after=after, limit=size + 1))).mappings()]
    page = rows[:size]
    return page, page_token(page[-1]["id"] if len(rows) > size else "", "executions", filters)
