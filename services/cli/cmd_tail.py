"""``attune execution tail ID [-f]``: an execution's output, a workflow's tasks' with their names.

Reads WatchExecutionLogs with include_children: without ``-f`` what is stored now, with ``-f``
everything until the execution has ended. Chunks are cut into lines per execution and stream;
a line of a workflow's task is prefixed with the task's name (``task: line``, a nested
workflow's as ``outer.inner: line``). stdout lines go to stdout, stderr lines to stderr. With
``--output json``: one object, ``{id, lines: [{execution_id, task, stream, written_at, text}]}``.

Imports stay inside the functions: registering the parser costs nothing (cli/main.py).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attune.execution.v1 import execution_pb2
    from attune_services.cli.client import Client


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    """Adds ``execution tail``."""
    tail = sub.add_parser(
        "tail", parents=[parent], help="print an execution's output (a workflow's: every task's, prefixed)"
    )
    tail.add_argument("id", metavar="ID")
    tail.add_argument(
        "-f", "--follow", action="store_true", help="keep printing output as it is written, until the execution ends"
    )
    tail.set_defaults(handler=tail_command)


class LineSplitter:
    """Cuts chunks into lines per (execution, stream), keeping a partial line until its end."""

    def __init__(self) -> None:
        self._partial: dict[tuple[str, int], bytes] = {}
        self._tasks: dict[str, str] = {}

    def feed(self, chunk: execution_pb2.WatchExecutionLogsResponse) -> list[tuple[str, int, str, str]]:
        """The lines the chunk completes: (execution_id, stream, task, text without the newline)."""
        key = (chunk.execution_id, chunk.stream)
        self._tasks[chunk.execution_id] = chunk.task_name
        *whole, rest = (self._partial.pop(key, b"") + chunk.data).split(b"\n")
        if rest:
            self._partial[key] = rest
        return [(key[0], key[1], chunk.task_name, line.decode("utf-8", "replace")) for line in whole]

    def rest(self) -> list[tuple[str, int, str, str]]:
        """The partial lines left at the end (output that did not end with a newline)."""
        left = [
            (i, stream, self._tasks.get(i, ""), data.decode("utf-8", "replace"))
            for (i, stream), data in self._partial.items()
        ]
        self._partial.clear()
        return left


def prefixed(task: str, text: str) -> str:
    """A line as `tail` prints it: prefixed with its task's name, when it has one."""
    return f"{task}: {text}" if task else text


async def tail_command(args: argparse.Namespace, client: Client) -> int:
    """Prints the output (see the module docstring)."""
    import sys

    import grpc

    from attune.execution.v1 import execution_pb2
    from attune_services.cli.output import JSON, emit_json, iso_of

    as_json = args.output == JSON
    lines: list[dict[str, Any]] = []
    times: dict[str, str | None] = {}
    splitter = LineSplitter()

    def show(found: list[tuple[str, int, str, str]]) -> None:
        for execution_id, stream, task, text in found:
            is_stderr = stream == execution_pb2.LOG_STREAM_STDERR
            if as_json:
                lines.append(
                    {
                        "execution_id": execution_id,
                        "task": task or None,
                        "stream": "stderr" if is_stderr else "stdout",
                        "written_at": times.get(execution_id),
                        "text": text,
                    }
                )
            else:
                print(prefixed(task, text), file=sys.stderr if is_stderr else sys.stdout, flush=args.follow)

    request = execution_pb2.WatchExecutionLogsRequest(id=args.id, include_children=True, stored_only=not args.follow)
    try:
        async for chunk in client.executions.WatchExecutionLogs(request):
            times[chunk.execution_id] = iso_of(chunk.written_at)
            show(splitter.feed(chunk))
    except grpc.RpcError as err:
        raise client.error(err, f"output of execution {args.id}") from err
    finally:
        show(splitter.rest())
    if as_json:
        emit_json({"id": args.id, "lines": lines})
    return 0
