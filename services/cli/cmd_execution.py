"""``attune execution get|list|cancel|watch``."""

from __future__ import annotations

import argparse
import sys

import grpc

from attune.common.v1 import common_pb2
from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_to_proto
from attune.ids import new_id
from attune.states import ACTIVE, TERMINAL, ExecutionState
from attune_services.cli.client import Client, CliError
from attune_services.cli.output import JSON, emit_json, execution_json, execution_text, iso_of, state_of, table
from attune_services.cli.tree import TreeDisplay, build_tree
from attune_services.cli.watching import follow, get_execution

# Plain strings: argparse shows the choices with repr() when it refuses one.
STATES = sorted(state.value for state in ACTIVE | TERMINAL)
# Well within the server's ATTUNE_MAX_PAGE_SIZE (default 1000), which refuses a larger page_size.
MAX_PAGE = 100


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``execution get|list|cancel|watch``."""
    execution = commands.add_parser("execution", help="inspect and control executions")
    sub = execution.add_subparsers(dest="execution_command", metavar="COMMAND", required=True)
    get = sub.add_parser("get", parents=[parent], help="show one execution with its children")
    get.add_argument("id", metavar="ID")
    get.set_defaults(handler=get_command)
    listing = sub.add_parser("list", parents=[parent], help="list executions, newest first")
    listing.add_argument("--state", choices=STATES, help="only executions in this state")
    listing.add_argument("--action", default="", metavar="REF", help="only executions of this action")
    listing.add_argument("--parent", default="", metavar="ID", help="only children of this execution")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="at most N executions (default 50)")
    listing.set_defaults(handler=list_command)
    cancel = sub.add_parser("cancel", parents=[parent], help="cancel an execution")
    cancel.add_argument("id", metavar="ID")
    cancel.set_defaults(handler=cancel_command)
    watch = sub.add_parser("watch", parents=[parent], help="follow an execution (a workflow's task tree) live")
    watch.add_argument("id", metavar="ID")
    watch.set_defaults(handler=watch_command)


async def get_command(args: argparse.Namespace, client: Client) -> int:
    """Prints the execution and its direct children."""
    response = await get_execution(client, args.id)
    if args.output == JSON:
        emit_json(execution_json(response.execution, response.children))
    else:
        print(execution_text(response.execution, response.children))
    return 0


async def list_command(args: argparse.Namespace, client: Client) -> int:
    """Pages through ListExecutions up to --limit."""
    if args.limit < 1:
        raise CliError(f"--limit must be at least 1, got {args.limit}")
    found: list[execution_pb2.Execution] = []
    token = ""
    while len(found) < args.limit:
        request = execution_pb2.ListExecutionsRequest(
            state=execution_state_to_proto(args.state) if args.state else common_pb2.EXECUTION_STATE_UNSPECIFIED,
            action_ref=args.action,
            parent_id=args.parent,
            page_size=min(MAX_PAGE, args.limit - len(found)),
            page_token=token,
        )
        try:
            response = await client.executions.ListExecutions(request)
        except grpc.RpcError as err:
            raise client.error(err, "list executions") from err
        found += response.executions
        token = response.next_page_token
        if not token:
            break
    found = found[: args.limit]
    if args.output == JSON:
        emit_json({"executions": [execution_json(e) for e in found]})
        return 0
    rows = [
        (e.id, e.action_ref, state_of(e), e.link.task_name if e.HasField("link") else "", iso_of(e.created_at))
        for e in found
    ]
    print(table(("ID", "ACTION", "STATE", "TASK", "CREATED"), rows))
    return 0


async def cancel_command(args: argparse.Namespace, client: Client) -> int:
    """Requests cancellation and prints the resulting state."""
    request = execution_pb2.CancelExecutionRequest(id=args.id, request_id=new_id())
    try:
        response = await client.executions.CancelExecution(request)
    except grpc.RpcError as err:
        raise client.error(err, f"cancel execution {args.id}") from err
    if args.output == JSON:
        emit_json(execution_json(response.execution))
    else:
        print(f"{response.execution.id}: {state_of(response.execution)}")
    return 0


async def watch_command(args: argparse.Namespace, client: Client) -> int:
    """Redraws the task tree on every change until the execution ends; exit 0 when it succeeded."""
    display = TreeDisplay(sys.stderr if args.output == JSON else sys.stdout)
    last = None
    async for snapshot in follow(client, args.id):
        last = snapshot
        display.show(await build_tree(client, snapshot.execution, snapshot.children))
    if last is None:
        raise CliError(f"execution {args.id}: the watch ended without any update")
    final = await get_execution(client, args.id)
    display.show(await build_tree(client, final.execution, final.children))
    if args.output == JSON:
        emit_json(execution_json(final.execution, final.children))
    return 0 if state_of(final.execution) == ExecutionState.SUCCEEDED else 1
