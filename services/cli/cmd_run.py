"""``attune run REF``: request an execution, optionally wait for it, report per docs/architecture.md, Interfaces.

With ``--output json`` exactly one JSON object reaches stdout, whatever the outcome; the exit
status is 0 only when the execution succeeded (or, without ``--wait``, was accepted). With
``--wait`` it carries the children's summary and their first page (``--children all``: every
child), and the whole result however large (fetched in chunks: fetching.py).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import grpc

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct, duration, struct_from_dict
from attune.ids import new_id
from attune.states import ExecutionState
from attune_services.cli.arguments import add_param_option
from attune_services.cli.client import Client, CliError
from attune_services.cli.cmd_action import fetch_action
from attune_services.cli.fetching import add_children_option, shown
from attune_services.cli.output import JSON, emit_json, execution_json, failure_json, progress, state_of
from attune_services.cli.params import build_parameters
from attune_services.cli.watching import ProgressPrinter, wait_until_terminal


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``run``."""
    run = commands.add_parser("run", parents=[parent], help="run an action")
    run.add_argument("ref", metavar="REF", help="the action's ref, e.g. core.echo")
    add_param_option(run, "a parameter, typed by the action's schema (repeatable)")
    run.add_argument("--params-json", metavar="JSON", help="parameters as a JSON object (-p values win)")
    run.add_argument("--wait", action="store_true", help="wait until the execution ends")
    run.add_argument(
        "--timeout",
        type=float,
        default=0.0,
        metavar="S",
        help="the execution's timeout in seconds (overrides the action's)",
    )
    add_children_option(run)
    run.set_defaults(handler=run_action)


#: `run --wait` first asks RunExecution to answer within this many seconds: an execution that
#: ends by then costs one call; a longer one is then followed by a watch that prints progress.
FIRST_WAIT_S = 1.0


def _request(ref: str, params: dict[str, Any], timeout: float) -> execution_pb2.RequestExecutionRequest:
    return execution_pb2.RequestExecutionRequest(
        action_ref=ref, parameters=struct_from_dict(params), request_id=new_id(), timeout_seconds=timeout
    )


async def request_execution(
    client: Client, ref: str, params: dict[str, Any], timeout: float = 0.0
) -> execution_pb2.Execution:
    """RequestExecution with a fresh request_id."""
    try:
        response = await client.executions.RequestExecution(_request(ref, params, timeout))
    except grpc.RpcError as err:
        raise client.error(err, f"run {ref}", subject=ref) from err
    return response.execution


async def run_execution(
    client: Client, ref: str, params: dict[str, Any], timeout: float, *, wait: float
) -> execution_pb2.RunExecutionResponse:
    """RunExecution with a fresh request_id: the execution once it has ended, or after `wait`."""
    request = execution_pb2.RunExecutionRequest(request=_request(ref, params, timeout), wait=duration(wait))
    try:
        response: execution_pb2.RunExecutionResponse = await client.executions.RunExecution(request)
    except grpc.RpcError as err:
        raise client.error(err, f"run {ref}", subject=ref) from err
    return response


async def run_action(args: argparse.Namespace, client: Client) -> int:
    """Validates -p against the schema, requests the execution, waits with --wait."""
    execution_id: str | None = None
    printer = ProgressPrinter(progress)
    try:
        # -p values are typed by the action's schema; without any, the scheduler checks what is sent
        # and names an unknown ref just as well, so the call is saved.
        schema = dict_from_struct((await fetch_action(client, args.ref)).parameters) if args.params else {}
        params = build_parameters(schema, args.params, args.params_json)
        if not args.wait:
            execution = await request_execution(client, args.ref, params, args.timeout)
            if args.output == JSON:
                emit_json(execution_json(execution))
            else:
                print(execution.id)
            return 0
        answer = await run_execution(client, args.ref, params, args.timeout, wait=FIRST_WAIT_S)
        execution_id = answer.execution.id
        printer.note(f"{args.ref} {execution_id}: requested")
        if answer.ended and answer.execution.runner_type != "workflow":  # no children to show: done
            ended = execution_pb2.GetExecutionResponse(execution=answer.execution)
            printer.finish(ended)
        else:
            ended = await wait_until_terminal(client, execution_id, printer)
        final = await shown(client, ended, args.children)
    except CliError as err:
        if args.output == JSON:
            emit_json(failure_json(args.ref, err.message, execution_id))
        raise
    except asyncio.CancelledError:  # Ctrl-C while waiting: the JSON object is still owed
        if args.output == JSON:
            emit_json(failure_json(args.ref, "interrupted while waiting", execution_id))
        raise
    if args.output == JSON:
        emit_json(final.json())
    else:
        print(final.text())
    state = state_of(final.execution)
    if state != ExecutionState.SUCCEEDED:
        progress(
            f"attune: execution {final.execution.id} {state}"
            + (f": {final.execution.error}" if final.execution.error else "")
        )
        return 1
    return 0
