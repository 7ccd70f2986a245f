"""What the CLI fetches beyond one GetExecution: the rest of the children (ListExecutions pages
from the response's next_page_token) and a whole result too large for a response
(GetExecutionResult chunks).

A response carries an execution, its children's summary and one page of children (oldest
first); every page and every chunk is a message under the size limit, so a workflow of 100,000
children, or with a 50 MB result, is read in as many calls as it takes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import grpc

from attune.execution.v1 import execution_pb2
from attune_services.cli.client import Client, CliError
from attune_services.cli.output import execution_json, execution_text, result_of

#: Children per ListExecutions call when paging through all of them (ATTUNE_MAX_PAGE_SIZE's default;
#: less when the CLI's own ATTUNE_MAX_PAGE_SIZE says so).
CHILDREN_PAGE = 1000
#: --children choices: the first page (as GetExecution gives it) or every child.
CHILDREN_FIRST_PAGE = "page"
CHILDREN_ALL = "all"
CHILDREN_CHOICES = (CHILDREN_FIRST_PAGE, CHILDREN_ALL)


async def all_children(client: Client, response: execution_pb2.GetExecutionResponse) -> list[execution_pb2.Execution]:
    """The response's children and every one after them, oldest first."""
    found = list(response.children)
    token = response.next_page_token
    while token:
        request = execution_pb2.ListExecutionsRequest(
            parent_id=response.execution.id,
            page_size=min(CHILDREN_PAGE, client.settings.max_page_size),
            page_token=token,
        )
        try:
            page = await client.executions.ListExecutions(request)
        except grpc.RpcError as err:
            raise client.error(err, f"children of execution {response.execution.id}") from err
        found += page.executions
        token = page.next_page_token
    return found


async def result_chunks(client: Client, execution_id: str) -> AsyncIterator[bytes]:
    """The bytes of the execution's whole result (its JSON text), chunk by chunk."""
    try:
        async for chunk in client.executions.GetExecutionResult(
            execution_pb2.GetExecutionResultRequest(id=execution_id)
        ):
            yield chunk.data
    except grpc.RpcError as err:
        raise client.error(err, f"result of execution {execution_id}") from err


async def write_result(client: Client, execution_id: str, out: BinaryIO) -> int:
    """Writes the whole result to `out`; returns how many bytes."""
    written = 0
    async for data in result_chunks(client, execution_id):
        out.write(data)
        written += len(data)
    return written


async def whole_result(client: Client, execution: execution_pb2.Execution) -> Any:
    """The execution's result as a value: from the execution itself, or fetched in chunks when
    it carries only a preview (result_truncated)."""
    if not execution.result_truncated:
        return result_of(execution)
    data = b"".join([chunk async for chunk in result_chunks(client, execution.id)])
    try:
        value = json.loads(data)
    except ValueError as err:
        raise CliError(f"result of execution {execution.id} is not valid JSON ({len(data):,} bytes): {err}") from err
    return value if isinstance(value, dict) else {"data": value}  # as a view carries it (scheduler views.py)


@dataclass(frozen=True)
class Shown:
    """An execution as a command shows it: its whole result, and the children asked for."""

    execution: execution_pb2.Execution
    result: Any
    children: list[execution_pb2.Execution]
    summary: execution_pb2.ChildrenSummary
    next_page_token: str

    def json(self) -> dict[str, Any]:
        """The JSON contract (output.execution_json) with the children summary."""
        return execution_json(
            self.execution,
            self.children,
            summary=self.summary,
            next_page_token=self.next_page_token,
            result=self.result,
        )

    def text(self) -> str:
        """The text form (output.execution_text)."""
        return execution_text(self.execution, self.children, summary=self.summary, result=self.result)


async def shown(client: Client, response: execution_pb2.GetExecutionResponse, children: str) -> Shown:
    """What to show of a GetExecution response: the first page of children, or every one
    (`children` is CHILDREN_ALL), and the result fetched whole when the response previews it."""
    if children == CHILDREN_ALL:
        listed, token = await all_children(client, response), ""
    else:
        listed, token = list(response.children), response.next_page_token
    result = await whole_result(client, response.execution)
    return Shown(response.execution, result, listed, response.children_summary, token)


def add_children_option(parser: argparse.ArgumentParser) -> None:
    """Adds --children page|all."""
    parser.add_argument(
        "--children",
        choices=CHILDREN_CHOICES,
        default=CHILDREN_FIRST_PAGE,
        help="show the first page of the children (default) or all of them; the summary counts all",
    )
