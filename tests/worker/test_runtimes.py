"""The worker's action runtimes, against real interpreters and real child processes."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from attune_services.worker.runtimes import (
    ActionLaunchError,
    ActionProcess,
    EntryPointMissing,
    RunRequest,
    RuntimeNotAvailable,
    detect_runtimes,
    run_action,
)
from attune_services.worker.runtimes.bench import measure_overhead
from tests.support.polling import eventually
from tests.worker.processes import gone, written

INTERPRETERS = detect_runtimes()


@pytest.fixture
def actions(tmp_path: Path) -> Path:
    folder = tmp_path / "mypack" / "actions"
    folder.mkdir(parents=True)
    return folder


# Each run its own execution id, as in production: the tests share one event loop, and a run's
# processes are found by the id in their environment.
_RUN_IDS = itertools.count(1)


def action(actions: Path, name: str, source: str, runtime: str = "shell", **fields: Any) -> RunRequest:
    script = actions / name
    script.write_text(source)
    fields.setdefault("parameters", {})
    return RunRequest(
        execution_id=f"exec-{next(_RUN_IDS)}",
        action_ref=f"mypack.{script.stem}",
        runtime=runtime,
        entry_point=script,
        working_dir=actions,
        **fields,
    )


# --- which runtimes a worker advertises -------------------------------------------------------


def test_detect_runtimes_lists_only_what_is_installed() -> None:
    assert INTERPRETERS["python"] == sys.executable
    assert INTERPRETERS["noop"] == "builtin"
    assert Path(INTERPRETERS["shell"]).name in ("bash", "sh")
    if shutil.which("node") or shutil.which("nodejs"):
        assert Path(INTERPRETERS["nodejs"]).name in ("node", "nodejs")
    else:
        assert "nodejs" not in INTERPRETERS


# --- each runtime -----------------------------------------------------------------------------


async def test_shell_action_reads_parameters_from_stdin(actions: Path) -> None:
    request = action(
        actions,
        "greet.sh",
        'read -r params\necho "{\\"params\\": $params}"\necho "a warning" >&2\n',
        parameters={"name": "ada", "count": 2},
    )
    outcome = await run_action(request, INTERPRETERS)
    assert outcome.state == "succeeded", outcome.error
    assert outcome.error is None
    assert outcome.exit_code == 0
    assert outcome.result["params"] == {"name": "ada", "count": 2}
    assert outcome.result["stderr"] == "a warning\n"
    assert outcome.result["exit_code"] == 0
    assert isinstance(outcome.result["duration_ms"], int)
    assert outcome.started_at <= outcome.finished_at


async def test_python_action(actions: Path) -> None:
    source = "import json, sys\np = json.load(sys.stdin)\nprint(json.dumps({'sum': p['a'] + p['b']}))\n"
    request = action(actions, "add.py", source, runtime="python", parameters={"a": 2, "b": 40})
    outcome = await run_action(request, INTERPRETERS)
    assert outcome.state == "succeeded", outcome.error
    assert outcome.result["sum"] == 42


async def test_nodejs_action(actions: Path) -> None:
    if "nodejs" not in INTERPRETERS:
        if os.environ.get("CI") == "true":
            pytest.fail("node is not installed, and CI must test the nodejs runtime")
        pytest.skip("node is not installed")
    source = (
        "let input = '';\n"
        "process.stdin.on('data', (chunk) => { input += chunk; });\n"
        "process.stdin.on('end', () => {\n"
        "  const p = JSON.parse(input);\n"
        "  console.log(JSON.stringify({ shout: p.word.toUpperCase() }));\n"
        "});\n"
    )
    request = action(actions, "shout.js", source, runtime="nodejs", parameters={"word": "hi"})
    outcome = await run_action(request, INTERPRETERS)
    assert outcome.state == "succeeded", outcome.error
    assert outcome.result["shout"] == "HI"


async def test_noop_succeeds_at_once_without_a_process(actions: Path) -> None:
    request = RunRequest(
        execution_id="exec-1",
        action_ref="core.noop",
        runtime="noop",
        entry_point=None,
        working_dir=actions,
        parameters={"ignored": True},
    )
    process = ActionProcess(request, INTERPRETERS)
    await process.start()
    assert process.pid is None
    outcome = await process.wait()
    assert outcome.state == "succeeded"
    assert outcome.result == {"stdout": "", "stderr": "", "exit_code": 0, "duration_ms": 0}


# --- parameters and environment ---------------------------------------------------------------

_REPORT_SELF = """\
import json, os, sys
params = json.load(sys.stdin)
cmdline = open("/proc/self/cmdline", "rb").read().decode()
print(json.dumps({"params": params, "cmdline": cmdline, "env": dict(os.environ)}))
"""


async def test_secret_parameter_reaches_stdin_only(actions: Path) -> None:
    secret = "hunter2-s3cr3t"
    request = action(
        actions,
        "login.py",
        _REPORT_SELF,
        runtime="python",
        parameters={"user": "ada", "password": secret},
        secret_names=frozenset({"password"}),
    )
    outcome = await run_action(request, INTERPRETERS)
    assert outcome.state == "succeeded", outcome.error
    assert outcome.result["params"]["password"] == secret
    assert secret not in outcome.result["cmdline"]
    assert "ada" not in outcome.result["cmdline"]  # no parameter at all on argv
    env = outcome.result["env"]
    assert all(secret not in value for value in env.values())
    assert "ATTUNE_PARAM_PASSWORD" not in env
    assert env["ATTUNE_PARAM_USER"] == "ada"


async def test_environment_names_the_execution(actions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTUNE_DATABASE_URL", "postgresql://worker-only")
    request = action(
        actions,
        "env.py",
        _REPORT_SELF,
        runtime="python",
        parameters={"name": "ada", "count": 3, "tags": ["a", "b"], "dry-run": True},
        extra_env={"ATTUNE_TRACEPARENT": "00-abc-def-01"},
    )
    env = (await run_action(request, INTERPRETERS)).result["env"]
    assert env["ATTUNE_EXECUTION_ID"] == request.execution_id
    assert env["ATTUNE_ACTION_REF"] == "mypack.env"
    assert env["ATTUNE_PACK_DIR"] == str(actions.parent)
    assert env["ATTUNE_PARAM_NAME"] == "ada"  # strings as they are
    assert env["ATTUNE_PARAM_COUNT"] == "3"  # everything else as JSON
    assert env["ATTUNE_PARAM_TAGS"] == '["a","b"]'
    assert env["ATTUNE_PARAM_DRY_RUN"] == "true"
    assert env["ATTUNE_TRACEPARENT"] == "00-abc-def-01"
    assert env["PATH"]
    assert "ATTUNE_DATABASE_URL" not in env  # the worker's own configuration stays out


async def test_parameters_larger_than_a_pipe_buffer(actions: Path) -> None:
    blob = "x" * 300_000
    source = "import json, sys\nprint(json.dumps({'size': len(json.load(sys.stdin)['blob'])}))\n"
    request = action(actions, "big.py", source, runtime="python", parameters={"blob": blob})
    outcome = await asyncio.wait_for(run_action(request, INTERPRETERS), 10)
    assert outcome.result["size"] == len(blob)


async def test_action_that_ignores_large_stdin_still_finishes(actions: Path) -> None:
    request = action(actions, "deaf.sh", "echo done\n", parameters={"blob": "x" * 300_000})
    outcome = await asyncio.wait_for(run_action(request, INTERPRETERS), 10)
    assert outcome.state == "succeeded", outcome.error
    assert outcome.result["stdout"] == "done\n"


# --- the result (§4.13) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ('{"answer": 42, "nested": {"ok": true}}', {"answer": 42, "nested": {"ok": True}}),
        ("[1, 2, 3]", {"data": [1, 2, 3]}),
        ("42", {"data": 42}),
        ('"just a string"', {"data": "just a string"}),
        ("hello world", {}),
        ('{"stdout": "mine", "exit_code": 7}', {}),  # the platform's keys win
    ],
    ids=["object", "list", "number", "json-string", "plain-text", "colliding-keys"],
)
async def test_stdout_becomes_the_result(actions: Path, stdout: str, expected: dict[str, Any]) -> None:
    (actions / "out.txt").write_text(stdout + "\n")
    outcome = await run_action(action(actions, "out.sh", "cat out.txt\n"), INTERPRETERS)
    assert outcome.result == {
        **expected,
        "stdout": stdout + "\n",
        "stderr": "",
        "exit_code": 0,
        "duration_ms": outcome.result["duration_ms"],
    }


async def test_nonzero_exit_fails_with_last_stderr_line(actions: Path) -> None:
    source = 'echo \'{"partial": true}\'\necho "first" >&2\necho "disk full" >&2\nexit 3\n'
    outcome = await run_action(action(actions, "fail.sh", source), INTERPRETERS)
    assert outcome.state == "failed"
    assert outcome.exit_code == 3
    assert outcome.error == "exit code 3: disk full"
    assert outcome.result["partial"] is True
    assert outcome.result["exit_code"] == 3


async def test_killed_by_a_signal_fails_naming_it(actions: Path) -> None:
    outcome = await run_action(action(actions, "crash.sh", "kill -KILL $$\n"), INTERPRETERS)
    assert outcome.state == "failed"
    assert outcome.exit_code == -9
    assert outcome.error == "killed by signal SIGKILL"


async def test_output_is_capped_without_blocking_the_child(actions: Path) -> None:
    five_mb = 5 * 1024 * 1024
    source = f"head -c {five_mb} /dev/zero | tr '\\0' o\nhead -c {five_mb} /dev/zero | tr '\\0' e >&2\n"
    request = action(actions, "flood.sh", source, output_limit_bytes=1000)
    outcome = await asyncio.wait_for(run_action(request, INTERPRETERS), 10)
    assert outcome.state == "succeeded", outcome.error
    marker = f"\n[... truncated {five_mb - 1000} bytes]"
    assert outcome.result["stdout"] == "o" * 1000 + marker
    assert outcome.result["stderr"] == "e" * 1000 + marker


# --- timeout and cancellation -----------------------------------------------------------------


async def test_timeout_sends_term_then_kill(actions: Path) -> None:
    source = "trap 'echo caught TERM >&2' TERM\necho started\nwhile :; do sleep 0.05; done\n"
    request = action(actions, "stubborn.sh", source, timeout_s=0.3, kill_grace_s=0.3)
    began = time.monotonic()
    outcome = await asyncio.wait_for(run_action(request, INTERPRETERS), 10)
    elapsed = time.monotonic() - began
    assert outcome.state == "timeout"
    assert outcome.error == "timed out after 0.3s"
    assert "caught TERM" in outcome.result["stderr"]  # TERM came first and was survived...
    assert outcome.exit_code == -9  # ...so KILL ended it, after the grace
    assert outcome.result["stdout"] == "started\n"
    assert 0.55 <= elapsed < 3


async def test_timeout_of_a_well_behaved_script_needs_no_grace(actions: Path) -> None:
    request = action(actions, "slow.sh", "sleep 30\n", timeout_s=0.2, kill_grace_s=5)
    began = time.monotonic()
    outcome = await asyncio.wait_for(run_action(request, INTERPRETERS), 10)
    assert outcome.state == "timeout"
    assert outcome.exit_code == -15
    assert time.monotonic() - began < 2


async def test_cancel_kills_the_whole_process_group(actions: Path) -> None:
    child_pid_file = actions / "child.pid"
    source = f"sleep 30 &\necho $! > {child_pid_file}\nwait\n"
    process = ActionProcess(action(actions, "busy.sh", source, kill_grace_s=5), INTERPRETERS)
    await process.start()
    assert process.pid is not None
    child_pid = int(await eventually(lambda: written(child_pid_file), within=5, what="the script to start its child"))
    assert not gone(child_pid)

    process.cancel()
    outcome = await asyncio.wait_for(process.wait(), 10)
    assert outcome.state == "cancelled"
    assert outcome.error == "cancelled"
    await eventually(lambda: gone(child_pid), within=2.0, what=f"child sleep {child_pid} to end after the cancel")


async def test_cancel_before_start_spawns_nothing(actions: Path) -> None:
    process = ActionProcess(action(actions, "never.sh", "touch ran\n"), INTERPRETERS)
    process.cancel()
    await process.start()
    outcome = await process.wait()
    assert outcome.state == "cancelled"
    assert process.pid is None
    assert not (actions / "ran").exists()


async def test_cancel_after_exit_changes_nothing(actions: Path) -> None:
    process = ActionProcess(action(actions, "quick.sh", "echo hi\n"), INTERPRETERS)
    await process.start()
    outcome = await process.wait()
    process.cancel()
    assert (await process.wait()) is outcome
    assert outcome.state == "succeeded"


async def test_cancelling_run_action_kills_the_process(actions: Path) -> None:
    pid_file = actions / "me.pid"
    request = action(actions, "long.sh", f"echo $$ > {pid_file}\nexec sleep 30\n", kill_grace_s=5)
    task = asyncio.create_task(run_action(request, INTERPRETERS))
    pid = int(await eventually(lambda: written(pid_file), within=5, what="the script to write its pid"))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: gone(pid), within=2.0, what=f"process {pid} to end after the cancel")


async def test_background_child_holding_the_pipes_does_not_hold_the_outcome(actions: Path) -> None:
    # The orphan keeps stdout, stderr and an unread 200 kB stdin open; the run still ends once
    # the drain window after the script's own exit has passed, and the orphan ends with it.
    pid_file = actions / "orphan.pid"
    source = f"sleep 30 &\necho $! > {pid_file}\necho done\n"
    request = action(actions, "daemon.sh", source, parameters={"blob": "x" * 200_000})
    began = time.monotonic()
    outcome = await asyncio.wait_for(run_action(request, INTERPRETERS), 10)
    assert outcome.state == "succeeded", outcome.error
    assert outcome.result["stdout"] == "done\n"
    assert time.monotonic() - began < 2
    orphan = int(written(pid_file))
    await eventually(lambda: gone(orphan), within=2.0, what=f"the orphan {orphan} to end with its run")


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["nodejs", "ruby", "workflow"])
async def test_missing_runtime_is_refused_naming_what_exists(actions: Path, runtime: str) -> None:
    available = {"shell": "/bin/sh", "python": sys.executable, "noop": "builtin"}
    request = action(actions, "x.js", "", runtime=runtime)
    with pytest.raises(RuntimeNotAvailable) as caught:
        await ActionProcess(request, available).start()
    message = str(caught.value)
    assert f'runtime "{runtime}"' in message
    assert "mypack.x" in message
    assert "available: noop, python, shell" in message


async def test_missing_entry_point_is_refused(actions: Path) -> None:
    request = RunRequest(
        execution_id="exec-1",
        action_ref="mypack.ghost",
        runtime="shell",
        entry_point=actions / "ghost.sh",
        working_dir=actions,
        parameters={},
    )
    with pytest.raises(EntryPointMissing) as caught:
        await ActionProcess(request, INTERPRETERS).start()
    assert str(caught.value) == (f'action "mypack.ghost": entry point missing (no file at {actions / "ghost.sh"})')

    without = RunRequest(
        execution_id="exec-1",
        action_ref="mypack.ghost",
        runtime="python",
        entry_point=None,
        working_dir=actions,
        parameters={},
    )
    with pytest.raises(EntryPointMissing, match="none given"):
        await ActionProcess(without, INTERPRETERS).start()


async def test_interpreter_that_cannot_be_executed(actions: Path) -> None:
    request = action(actions, "hi.sh", "echo hi\n")
    expected = r'action "mypack.hi": cannot start /nonexistent/bash'
    with pytest.raises(ActionLaunchError, match=expected):
        await ActionProcess(request, {"shell": "/nonexistent/bash"}).start()


async def test_runs_leave_no_file_descriptors_behind(actions: Path) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    small = action(actions, "small.sh", "cat > /dev/null; echo ok\n", parameters={"a": 1})
    large = action(actions, "large.sh", "echo ok\n", parameters={"blob": "x" * 200_000})
    await run_action(small, INTERPRETERS)  # warm up whatever the loop keeps open
    before = open_fds()
    for request in (small, large, small, large):
        assert (await run_action(request, INTERPRETERS)).state == "succeeded"
    await asyncio.sleep(0.05)  # transports close in the loop's next callbacks
    assert open_fds() == before


# --- overhead ---------------------------------------------------------------------------------


def test_measure_overhead_reports_a_figure() -> None:
    figures = measure_overhead(samples=5)
    assert 0 < figures["shell_overhead_ms"] < 100
    assert figures["process_lifetime_ms"] > 0
