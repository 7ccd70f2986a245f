"""`attune execution tail`'s lines (services/cli/cmd_tail.py): chunks cut into lines per execution
and stream, partial lines kept until they end, a task's lines prefixed with its name."""

from __future__ import annotations

from attune.execution.v1 import execution_pb2
from attune_services.cli.cmd_tail import LineSplitter, prefixed

OUT = execution_pb2.LOG_STREAM_STDOUT
ERR = execution_pb2.LOG_STREAM_STDERR


def _chunk(
    execution_id: str, data: bytes, stream: execution_pb2.LogStream = OUT, task: str = ""
) -> execution_pb2.WatchExecutionLogsResponse:
    return execution_pb2.WatchExecutionLogsResponse(execution_id=execution_id, data=data, stream=stream, task_name=task)


def test_lines_are_cut_per_execution_and_stream_and_a_partial_line_waits() -> None:
    lines = LineSplitter()
    assert lines.feed(_chunk("a", b"one\ntw", task="first")) == [("a", OUT, "first", "one")]
    assert lines.feed(_chunk("b", b"x", task="second")) == []
    assert lines.feed(_chunk("a", b"oops\n", ERR, task="first")) == [("a", ERR, "first", "oops")]
    assert lines.feed(_chunk("a", b"o\n\xc3", task="first")) == [("a", OUT, "first", "two")]
    assert lines.feed(_chunk("a", b"\xa9\n", task="first")) == [("a", OUT, "first", "é")]  # split UTF-8
    assert sorted(lines.rest()) == [("b", OUT, "second", "x")]
    assert lines.rest() == []


def test_a_tasks_line_is_prefixed_with_its_name() -> None:
    assert prefixed("inner.step", "hello") == "inner.step: hello"
    assert prefixed("", "hello") == "hello"
