"""History options of ``attune execution``: the filters of ``list`` (``--state``, repeatable;
``--requested-by``; ``--include-children``; ``--since/--until``) and ``purge --older-than``.

``list`` shows top-level executions unless ``--parent`` or ``--include-children`` is given, as
ListExecutions does.

A time option takes an ISO 8601 time (``2026-12-01``, ``2026-12-01T08:00:00+00:00``; without a
zone it is UTC) or a duration before now (``2h``, ``30d``: attune.durations).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import grpc
from google.protobuf import timestamp_pb2

from attune.durations import parse_duration
from attune.execution.v1 import execution_pb2
from attune_services.cli.client import Client
from attune_services.cli.errors import UsageError
from attune_services.cli.output import JSON, emit_json


def add_filter_options(listing: argparse.ArgumentParser, states: list[str]) -> None:
    """Adds the filters of ``execution list`` beside ``--action`` and ``--parent``."""
    listing.add_argument(
        "--state",
        dest="states",
        action="append",
        default=[],
        choices=states,
        help="only executions in this state (repeat for any of several)",
    )
    listing.add_argument("--requested-by", default="", metavar="TOKEN", help="only executions this token requested")
    listing.add_argument(
        "--include-children", action="store_true", help="workflows' children too (default: top-level executions only)"
    )
    add_time_options(listing)


def listing_request(
    args: argparse.Namespace, *, page_size: int, page_token: str
) -> execution_pb2.ListExecutionsRequest:
    """The ListExecutionsRequest of ``execution list``'s options, for one page."""
    from attune.grpcutil.convert import execution_state_to_proto
    from attune.states import ExecutionState

    request = execution_pb2.ListExecutionsRequest(
        states=[execution_state_to_proto(state) for state in args.states],
        action_ref=args.action,
        parent_id=args.parent,
        requested_by=args.requested_by,
        # What waits for an answer is mostly a workflow's task (a core.ask): `--state pending` lists those too.
        include_children=args.include_children or list(args.states) == [ExecutionState.PENDING],
        page_size=page_size,
        page_token=page_token,
    )
    for field, stamp in time_filters(args).items():
        getattr(request, field).CopyFrom(stamp)
    return request


def add_time_options(listing: argparse.ArgumentParser) -> None:
    """Adds ``--since`` and ``--until`` to ``execution list``."""
    for flag, what in (("--since", "created at or after"), ("--until", "created before")):
        listing.add_argument(
            flag, default="", metavar="TIME", help=f"only executions {what} TIME (ISO 8601, or a duration ago: 2h, 30d)"
        )


def time_filters(args: argparse.Namespace) -> dict[str, timestamp_pb2.Timestamp]:
    """The ListExecutionsRequest fields of ``--since`` / ``--until`` (only those given)."""
    fields: dict[str, timestamp_pb2.Timestamp] = {}
    for option, field in (("since", "created_after"), ("until", "created_before")):
        text: str = getattr(args, option)
        if text:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromMicroseconds(round(_moment(text, f"--{option}") * 1e6))
            fields[field] = stamp
    return fields


def _moment(text: str, option: str) -> float:
    """Unix seconds of an ISO 8601 time, or of now minus a duration."""
    try:
        return time.time() - parse_duration(text, name=option)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise UsageError(f"{option}: {text!r} is neither an ISO 8601 time nor a duration (e.g. 2h, 30d)") from err
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def add_purge_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``execution purge --older-than DURATION``."""
    purge = sub.add_parser(
        "purge", parents=[parent], help="delete ended executions older than a duration (needs the admin role)"
    )
    purge.add_argument(
        "--older-than", required=True, metavar="DURATION", help="e.g. 30d, 12h, 15m or seconds (more than 0)"
    )
    purge.set_defaults(handler=purge_command)


async def purge_command(args: argparse.Namespace, client: Client) -> int:
    """Purges through PurgeExecutions and prints how many executions were deleted."""
    try:
        seconds = parse_duration(args.older_than, name="--older-than")
    except ValueError as err:
        raise UsageError(str(err)) from err
    if seconds <= 0:
        raise UsageError(f"--older-than: {args.older_than!r} must be more than 0")
    request = execution_pb2.PurgeExecutionsRequest(older_than_seconds=seconds)
    try:
        response = await client.executions.PurgeExecutions(request)
    except grpc.RpcError as err:
        raise client.error(err, "purge executions") from err
    if args.output == JSON:
        emit_json({"purged": response.purged, "older_than_seconds": seconds})
    else:
        print(f"purged {response.purged} executions")
    return 0
