"""CLI-wide promises, checked over every registered command (README, CLI): a bad command line
exits 2; with --output json stdout is exactly one JSON object on success and on every error; a
client command imports neither SQLAlchemy nor the launcher; `run --wait` progress is causal."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.execution.v1 import execution_pb2
from attune_services.cli.main import build_parser, command_of, run, wants_json
from attune_services.cli.tree import TreeDisplay, TreeNode
from attune_services.cli.watching import ProgressPrinter, ticking

# Values for required arguments that must parse; every other one gets "x".
_VALUES = {"older_than": "1d", "target": "127.0.0.1:9"}
# Modules a client command must not import (main.py's lazy command table).
_HEAVY = (
    "sqlalchemy",
    "alembic",
    "asyncpg",
    "aiosqlite",
    "cryptography",
    "yaml",
    "attune.storage",
    "attune.packs",  # `run` without -p needs no schema
    "attune_services.cli.launcher",
)


def leaf_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every command that runs something (`execution get`, `up`, …)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from leaf_commands(sub, (*path, name))
            return
    yield path


def required_arguments(path: tuple[str, ...]) -> list[str]:
    """Arguments that make `path` parse: each required positional and option given a value."""
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    argv: list[str] = []
    for action in parser._actions:
        value = str(next(iter(action.choices))) if action.choices else _VALUES.get(action.dest, "x")
        if not action.option_strings and action.nargs in (None, "+"):
            argv.append(value)
        elif action.option_strings and action.required:
            argv += [action.option_strings[0], value]
    return argv


COMMANDS = sorted(leaf_commands(build_parser()))


def test_the_table_registers_every_command_group() -> None:
    assert {path[0] for path in COMMANDS} >= {"run", "execution", "pack", "action", "up", "token"}
    assert ("execution", "get") in COMMANDS and ("execution", "list") in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_a_bad_option_exits_2_with_one_json_error(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["--output", "json", *path, *required_arguments(path), "--no-such-option"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert json.loads(out)["error"]["code"] == "USAGE"
    assert "--no-such-option" in json.loads(out)["error"]["message"]
    assert err.splitlines()[-1].startswith("attune") and "error: " in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["execution", "list", "--limit", "0"],
        ["execution", "list", "--limit=-3", "-o", "json"],
        ["run", "core.echo", "--timeout", "-5"],
        ["run", "core.echo", "--timeout", "nan"],
        ["execution", "list", "--since", "yesterday-ish"],
        ["bench", "cli", "--runs", "0"],
        ["nosuchcommand"],
        [],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = run([*argv, "-o", "json"] if argv else ["-o", "json"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert json.loads(out)["error"]["code"] == "USAGE"
    assert "Traceback" not in err


def test_text_mode_usage_error_has_usage_and_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["execution", "list", "--limit", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: attune execution list")
    assert err.splitlines()[-1] == "attune execution list: error: argument --limit: must be at least 1, got 0"


def test_the_command_and_json_mode_are_found_before_parsing() -> None:
    assert command_of(["--address", "h:1", "-o", "json", "execution", "get", "x"]) == "execution"
    assert command_of(["--addr", "run", "run"]) == "run"  # an abbreviated option's value is skipped
    assert command_of(["--output=json", "--help"]) is None
    assert command_of(["bogus", "run"]) is None
    assert wants_json(["run", "x", "--output", "json"]) and wants_json(["-ojson"]) and wants_json(["--output=json"])
    assert not wants_json(["-o", "json", "-o", "text"]) and not wants_json(["run", "--", "-o", "json"])


@pytest.fixture(scope="module")
def empty_server() -> Iterator[str]:
    """A real gRPC server with no services: every call is answered UNIMPLEMENTED at once."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


