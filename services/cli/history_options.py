"""History options of ``attune execution``: ``list --since/--until`` and ``purge --older-than``.

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
from attune_services.cli.client import Client, CliError
from attune_services.cli.output import JSON, emit_json


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
        raise CliError(f"{option}: {text!r} is neither an ISO 8601 time nor a duration (e.g. 2h, 30d)") from err
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
        raise CliError(str(err)) from err
    if seconds <= 0:
        raise CliError(f"--older-than: {args.older_than!r} must be more than 0")
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
