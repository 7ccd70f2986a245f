"""Ordinary actions end to end on real services, against PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from pathlib import Path

import grpc
import pytest

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct, execution_state_from_proto
from attune.grpcutil.errors import violations_of
from attune.registry.v1 import registry_pb2
from tests.integration.cluster import Cluster

TESTPACK = Path(__file__).parent / "packs" / "testpack"


@pytest.fixture(scope="session")
async def testpack(cluster: Cluster) -> Cluster:
    await cluster.register_pack(TESTPACK)
    return cluster


def state(execution: execution_pb2.Execution) -> str:
    return execution_state_from_proto(execution.state)


async def test_shell_action_runs_on_a_worker(cluster: Cluster) -> None:
    reply = await cluster.run("core.echo", {"message": "hello attune"})
    assert state(reply.execution) == "succeeded", reply.execution.error
    result = dict_from_struct(reply.execution.result)
    assert result["stdout"] == "hello attune\n"
    assert result["exit_code"] == 0
    assert reply.execution.worker_id == "worker-1"


async def test_python_action_gets_parameters_on_stdin_with_defaults(testpack: Cluster) -> None:
    reply = await testpack.run("testpack.py_report", {"name": "ada", "token": "s3cret-value"})
    execution = reply.execution
    assert state(execution) == "succeeded", execution.error
    result = dict_from_struct(execution.result)
    # The action printed its secret back: stored masked (tests/security/test_secrets_e2e.py shows
    # that the action itself got the real value).
    assert result["params"] == {"count": 3, "color": "red", "name": "ada", "token": "********"}
    assert result["argv"] == [], "parameters must never be on the command line"
    assert result["execution_id"] == execution.id
    shown = dict_from_struct(execution.parameters)
    assert shown["count"] == 3 and shown["name"] == "ada"
    assert shown["token"] != "s3cret-value", "secret parameters are redacted in API responses"


async def test_noop_action_succeeds(cluster: Cluster) -> None:
    reply = await cluster.run("core.noop")
    assert state(reply.execution) == "succeeded"
    assert dict_from_struct(reply.execution.result)["exit_code"] == 0


async def test_nodejs_action_runs_when_node_is_installed(testpack: Cluster) -> None:
    assert shutil.which("node"), "node is installed on this machine; the nodejs runtime must be tested"
    reply = await testpack.run("testpack.node_env")
    assert state(reply.execution) == "succeeded", reply.execution.error
    assert dict_from_struct(reply.execution.result)["runtime"] == "node"


async def test_non_zero_exit_fails_with_the_exit_code(testpack: Cluster) -> None:
    reply = await testpack.run("testpack.fail")
    assert state(reply.execution) == "failed"
    result = dict_from_struct(reply.execution.result)
    assert result["exit_code"] == 3
    assert "something broke" in result["stderr"]
    assert reply.execution.error


async def test_unknown_action_is_not_found(cluster: Cluster) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cluster.request("nope.missing")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope.missing" in (err.value.details() or "")


async def test_bad_parameters_are_refused_with_field_violations(testpack: Cluster) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await testpack.request("testpack.py_report", {"count": 11, "color": "blue", "bogus": 1})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {v.field for v in violations_of(err.value)}
    assert {"parameters.count", "parameters.color", "parameters.name", "parameters.bogus"} <= fields, fields


async def test_retried_request_id_returns_the_same_execution(cluster: Cluster) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    first = await cluster.request("core.noop", request_id=request_id)
    second = await cluster.request("core.noop", request_id=request_id)
    assert first.id == second.id
    listed = await cluster.executions.ListExecutions(
        execution_pb2.ListExecutionsRequest(action_ref="core.noop", page_size=1000)
    )
    assert sum(1 for e in listed.executions if e.id == first.id) == 1


async def test_timeout_kills_the_process(testpack: Cluster) -> None:
    reply = await testpack.run("testpack.slow", {"seconds": 30}, timeout_seconds=0.5, timeout=20)
    assert state(reply.execution) == "timeout", reply.execution.error


async def test_cancel_kills_a_running_action(cluster: Cluster) -> None:
    execution = await cluster.request("core.sleep", {"seconds": 30})
    for _ in range(200):
        got = await cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=execution.id))
        if state(got.execution) == "running":
            break
        await asyncio.sleep(0.05)
    await cluster.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=execution.id))
    reply = await cluster.wait_terminal(execution.id, timeout=15)
    assert state(reply.execution) == "cancelled"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cluster.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=execution.id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_action_ref_is_immutable(testpack: Cluster) -> None:
    original = (await testpack.registry.GetAction(registry_pb2.GetActionRequest(ref="testpack.fail"))).action
    changed = registry_pb2.Action()
    changed.CopyFrom(original)
    changed.name = "renamed"
    changed.description = "should not be stored"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await testpack.registry.UpdateAction(registry_pb2.UpdateActionRequest(id=original.id, action=changed))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "name" in {v.field for v in violations_of(err.value)}
    after = (await testpack.registry.GetAction(registry_pb2.GetActionRequest(ref="testpack.fail"))).action
    assert after.description == original.description and after.name == "fail"


async def test_watch_streams_until_terminal(cluster: Cluster) -> None:
    execution = await cluster.request("core.echo", {"message": "watched"})
    updates = []
    async for update in cluster.executions.WatchExecution(
        execution_pb2.WatchExecutionRequest(id=execution.id), timeout=20
    ):
        updates.append(update.execution)
    assert [state(u) for u in updates][-1] == "succeeded", updates
    # The last view is built from the fields the completion feed carried, not read back: it must
    # be exactly what was stored.
    stored = (await cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=execution.id))).execution
    assert updates[-1] == stored


async def test_one_trace_id_across_scheduler_worker_and_completion(cluster: Cluster) -> None:
    reply = await cluster.run("core.echo", {"message": "traced"})
    trace_id = reply.execution.trace_id
    assert len(trace_id) == 32
    for _ in range(100):
        services = {s["service"] for s in cluster.spans() if s["trace_id"] == trace_id}
        if {"scheduler", "worker", "completion"} <= services:
            break
        await asyncio.sleep(0.05)
    assert {"scheduler", "worker", "completion"} <= services, services


async def test_secret_parameter_never_reaches_logs_or_spans(testpack: Cluster) -> None:
    secret = f"topsecret-{uuid.uuid4().hex}"
    reply = await testpack.run("testpack.py_report", {"name": "x", "token": secret})
    assert state(reply.execution) == "succeeded"
    await asyncio.sleep(0.2)
    for log in testpack.workdir.glob("*.log"):
        assert secret not in log.read_text(errors="replace"), f"secret leaked into {log.name}"
    assert secret not in json.dumps(testpack.spans())
