"""The bundled example workflows do what they say: each is driven through the workflow engine,
its children run as real processes from the pack's own scripts (no services involved).

Children run one at a time and timers fire at once; the concurrency and timing semantics are
the engine's own tests. What this checks is the examples: their templates, inputs that satisfy
each child's parameter schema, and the outputs they promise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from attune.packs import ActionDefinition, PackBundle, bundled_pack_path, load_pack, validate_parameters

engine = pytest.importorskip("attune.engine")

Outcome = tuple[str, dict[str, Any]]  # (terminal state, result)


class ExampleRunner:
    """Runs actions of the bundled packs: scripts as processes, workflows through the engine."""

    def __init__(self, tmp_path: Path) -> None:
        core = load_pack(bundled_pack_path("core"))
        examples = load_pack(bundled_pack_path("examples"), known_action_refs=[a.ref for a in core.actions])
        self.packs: dict[str, PackBundle] = {"core": core, "examples": examples}
        self.tmp = tmp_path
        self.started: dict[str, list[str]] = {}  # workflow ref -> task names in start order

    def run(self, ref: str, params: dict[str, Any] | None = None, *, depth: int = 0) -> Outcome:
        action = self.packs[ref.partition(".")[0]].action(ref)
        validated = validate_parameters(action.parameters, params or {})
        if action.runner_type == "noop":
            return "succeeded", {}
        if action.runner_type == "workflow":
            return self._workflow(action, validated, depth)
        return self._process(action, validated)

    def _process(self, action: ActionDefinition, params: dict[str, Any]) -> Outcome:
        assert action.entry_point is not None
        pack_dir = bundled_pack_path(action.pack)
        interpreter = {"shell": "bash", "python": sys.executable, "nodejs": "node"}[action.runner_type]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(self.tmp)}
        secrets = {n for n, s in action.parameters.items() if s["secret"]}
        for name, value in params.items():
            if name not in secrets:
                env[f"ATTUNE_PARAM_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        done = subprocess.run(
            [interpreter, str(pack_dir / action.entry_point)],
            input=json.dumps(params),
            env=env,
            cwd=pack_dir / "actions",
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        result: dict[str, Any] = {"stdout": done.stdout, "stderr": done.stderr, "exit_code": done.returncode}
        try:
            parsed = json.loads(done.stdout)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            result = {**parsed, **result}
        return ("succeeded" if done.returncode == 0 else "failed"), result

    def _workflow(self, action: ActionDefinition, params: dict[str, Any], depth: int) -> Outcome:
        assert action.workflow_yaml is not None and action.workflow_source is not None
        wf = engine.compile_workflow(engine.parse_workflow(action.workflow_yaml, source=action.workflow_source))
        state = engine.WorkflowState.new(parameters=params, depth=depth)
        started = self.started.setdefault(action.ref, [])
        commands = list(engine.start(wf, state, now=0.0).commands)
        timers: list[tuple[float, str]] = []
        while True:
            if not commands:
                assert timers, f"{action.ref} is stuck with nothing to run"
                timers.sort()
                fire_at, timer_id = timers.pop(0)
                commands += engine.timer_fired(wf, state, timer_id, now=fire_at).commands
                continue
            command = commands.pop(0)
            if isinstance(command, engine.FinishWorkflow):
                return command.status, command.result | ({"error": command.error} if command.error else {})
            if isinstance(command, engine.SetTimer):
                timers.append((command.fire_at, command.timer_id))
            elif isinstance(command, engine.CancelTimer):
                timers = [t for t in timers if t[1] != command.timer_id]
            elif isinstance(command, engine.StartTask):
                started.append(command.key.task)
                status, result = self.run(command.action_ref, command.input, depth=depth + 1)
                ended = engine.TaskEnded(command.key, status, result)
                commands += engine.task_ended(wf, state, ended, now=0.0).commands


@pytest.fixture
def runner(tmp_path: Path) -> ExampleRunner:
    return ExampleRunner(tmp_path)


def test_single_echo(runner: ExampleRunner) -> None:
    assert runner.run("examples.single_echo") == (
        "succeeded",
        {"succeeded": True, "message": "Hello from an Attune workflow"},
    )
    assert runner.run("examples.single_echo", {"message": "hi"})[1]["message"] == "hi"


def test_sequence_publishes_from_task_to_task(runner: ExampleRunner) -> None:
    assert runner.run("examples.sequence", {"name": "ada"}) == (
        "succeeded",
        {"succeeded": True, "greeting": "Hello, ada", "shouted": "HELLO, ADA!"},
    )
    assert runner.started["examples.sequence"] == ["greet", "shout"]


@pytest.mark.parametrize(
    ("fail", "tasks", "outcome"),
    [
        (True, ["risky", "recover"], "failed with exit code 1, recovered"),
        (False, ["risky", "celebrate"], "it worked"),
    ],
)
def test_failure_handler(runner: ExampleRunner, fail: bool, tasks: list[str], outcome: str) -> None:
    assert runner.run("examples.failure_handler", {"fail": fail}) == (
        "succeeded",
        {"succeeded": True, "outcome": outcome},
    )
    assert runner.started["examples.failure_handler"] == tasks


def test_fail_after_handler(runner: ExampleRunner) -> None:
    assert runner.run("examples.fail_after_handler") == (
        "failed",
        {
            "succeeded": False,
            "error": 'task "log" requested fail (transition next[0])',
            "reason": "exit code 3: table locked",
        },
    )
    assert runner.started["examples.fail_after_handler"] == ["migrate", "log"]
    assert runner.run("examples.fail_after_handler", {"fail": False}) == (
        "succeeded",
        {"succeeded": True, "reason": "none"},
    )


def test_parallel_join_runs_the_join_once(runner: ExampleRunner) -> None:
    assert runner.run("examples.parallel_join") == (
        "succeeded",
        {"succeeded": True, "combined": "alpha + beta + gamma"},
    )
    started = runner.started["examples.parallel_join"]
    assert sorted(started) == ["combine", "fetch_a", "fetch_b", "fetch_c", "start"]
    assert started[0] == "start" and started[-1] == "combine"


@pytest.mark.parametrize("count", [0, 3])
def test_countdown_loops(runner: ExampleRunner, count: int) -> None:
    assert runner.run("examples.countdown", {"count": count}) == ("succeeded", {"succeeded": True, "ticks": count})
    assert runner.started["examples.countdown"] == ["init"] + ["check", "tick"] * count + ["check", "liftoff"]


def test_with_items_greets_in_item_order(runner: ExampleRunner) -> None:
    status, result = runner.run("examples.with_items", {"names": ["ada", "grace", "ken"]})
    assert (status, result) == (
        "succeeded",
        {"succeeded": True, "greetings": ["#0: hello, ada", "#1: hello, grace", "#2: hello, ken"]},
    )


def test_deploy_pairs_hosts_with_commands_by_name(runner: ExampleRunner) -> None:
    status, result = runner.run("examples.deploy", {"hosts": ["web1", "db1", "spare"], "commands": ["up", "vacuum"]})
    assert (status, result) == ("succeeded", {"succeeded": True, "deployed": ["#0 web1: up", "#1 db1: vacuum"]})


def test_retry_until_the_flaky_task_succeeds(runner: ExampleRunner) -> None:
    assert runner.run("examples.retry") == ("succeeded", {"succeeded": True, "attempts": 3})
    assert runner.started["examples.retry"] == ["flaky"] * 3


def test_retry_gives_up_after_its_count(runner: ExampleRunner) -> None:
    status, result = runner.run("examples.retry", {"succeed_on_attempt": 9})
    assert status == "failed" and '"flaky"' in result["error"]
    assert runner.started["examples.retry"] == ["flaky"] * 5  # the run and 4 retries


def test_nested_workflows(runner: ExampleRunner) -> None:
    assert runner.run("examples.nested", {"name": "ken"}) == (
        "succeeded",
        {"succeeded": True, "shouted": "HELLO, KEN!", "echoed": "the inner workflow said HELLO, KEN!"},
    )
    assert runner.started["examples.nested"] == ["inner_sequence", "inner_echo"]
    assert runner.started["examples.sequence"] == ["greet", "shout"]


def test_core_local_exits_with_the_commands_status(runner: ExampleRunner) -> None:
    status, result = runner.run("core.local", {"cmd": "echo out; echo err >&2; exit 3"})
    assert (status, result["exit_code"], result["stdout"], result["stderr"]) == ("failed", 3, "out\n", "err\n")
    assert runner.run("core.local", {"cmd": "cat"})[1]["stdout"] == ""  # stdin is not the parameters


def test_core_echo_and_sleep(runner: ExampleRunner) -> None:
    assert runner.run("core.echo", {"message": "a  $HOME `x`"})[1]["stdout"] == "a  $HOME `x`\n"
    assert runner.run("core.sleep", {"seconds": 0.01})[0] == "succeeded"


def test_python_example(runner: ExampleRunner) -> None:
    status, result = runner.run("examples.py_sum", {"numbers": [1, 2, 3.5]})
    assert (status, result["sum"], result["count"]) == ("succeeded", 6.5, 3)


@pytest.mark.skipif(shutil.which("node") is None, reason="node.js is not installed")
def test_nodejs_example(runner: ExampleRunner) -> None:
    status, result = runner.run("examples.node_hello", {"name": "ada", "excited": True})
    assert (status, result["greeting"]) == ("succeeded", "Hello, ada!")
