"""``attune execution get|list|cancel|watch|result|purge``."""

from __future__ import annotations

import argparse
import io
import json
import sys

import grpc

from attune.execution.v1 import execution_pb2
from attune.ids import new_id
from attune.states import ACTIVE, TERMINAL, ExecutionState
from attune_services.cli.arguments import positive_int
from attune_services.cli.client import Client, CliError
from attune_services.cli.cmd_pause import add_parser as add_pause_parser
from attune_services.cli.cmd_rerun import add_parser as add_rerun_parser
from attune_services.cli.cmd_respond import add_parser as add_respond_parser
from attune_services.cli.cmd_tail import add_parser as add_tail_parser
from attune_services.cli.fetching import add_children_option, shown, write_result
from attune_services.cli.history_options import add_filter_options, add_purge_parser, listing_request
from attune_services.cli.output import JSON, emit_json, execution_json, iso_of, state_of, table
from attune_services.cli.tree import TreeDisplay, TreeNode, build_tree, summary_node
from attune_services.cli.watching import Followed, follow, get_execution, ticking

# Plain strings: argparse shows the choices with repr() when it refuses one.
STATES = sorted(state.value for state in ACTIVE | TERMINAL)
#: Seconds between two redraws of `execution watch`'s tree on a terminal while nothing changes.
TICK_S = 1.0
# Well within the server's ATTUNE_MAX_PAGE_SIZE (default 1000), which refuses a larger page_size.
MAX_PAGE = 100


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``execution get|list|cancel|watch|purge``."""
    execution = commands.add_parser("execution", help="inspect and control executions")
    sub = execution.add_subparsers(dest="execution_command", metavar="COMMAND", required=True)
    get = sub.add_parser("get", parents=[parent], help="show one execution with its children")
    get.add_argument("id", metavar="ID")
    add_children_option(get)
    get.set_defaults(handler=get_command)
    listing = sub.add_parser("list", parents=[parent], help="list executions, newest first")
    listing.add_argument("--action", default="", metavar="REF", help="only executions of this action")
    listing.add_argument("--parent", default="", metavar="ID", help="only children of this execution")
    listing.add_argument(
        "--limit", type=positive_int, default=50, metavar="N", help="at most N executions (default 50)"
    )
    add_filter_options(listing, STATES)
    listing.set_defaults(handler=list_command)
    cancel = sub.add_parser("cancel", parents=[parent], help="cancel an execution")
    cancel.add_argument("id", metavar="ID")
    cancel.set_defaults(handler=cancel_command)
    watch = sub.add_parser("watch", parents=[parent], help="follow an execution (a workflow's task tree) live")
    watch.add_argument("id", metavar="ID")
    add_children_option(watch)
    watch.set_defaults(handler=watch_command)
    result = sub.add_parser("result", parents=[parent], help="write an execution's whole result (its JSON)")
    result.add_argument("id", metavar="ID")
    result.add_argument("--file", metavar="PATH", help="write it to PATH rather than stdout")
    result.set_defaults(handler=result_command)
    add_purge_parser(sub, parent)
    add_tail_parser(sub, parent)  # execution tail: cmd_tail.py
    add_rerun_parser(sub, parent)  # execution rerun: cmd_rerun.py
    add_respond_parser(sub, parent)  # execution respond: cmd_respond.py
    add_pause_parser(sub, parent)  # execution pause, execution resume: cmd_pause.py


async def get_command(args: argparse.Namespace, client: Client) -> int:
    """Prints the execution, its children's summary and first page (--children all: every one)."""
    execution = await shown(client, await get_execution(client, args.id), args.children)
    if args.output == JSON:
        emit_json(execution.json())
    else:
        print(execution.text())
    return 0


async def result_command(args: argparse.Namespace, client: Client) -> int:
    """Writes the whole result, fetched in chunks, to stdout or --file (nothing when it has none);
    with --output json, one object: {id, result} (or {id, file, bytes} with --file)."""
    if args.file:
        with open(args.file, "wb") as out:
            written = await write_result(client, args.id, out)
        if args.output == JSON:
            emit_json({"id": args.id, "file": args.file, "bytes": written})
        print(f"{written} bytes written to {args.file}", file=sys.stderr)
        return 0
    if args.output == JSON:
        whole = io.BytesIO()
        await write_result(client, args.id, whole)
        try:
            result = json.loads(whole.getvalue()) if whole.getvalue() else None
        except ValueError as err:
            raise CliError(f"result of execution {args.id} is not valid JSON: {err}") from err
        emit_json({"id": args.id, "result": result})
        return 0
    await write_result(client, args.id, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    return 0


async def list_command(args: argparse.Namespace, client: Client) -> int:
    """Pages through ListExecutions up to --limit."""
    found: list[execution_pb2.Execution] = []
    token = ""
    while len(found) < args.limit:
        request = listing_request(args, page_size=min(MAX_PAGE, args.limit - len(found)), page_token=token)
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
    followed: Followed | None = None
    tree: TreeNode | None = None
    # On a terminal the tree is redrawn every TICK_S too, so running tasks' elapsed times move on.
    async for message in ticking(follow(client, args.id), TICK_S if display.live else None):
        if message is None:
            if tree is not None:
                display.show(tree)
            continue
        followed = followed or Followed()
        followed.update(message)
        tree = await _tree_of(client, followed)
        display.show(tree)
    if followed is None:
        raise CliError(f"execution {args.id}: the watch ended without any update")
    final = await shown(client, await get_execution(client, args.id), args.children)
    followed.execution = final.execution
    display.show(await _tree_of(client, followed))
    if args.output == JSON:
        emit_json(final.json())
    return 0 if state_of(final.execution) == ExecutionState.SUCCEEDED else 1


async def _tree_of(client: Client, followed: Followed) -> TreeNode:
    """The task tree while every child is known; a workflow with more children is one line with
    its summary."""
    if followed.all_children_kept:
        return await build_tree(client, followed.execution, followed.sorted_children())
    return summary_node(followed.execution, followed.summary)