@pytest.fixture
def plain_client_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TLS material, token or address from the environment."""
    monkeypatch.setenv("ATTUNE_HOME", str(tmp_path))
    for name in ("ATTUNE_TOKEN", "ATTUNE_TLS_DIR", "ATTUNE_TLS_CA", "ATTUNE_ADDRESS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("plain_client_env")
def test_every_client_command_reports_a_server_error_as_one_json_object(
    empty_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    checked = []
    for path in COMMANDS:
        argv = [*path, *required_arguments(path)]
        if getattr(build_parser({path[0]}).parse_args(argv), "sync", False):
            continue  # runs no client: up, bench, health, secrets, tls
        code = run(["--address", empty_server, "--output", "json", *argv])
        out, err = capsys.readouterr()
        assert code == 1, (argv, err)
        doc = json.loads(out)  # exactly one JSON document: json.loads refuses trailing data
        error = doc["error"]
        assert isinstance(error, str if path == ("run",) else dict), (argv, doc)
        assert "Traceback" not in err and "error: " in err, (argv, err)
        checked.append(path)
    assert ("execution", "get") in checked and ("run",) in checked and len(checked) >= 10


def _modules_after(argv: list[str]) -> tuple[int, set[str]]:
    script = (
        "import json, sys\n"
        "from attune_services.cli.main import run\n"
        "code = run(sys.argv[1:])\n"
        "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=60)
    report = json.loads(proc.stderr.splitlines()[-1])
    return report["code"], set(report["modules"])


@pytest.mark.usefixtures("plain_client_env")
def test_client_commands_import_only_what_they_need(empty_server: str) -> None:
    code, loaded = _modules_after(["--help"])
    assert code == 0
    assert not {"grpc", "google.protobuf", "attune.config"} & loaded
    for argv in (["execution", "get", "x"], ["execution", "list"], ["run", "core.echo"]):
        code, loaded = _modules_after(["--address", empty_server, *argv])
        assert code == 1 and "grpc" in loaded  # it did call the server
        assert not {m for m in loaded if m.startswith(_HEAVY)}, argv


def _execution(execution_id: str, state: common_pb2.ExecutionState, task: str = "") -> execution_pb2.Execution:
    execution = execution_pb2.Execution(id=execution_id, action_ref="core.echo" if task else "examples.wf", state=state)
    if task:
        execution.link.CopyFrom(common_pb2.WorkflowLink(workflow_execution_id="wf", task_name=task, run=1, attempt=1))
    return execution


def test_a_workflow_ends_after_its_last_task_in_the_progress() -> None:
    lines: list[str] = []
    now = iter([100.0, 100.5, 101.25, 102.0, 103.0])
    printer = ProgressPrinter(lines.append, clock=lambda: next(now))
    running = _execution("wf", common_pb2.EXECUTION_STATE_RUNNING)
    done = _execution("wf", common_pb2.EXECUTION_STATE_SUCCEEDED)
    echo = _execution("c1", common_pb2.EXECUTION_STATE_SUCCEEDED, task="echo")
    printer(execution_pb2.WatchExecutionResponse(execution=running))
    # One snapshot with the workflow's end and its child's: the child's line must come first.
    printer(execution_pb2.WatchExecutionResponse(execution=done, children=[echo]))
    printer.finish(execution_pb2.GetExecutionResponse(execution=done, children=[echo]))
    assert lines == [
        "[  0.50s] examples.wf wf: running",
        "[  1.25s] task echo (core.echo) c1: succeeded",
        "[  2.00s] examples.wf wf: succeeded",
    ]


async def test_ticking_yields_none_while_nothing_arrives() -> None:
    async def slow() -> AsyncIterator[str]:
        await asyncio.sleep(0.3)
        yield "change"

    seen = [item async for item in ticking(slow(), 0.05)]
    assert seen[-1] == "change" and seen.count(None) >= 2
    assert [item async for item in ticking(slow(), None)] == ["change"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_watch_tree_prints_plain_causal_lines_off_a_terminal_and_redraws_on_one() -> None:
    def tree(state: str, task_state: str) -> TreeNode:
        task = TreeNode("wf/echo", "echo  core.echo", task_state, 10.0, 10.5 if task_state == "succeeded" else None)
        return TreeNode("wf", "examples.wf  wf", state, 10.0, 11.0 if state == "succeeded" else None, [task])

    plain = io.StringIO()
    display = TreeDisplay(plain)
    display.show(tree("running", "running"))
    display.show(tree("succeeded", "succeeded"))  # both ended in one update: the task's line first
    assert plain.getvalue().splitlines()[2:] == ["echo  core.echo: succeeded 0.5s", "examples.wf  wf: succeeded 1.0s"]
    assert "\x1b" not in plain.getvalue()
    terminal = _Terminal()
    live = TreeDisplay(terminal)
    live.show(tree("running", "running"))
    live.show(tree("running", "running"))  # a tick: the same tree redrawn in place
    assert terminal.getvalue().count("\x1b[2F\x1b[J") == 1
