"""The query behind ListExecutions: one page of the history, newest first, by id.

Pages are keyed by id (see `pages.py`), and every filter has an index ending with id
(attune.storage.schema, migration 0009), so a first page is an index range scan read backwards
however long the history is. A creation-time range is turned into an id range as well: an id
starts with the milliseconds of the moment it was made (attune.ids), read from the same clock as
created_at just before it, so the id bounds — widened by ID_CLOCK_SLACK_S on each side — never
exclude a row in the range, and created_at itself then decides exactly.

Without parent_id or include_children only top-level executions are listed (parent_id IS NULL):
both databases read that first page backwards through the partial index of top-level ids
(migration 0011), never past the children of recent fan-outs. Several states are one index range
scan each, merged: a union of per-state queries, each limited to the page, rather than
`state IN (...)`, which would sort every matching row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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


#: The longest token name a requester filter may give (the requested_by column's width).
MAX_REQUESTER_LENGTH = 255


def check_requester(request: execution_pb2.ListExecutionsRequest) -> None:
    """InvalidArgument naming `requested_by` for a name no token can have."""
    name = request.requested_by
    if len(name) > MAX_REQUESTER_LENGTH:
        raise invalid_field("requested_by", f"{len(name)} characters, more than the limit of {MAX_REQUESTER_LENGTH}")
    if "\0" in name:
        raise invalid_field("requested_by", "contains a NUL character, which no token name can hold")


def check_time_range(request: execution_pb2.ListExecutionsRequest) -> None:
    """InvalidArgument naming the field for a time bound outside the range a Timestamp may hold
    (years 1 to 9999)."""
    for field in ("created_after", "created_before"):
        if request.HasField(field):
            try:
                getattr(request, field).ToMicroseconds()
            except ValueError:
                raise invalid_field(field, "must be a valid timestamp (years 1 to 9999)") from None


def listed_states(request: execution_pb2.ListExecutionsRequest) -> list[str]:
    """The states the request filters by (`state` and `states` together), sorted, without
    repeats; InvalidArgument naming the `states` entry the contract does not define."""
    found = {execution_state_from_proto(request.state)} if request.state else set()
    for index, value in enumerate(request.states):
        try:
            state = execution_state_from_proto(value)
        except ValueError as err:
            raise invalid_field(f"states[{index}]", str(err)) from None
        if not state:
            raise invalid_field(f"states[{index}]", "must be a state, not EXECUTION_STATE_UNSPECIFIED")
        found.add(state)
    return sorted(str(state) for state in found)


def is_top_level_only(request: execution_pb2.ListExecutionsRequest) -> bool:
    """Whether the request lists top-level executions only (the default)."""
    return not request.parent_id and not request.include_children


def listing_filters(request: execution_pb2.ListExecutionsRequest) -> dict[str, str | int]:
    """The filters a page token is bound to. Those added later are there only when set, so a
    token issued before they existed stays valid for the same filters — except that a list with
    neither parent nor include_children now holds top-level executions only, which is
    another list (`top_level`): its old tokens are refused."""
    filters: dict[str, str | int] = {
        "state": request.state,
        "action_ref": request.action_ref,
        "parent_id": request.parent_id,
    }
    if request.HasField("created_after"):
        filters["created_after"] = request.created_after.ToMicroseconds()
    if request.HasField("created_before"):
        filters["created_before"] = request.created_before.ToMicroseconds()
    if request.states:
        filters["states"] = ",".join(listed_states(request))
    if request.requested_by:
        filters["requested_by"] = request.requested_by
    if is_top_level_only(request):
        filters["top_level"] = 1
    return filters


def listing_query(request: execution_pb2.ListExecutionsRequest, *, after: str, limit: int) -> sa.Select[Any]:
    """Up to `limit` executions matching the request's filters, with ids below `after` (when
    set), newest first."""
    states = listed_states(request)
    if len(states) > 1:
        # One range scan per state, each at most a page, merged (see the module's docstring).
        parts = [_filtered(request, after=after, limit=limit, states=[state]).subquery() for state in states]
        merged = sa.union_all(*(sa.select(part) for part in parts)).subquery()
        return sa.select(merged).order_by(merged.c.id.desc()).limit(limit)
    return _filtered(request, after=after, limit=limit, states=states)


def _filtered(
    request: execution_pb2.ListExecutionsRequest, *, after: str, limit: int, states: Sequence[str]
) -> sa.Select[Any]:
    """The query of `listing_query` for at most one state."""
    query = sa.select(executions).order_by(executions.c.id.desc()).limit(limit)
    if states:
        query = query.where(executions.c.state == states[0])
    if request.action_ref:
        query = query.where(executions.c.action_ref == request.action_ref)
    if request.parent_id:
        query = query.where(executions.c.parent_id == request.parent_id)
    elif not request.include_children:
        query = query.where(executions.c.parent_id.is_(None))
    if request.requested_by:
        query = query.where(executions.c.requested_by == request.requested_by)
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
    check_requester(request)
    filters = listing_filters(request)
    after = key_after(request.page_token, "executions", filters)
    async with db.read() as conn:
        rows = [dict(r) for r in (await conn.execute(listing_query(request, after=after, limit=size + 1))).mappings()]
    page = rows[:size]
    return page, page_token(page[-1]["id"] if len(rows) > size else "", "executions", filters)
