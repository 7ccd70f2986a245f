"""Following an execution until it ends: WatchExecution, resumed if the stream breaks.

A watch sends a snapshot (the execution, its children's summary and first page), then a message
per change: the execution, or one child, with the summary as of then. `Followed` folds them into
what a display needs; `ProgressPrinter` turns them into progress lines (the summary, not a line
per child, once a workflow has more children than a page).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TypeAlias, TypeVar

import grpc

from attune.execution.v1 import execution_pb2
from attune.states import TERMINAL
from attune_services.cli.client import Client
from attune_services.cli.output import state_of, summary_text

Snapshot: TypeAlias = execution_pb2.WatchExecutionResponse
T = TypeVar("T")
_RESUME_ATTEMPTS = 20
_RESUME_DELAY = 0.25
#: Up to this many children, progress has a line per child's change; above, the summary.
PER_CHILD_LINES = 100
#: Seconds between two summary lines.
SUMMARY_INTERVAL = 1.0
#: Up to this many children, `Followed` keeps each one (for the task tree of `execution watch`).
KEPT_CHILDREN = 1000


async def follow(client: Client, execution_id: str) -> AsyncIterator[Snapshot]:
    """Yields each snapshot of the execution until one shows it terminal.

    A stream that ends early or breaks (UNAVAILABLE) is reopened; other errors propagate.
    """
    failures = 0
    while True:
        try:
            call = client.executions.WatchExecution(execution_pb2.WatchExecutionRequest(id=execution_id))
            async for snapshot in call:
                failures = 0
                yield snapshot
                if state_of(snapshot.execution) in TERMINAL:
                    return
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE or failures >= _RESUME_ATTEMPTS:
                raise client.error(err, f"watch execution {execution_id}") from err
        failures += 1
        if failures > _RESUME_ATTEMPTS:
            return
        # The stream ended without a terminal snapshot: check once, then resume watching.
        current = await get_execution(client, execution_id)
        if state_of(current.execution) in TERMINAL:
            yield execution_pb2.WatchExecutionResponse(
                execution=current.execution,
                children=current.children,
                children_summary=current.children_summary,
                next_page_token=current.next_page_token,
            )
            return
        await asyncio.sleep(_RESUME_DELAY)


async def ticking(source: AsyncIterator[T], interval: float | None) -> AsyncIterator[T | None]:
    """Yields what `source` yields, and None each time `interval` seconds pass without a message
    (never, when `interval` is None): a display redraws its elapsed times on each None."""
    pending: asyncio.Future[T | None] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source, None))
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield None
                continue
            message, pending = pending.result(), None
            if message is None:
                return
            yield message
    finally:
        if pending is not None:
            pending.cancel()


async def get_execution(client: Client, execution_id: str) -> execution_pb2.GetExecutionResponse:
    """GetExecution, with the error naming the id."""
    try:
        response: execution_pb2.GetExecutionResponse = await client.executions.GetExecution(
            execution_pb2.GetExecutionRequest(id=execution_id)
        )
        return response
    except grpc.RpcError as err:
        raise client.error(err, f"execution {execution_id}") from err


async def wait_until_terminal(
    client: Client, execution_id: str, printer: ProgressPrinter | None = None
) -> execution_pb2.GetExecutionResponse:
    """Follows the execution to its end; returns the final GetExecution (its children's summary
    and first page: see fetching.py for the rest). A `printer` gets every message, then the final
    answer (`ProgressPrinter.finish`)."""
    async for snapshot in follow(client, execution_id):
        if printer is not None:
            printer(snapshot)
    final = await get_execution(client, execution_id)
    if printer is not None:
        printer.finish(final)
    return final


class Followed:
    """What a watch has shown so far: the execution, its children's summary, and each child seen
    (the first page, then each that changed) while there are at most KEPT_CHILDREN."""

    def __init__(self) -> None:
        self.execution = execution_pb2.Execution()
        self.summary = execution_pb2.ChildrenSummary()
        self.children: dict[str, execution_pb2.Execution] = {}

    def update(self, message: Snapshot) -> None:
        """Folds in one message of the watch."""
        if not message.is_change:
            self.children = {}
        self.execution = message.execution
        self.summary = message.children_summary
        if self.summary.total <= KEPT_CHILDREN:
            for child in message.children:
                self.children[child.id] = child
        else:
            self.children = {}

    @property
    def all_children_kept(self) -> bool:
        """Whether `children` holds every child (a snapshot showed each, or changes did since)."""
        return self.summary.total <= KEPT_CHILDREN and len(self.children) >= self.summary.total

    def sorted_children(self) -> list[execution_pb2.Execution]:
        """The children kept, oldest first."""
        return [self.children[key] for key in sorted(self.children)]


class ProgressPrinter:
    """Turns watch messages into stderr lines: one per state change of the execution or a child,
    or, for a workflow of more than PER_CHILD_LINES children, its summary every SUMMARY_INTERVAL.

    Lines come in causal order: a workflow's end is printed last, by :meth:`finish`, after the
    last changes of its children, which a watch may send in the same message as that end (a
    snapshot taken after the workflow ended holds both) or only the final GetExecution shows.
    Each line starts with the seconds since the printer was made (the command began)."""

    def __init__(self, emit: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.emit = emit
        self.clock = clock
        self.began = clock()
        self.seen: dict[str, str] = {}
        self._summary = ""
        self._summary_at = float("-inf")

    def note(self, message: str) -> None:
        """Emits one line, prefixed with the elapsed time."""
        self.emit(f"[{self.clock() - self.began:6.2f}s] {message}")

    def __call__(self, snapshot: Snapshot) -> None:
        self._show(snapshot.execution, snapshot.children, snapshot.children_summary, final=False)

    def finish(self, final: execution_pb2.GetExecutionResponse) -> None:
        """The execution's end: what its children's last state was, then its own."""
        self._show(final.execution, final.children, final.children_summary, final=True)

    def _show(
        self,
        execution: execution_pb2.Execution,
        children: Sequence[execution_pb2.Execution],
        summary: execution_pb2.ChildrenSummary,
        *,
        final: bool,
    ) -> None:
        ended = state_of(execution) in TERMINAL
        if not ended:  # running before its children's lines; its end only from finish(), after theirs
            self._line(execution)
        if summary.total > PER_CHILD_LINES:
            self._summary_line(execution, summary, ended=final)
        else:
            for child in children:
                self._line(child)
        if final:
            self._line(execution)

    def _line(self, execution: execution_pb2.Execution) -> None:
        state = state_of(execution)
        if self.seen.get(execution.id) == state:
            return
        self.seen[execution.id] = state
        task = execution.link.task_name if execution.HasField("link") else ""
        label = f"task {task} ({execution.action_ref})" if task else execution.action_ref
        self.note(f"{label} {execution.id}: {state}")

    def _summary_line(
        self, execution: execution_pb2.Execution, summary: execution_pb2.ChildrenSummary, *, ended: bool
    ) -> None:
        text = summary_text(summary)
        now = self.clock()
        if text != self._summary and (ended or now - self._summary_at >= SUMMARY_INTERVAL):
            self._summary, self._summary_at = text, now
            self.note(f"{execution.action_ref} {execution.id}: {text}")
