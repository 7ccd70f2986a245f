"""``attune execution pause ID`` and ``attune execution resume ID``: hold a running workflow and
let it go on (docs/workflows.md, Pause and resume).

Prints the execution's id and state (``pausing``/``paused`` after a pause, ``running`` after a
resume), or with ``--output json`` the execution as ``execution get`` shows it. Pausing a plain
action or a finished execution is refused naming why.

Imports stay inside the functions: registering the parser costs nothing (cli/main.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attune_services.cli.client import Client


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``execution pause`` and ``execution resume``."""
    pause = sub.add_parser("pause", parents=[parent], help="pause a running workflow (no new task starts)")
    pause.add_argument("id", metavar="ID")
    pause.set_defaults(handler=pause_command)
    resume = sub.add_parser("resume", parents=[parent], help="resume a paused workflow where it stopped")
    resume.add_argument("id", metavar="ID")
    resume.set_defaults(handler=resume_command)


async def pause_command(args: argparse.Namespace, client: Client) -> int:
    """Sends PauseExecution."""
    from attune.execution.v1 import execution_pb2
    from attune.ids import new_id

    request = execution_pb2.PauseExecutionRequest(id=args.id, request_id=new_id())
    return await _send(args, client, "pause", lambda: client.executions.PauseExecution(request))


async def resume_command(args: argparse.Namespace, client: Client) -> int:
    """Sends ResumeExecution."""
    from attune.execution.v1 import execution_pb2
    from attune.ids import new_id

    request = execution_pb2.ResumeExecutionRequest(id=args.id, request_id=new_id())
    return await _send(args, client, "resume", lambda: client.executions.ResumeExecution(request))


async def _send(args: argparse.Namespace, client: Client, verb: str, call: Callable[[], Awaitable[Any]]) -> int:
    import grpc

    from attune_services.cli.output import JSON, emit_json, execution_json, state_of

    try:
        response = await call()
    except grpc.RpcError as err:
        raise client.error(err, f"{verb} execution {args.id}") from err
    if args.output == JSON:
        emit_json(execution_json(response.execution))
    else:
        print(f"{response.execution.id}: {state_of(response.execution)}")
    return 0
