"""``attune execution respond ID -p key=value … [--params-json JSON]``: answer a pending ask.

The answer's values are typed by the ask's own schema (its `schema` parameter, read with
GetExecution), as ``attune run`` types parameters by the action's. Prints the execution's id and
state, or with ``--output json`` the execution as ``execution get`` shows it. A wrong answer is
INVALID_ARGUMENT naming each field; a caller the ask does not allow, PERMISSION_DENIED.

Imports stay inside the functions: registering the parser costs nothing (cli/main.py).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from attune_services.cli.arguments import add_param_option

if TYPE_CHECKING:
    from attune_services.cli.client import Client


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``execution respond``."""
    respond = sub.add_parser("respond", parents=[parent], help="answer an execution waiting for one (core.ask)")
    respond.add_argument("id", metavar="ID")
    add_param_option(respond, "a field of the answer, typed by the ask's schema (repeatable)")
    respond.add_argument("--params-json", metavar="JSON", help="the answer as a JSON object (-p fields go on top)")
    respond.set_defaults(handler=respond_command)


def answer_schema(parameters: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The inline schema of an ask's answer, from the ask's parameters ({} when unreadable: the
    server then names what is wrong)."""
    from attune.packs import check_parameter_schema
    from attune.packs.asks import inline_answer_schema

    schema, problems = check_parameter_schema(inline_answer_schema(parameters.get("schema")))
    return {} if problems else schema


async def respond_command(args: argparse.Namespace, client: Client) -> int:
    """Reads the ask, types the answer by its schema, sends RespondToExecution."""
    import grpc

    from attune.execution.v1 import execution_pb2
    from attune.grpcutil.convert import dict_from_struct, struct_from_dict
    from attune.ids import new_id
    from attune_services.cli.output import JSON, emit_json, execution_json, state_of
    from attune_services.cli.params import build_parameters

    try:
        ask = (await client.executions.GetExecution(execution_pb2.GetExecutionRequest(id=args.id))).execution
    except grpc.RpcError as err:
        raise client.error(err, f"get execution {args.id}") from err
    answer = build_parameters(answer_schema(dict_from_struct(ask.parameters)), args.params, args.params_json)
    request = execution_pb2.RespondToExecutionRequest(id=args.id, answer=struct_from_dict(answer), request_id=new_id())
    try:
        response = await client.executions.RespondToExecution(request)
    except grpc.RpcError as err:
        raise client.error(err, f"respond to execution {args.id}") from err
    if args.output == JSON:
        emit_json(execution_json(response.execution))
    else:
        print(f"{response.execution.id}: {state_of(response.execution)}")
    return 0
