"""``attune execution rerun ID [--from-task T …] [-p key=value …] [--task-input T.key=value …]``.

A new execution of an ended one's action with its parameters (``-p`` overrides them, typed by the
action's schema), linked to it (``rerun_of``). For a workflow, ``--from-task`` re-runs it from
those tasks, keeping what ran before them; ``--task-input`` gives such a task new input (the
value is JSON when it parses as JSON, else a string). Prints the new execution's id, or with
``--output json`` one object: the execution as ``execution get`` shows it, with ``rerun_of``.

Imports stay inside the functions: registering the parser costs nothing (cli/main.py).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from attune_services.cli.arguments import add_param_option

if TYPE_CHECKING:
    from attune.execution.v1 import execution_pb2
    from attune_services.cli.client import Client


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``execution rerun``."""
    rerun = sub.add_parser("rerun", parents=[parent], help="run an ended execution again (a workflow: from tasks)")
    rerun.add_argument("id", metavar="ID")
    rerun.add_argument(
        "--from-task",
        dest="from_tasks",
        action="append",
        default=[],
        metavar="TASK",
        help="re-run the workflow from this task, keeping what ran before it (repeatable)",
    )
    add_param_option(rerun, "a parameter overriding the original's, typed by the action's schema (repeatable)")
    rerun.add_argument(
        "--task-input",
        dest="task_inputs",
        action="append",
        default=[],
        metavar="TASK.KEY=VALUE",
        help="new input for a --from-task task; VALUE is JSON when it parses, else a string (repeatable)",
    )
    rerun.set_defaults(handler=rerun_command)


def parse_task_inputs(assignments: list[str], from_tasks: list[str]) -> dict[str, dict[str, Any]]:
    """``T.key=value`` items grouped by task; each task must be one of ``from_tasks``."""
    import json

    from attune_services.cli.errors import CliError
    from attune_services.cli.params import INVALID_ARGUMENT, split_assignment

    inputs: dict[str, dict[str, Any]] = {}
    for text in assignments:
        target, raw = split_assignment(text)
        task, dot, key = target.rpartition(".")
        if not dot or not task or not key:
            raise CliError(f"--task-input {text!r}: expected TASK.KEY=VALUE", code=INVALID_ARGUMENT)
        if task not in from_tasks:
            raise CliError(
                f"--task-input {text!r}: task {task!r} is not given with --from-task (only those run again)",
                code=INVALID_ARGUMENT,
            )
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        inputs.setdefault(task, {})[key] = value
    return inputs


async def rerun_command(args: argparse.Namespace, client: Client) -> int:
    """Requests the re-run and prints the new execution."""
    import grpc

    from attune.execution.v1 import execution_pb2
    from attune.grpcutil.convert import dict_from_struct, struct_from_dict
    from attune.ids import new_id
    from attune_services.cli.cmd_action import fetch_action
    from attune_services.cli.output import JSON, emit_json
    from attune_services.cli.params import build_parameters
    from attune_services.cli.watching import get_execution

    inputs = parse_task_inputs(args.task_inputs, args.from_tasks)
    params: dict[str, Any] = {}
    if args.params:  # typed by the action's schema: the original's action
        original = await get_execution(client, args.id)
        schema = dict_from_struct((await fetch_action(client, original.execution.action_ref)).parameters)
        params = build_parameters(schema, args.params, None)
    request = execution_pb2.RerunExecutionRequest(
        id=args.id,
        parameters=struct_from_dict(params),
        from_tasks=args.from_tasks,
        task_inputs=[
            execution_pb2.TaskInput(task=task, input=struct_from_dict(value)) for task, value in inputs.items()
        ],
        request_id=new_id(),
    )
    try:
        response = await client.executions.RerunExecution(request)
    except grpc.RpcError as err:
        raise client.error(err, f"re-run execution {args.id}") from err
    if args.output == JSON:
        emit_json(rerun_json(response.execution))
    else:
        print(response.execution.id)
    return 0


def rerun_json(execution: execution_pb2.Execution) -> dict[str, Any]:
    """The new execution as ``execution get`` shows it (no children yet), with ``rerun_of``."""
    from attune_services.cli.output import execution_json

    return execution_json(execution)  # with rerun_of (set on every re-run)
