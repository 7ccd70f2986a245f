"""The `attune` script against real running services: the JSON contract and exit statuses of
docs/architecture.md, Interfaces; one-line errors, pack registration, execution commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.e2e import Outcome, attune
from tests.integration.cluster import Cluster

pytestmark = pytest.mark.integration

CONTRACT_KEYS = {"id", "action_ref", "state", "result", "error", "children"}


def env_of(cluster: Cluster) -> dict[str, str]:
    return cluster.cli_env()


def assert_one_error_line(outcome: Outcome, *needles: str) -> None:
    lines = outcome.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("attune: error: "), outcome.stderr
    assert "Traceback" not in outcome.stderr
    for needle in needles:
        assert needle in lines[-1], outcome.stderr


async def test_run_wait_json_succeeds(ready_cluster: Cluster) -> None:
    outcome = await attune(
        "run", "core.echo", "-p", "message=hi", "--wait", "--output", "json", env=env_of(ready_cluster)
    )
    assert outcome.code == 0, outcome.stderr
    doc = outcome.json()
    assert set(doc) == CONTRACT_KEYS
    assert (doc["action_ref"], doc["state"], doc["error"], doc["children"]) == ("core.echo", "succeeded", None, [])
    assert doc["result"]["stdout"].strip() == "hi"
    assert doc["result"]["exit_code"] == 0


async def test_a_failed_execution_exits_1_with_state_failed(ready_cluster: Cluster) -> None:
    outcome = await attune(
        "run", "core.local", "-p", "cmd=exit 3", "--wait", "--output", "json", env=env_of(ready_cluster)
    )
    assert outcome.code == 1
    doc = outcome.json()
    assert doc["state"] == "failed"
    assert doc["id"] and doc["error"]
    assert doc["result"]["exit_code"] == 3


async def test_an_unknown_ref_is_one_json_object_and_one_line(ready_cluster: Cluster) -> None:
    outcome = await attune("run", "nope.nothing", "--wait", "--output", "json", env=env_of(ready_cluster))
    assert outcome.code == 1
    doc = outcome.json()
    assert set(doc) == CONTRACT_KEYS
    assert doc["state"] is None and doc["id"] is None
    assert "nope.nothing" in doc["error"]
    assert_one_error_line(outcome, "nope.nothing")


async def test_a_workflow_lists_its_children_with_their_task(ready_cluster: Cluster) -> None:
    outcome = await attune(
        "run",
        "examples.single_echo",
        "-p",
        "message=from the cli",
        "--wait",
        "--output",
        "json",
        env=env_of(ready_cluster),
    )
    assert outcome.code == 0, outcome.stderr
    doc = outcome.json()
    assert doc["state"] == "succeeded"
    assert doc["result"]["succeeded"] is True and doc["result"]["message"] == "from the cli"
    [child] = doc["children"]
    assert (child["task"], child["action_ref"], child["state"]) == ("echo", "core.echo", "succeeded")
    assert child["result"]["stdout"].strip() == "from the cli"
    # progress went to stderr, never into the JSON on stdout, in causal order, each line timed
    lines = outcome.stderr.splitlines()
    assert "requested" in lines[0]
    task_done = next(i for i, line in enumerate(lines) if f"task echo (core.echo) {child['id']}: succeeded" in line)
    workflow_done = next(i for i, line in enumerate(lines) if f"{doc['id']}: succeeded" in line)
    assert task_done < workflow_done == len(lines) - 1, outcome.stderr
    assert all(re.match(r"\[ *\d+\.\d\ds\] ", line) for line in lines), outcome.stderr


async def test_named_item_variables_deploy_each_command_to_its_host(ready_cluster: Cluster) -> None:
    hosts, commands = '["web1", "web2", "db1"]', '["restart nginx", "reload", "vacuum"]'
    outcome = await attune(
        "run",
        "examples.deploy",
        "-p",
        f"hosts={hosts}",
        "-p",
        f"commands={commands}",
        "--wait",
        "--output",
        "json",
        env=env_of(ready_cluster),
    )
    assert outcome.code == 0, outcome.stderr
    doc = outcome.json()
    deployed = ["#0 web1: restart nginx", "#1 web2: reload", "#2 db1: vacuum"]
    assert (doc["state"], doc["result"]) == ("succeeded", {"succeeded": True, "deployed": deployed})
    assert {child["task"] for child in doc["children"]} == {"deploy"}
    assert sorted(child["result"]["stdout"].strip() for child in doc["children"]) == deployed


async def test_a_handler_then_do_fail_exits_1_with_the_output_map(ready_cluster: Cluster) -> None:
    outcome = await attune(
        "run", "examples.fail_after_handler", "--wait", "--output", "json", env=env_of(ready_cluster)
    )
    assert outcome.code == 1, outcome.stderr
    doc = outcome.json()
    error = 'task "log" requested fail (transition next[0])'
    assert (doc["state"], doc["error"]) == ("failed", error)
    assert doc["result"] == {"succeeded": False, "error": error, "reason": "exit code 3: table locked"}
    assert [child["task"] for child in doc["children"]] == ["migrate", "log"]


async def test_a_bad_parameter_type_is_one_readable_line(ready_cluster: Cluster) -> None:
    outcome = await attune(
        "run", "examples.flaky", "-p", "succeed_on_attempt=many", "--wait", env=env_of(ready_cluster)
    )
    assert outcome.code == 1
    assert outcome.stdout == ""
    assert_one_error_line(outcome, "parameter 'succeed_on_attempt'", "integer")


async def test_a_server_side_violation_names_the_parameter(ready_cluster: Cluster) -> None:
    # Typed correctly by the CLI, refused by the scheduler's schema check (minimum: 1).
    outcome = await attune(
        "run", "examples.flaky", "-p", "succeed_on_attempt=0", "--output", "json", env=env_of(ready_cluster)
    )
    assert outcome.code == 1
    doc = outcome.json()
    assert doc["state"] is None and "succeed_on_attempt" in doc["error"]
    assert_one_error_line(outcome, "succeed_on_attempt")


async def test_run_without_wait_prints_the_id_and_get_shows_it(ready_cluster: Cluster) -> None:
    env = env_of(ready_cluster)
    submitted = await attune("run", "core.echo", "-p", "message=later", env=env)
    assert submitted.code == 0, submitted.stderr
    execution_id = submitted.stdout.strip()
    await ready_cluster.wait_terminal(execution_id)
    shown = await attune("execution", "get", execution_id, "--output", "json", env=env)
    assert shown.code == 0 and shown.json()["state"] == "succeeded"
    listed = await attune(
        "execution", "list", "--action", "core.echo", "--state", "succeeded", "--output", "json", env=env
    )
    assert execution_id in [e["id"] for e in listed.json()["executions"]]


async def test_watch_prints_a_line_per_change_when_not_a_terminal(ready_cluster: Cluster) -> None:
    env = env_of(ready_cluster)
    submitted = await attune("run", "examples.single_echo", env=env)
    outcome = await attune("execution", "watch", submitted.stdout.strip(), env=env)
    assert outcome.code == 0, outcome.stderr
    assert "succeeded" in outcome.stdout.splitlines()[-1] or "succeeded" in outcome.stdout
    assert any("echo" in line and "core.echo" in line for line in outcome.stdout.splitlines())


async def test_pack_register_prints_actions_and_refusals_one_per_line(ready_cluster: Cluster, tmp_path: Path) -> None:
    env = env_of(ready_cluster)
    pack = tmp_path / "clipack"
    (pack / "actions").mkdir(parents=True)
    (pack / "pack.yaml").write_text("ref: clipack\nlabel: CLI pack\nversion: '1.0'\ndescription: test\n")
    (pack / "actions" / "hello.yaml").write_text(
        "ref: clipack.hello\nlabel: Hello\ndescription: Says hello.\nrunner_type: shell\nentry_point: hello.sh\n"
    )
    (pack / "actions" / "hello.sh").write_text("echo hello\n")
    (pack / ".hidden").write_text("never uploaded")
    registered = await attune("pack", "register", str(pack), env=env)
    assert registered.code == 0, registered.stderr
    assert "clipack.hello" in registered.stdout
    listed = await attune("action", "list", "--pack", "clipack", env=env)
    assert "clipack.hello" in listed.stdout

    (pack / "actions" / "broken.yaml").write_text("ref: clipack.broken\nrunner_type: teleport\n")
    (pack / "actions" / "worse.yaml").write_text("ref: clipack.worse\nrunner_type: shell\nentry_point: missing.sh\n")
    refused = await attune("pack", "register", str(pack), env=env)
    assert refused.code == 1
    assert "Traceback" not in refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert lines[0].startswith("attune: error: ") and "refused" in lines[0]
    assert any("broken.yaml" in line for line in lines[1:]) and any("worse.yaml" in line for line in lines[1:])


async def test_do_retry_and_do_noop_through_attune_run(ready_cluster: Cluster, tmp_path: Path) -> None:
    """`retry` runs the failing task 3 more times, then the failure stands; `noop` handles one."""
    env = env_of(ready_cluster)
    pack = tmp_path / "cmdpack"
    (pack / "workflows").mkdir(parents=True)
    (pack / "pack.yaml").write_text("ref: cmdpack\nlabel: Engine commands\nversion: '1.0'\ndescription: test\n")
    task = "  - name: flaky\n    action: core.local\n    input: {{cmd: 'exit 3'}}\n    next:\n      - do: [{command}]\n"
    for name, command in (("retried", "retry"), ("handled", "noop")):
        (pack / "workflows" / f"{name}.workflow.yaml").write_text(
            f"ref: cmdpack.{name}\nversion: 1\ntasks:\n" + task.format(command=command)
        )
    registered = await attune("pack", "register", str(pack), env=env)
    assert registered.code == 0, registered.stderr

    retried = await attune("run", "cmdpack.retried", "--wait", "--output", "json", env=env)
    assert retried.code == 1, retried.stderr
    doc = retried.json()
    assert doc["state"] == "failed" and "flaky" in doc["error"], doc
    assert [child["task"] for child in doc["children"]] == ["flaky"] * 4
    assert all(child["state"] == "failed" for child in doc["children"])

    handled = await attune("run", "cmdpack.handled", "--wait", "--output", "json", env=env)
    assert handled.code == 0, handled.stderr
    doc = handled.json()
    assert doc["state"] == "succeeded" and [child["state"] for child in doc["children"]] == ["failed"]
