"""Errors are codes, not leaks (issue #13): bad input is INVALID_ARGUMENT naming the field, a
missing thing NOT_FOUND, a bug INTERNAL with an error id the log has; never UNKNOWN, never an
exception's text, SQL or a traceback. Against the shared secure cluster, which stays healthy.

Outages (UNAVAILABLE, health) are in test_health.py; limits in test_request_limits.py.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

from attune.auth.v1 import auth_pb2, auth_pb2_grpc
from attune.config import Settings
from attune.execution.v1 import execution_pb2, execution_pb2_grpc
from attune.grpcutil.undecodable import undecodable_violation
from attune.ids import new_id
from attune.logs import ThrottledLog
from attune.registry.v1 import registry_pb2
from attune.storage import Database
from attune.storage.schema import executions
from attune.workflow.v1 import workflow_pb2
from attune_services.cli.client import Client
from attune_services.cli.launcher import free_port
from attune_services.cli.main import run as attune_cli
from tests.hostile.errortools import assert_serving, count, fields, refusal
from tests.integration.cluster import Cluster


@pytest.fixture
async def db(cluster: Cluster) -> AsyncIterator[Database]:
    """The cluster's database, read directly to see what was stored."""
    database = Database(cluster.database_url)
    yield database
    await database.close()


async def execution_count(db: Database) -> int:
    return await count(db, executions)


def raw(cluster: Cluster, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    """A method of the scheduler called with request bytes as given (no serializer)."""
    return cluster.channel.unary_unary(method, request_serializer=None, response_deserializer=None)


def field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    size = len(payload)
    prefix = bytearray([number << 3 | 2])
    while True:
        byte, size = size & 0x7F, size >> 7
        prefix.append(byte | (0x80 if size else 0))
        if not size:
            return bytes(prefix) + payload


def struct_entry(key: bytes, value: bytes) -> bytes:
    """One entry of a google.protobuf.Struct (fields = 1: key = 1, value = 2)."""
    return field(1, field(1, key) + field(2, value))


async def test_invalid_utf8_in_a_string_field_is_invalid_argument_naming_it(cluster: Cluster, db: Database) -> None:
    err = await refusal(raw(cluster, "/attune.execution.v1.ExecutionService/GetExecution")(field(1, b"\xff\xfe")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fields(err) == ["id"]
    before = await execution_count(db)
    message = struct_entry(b"message", field(3, b"hi \xc3"))  # Value.string_value = 3, cut mid-character
    request = field(1, b"core.echo") + field(2, message)
    err = await refusal(raw(cluster, "/attune.execution.v1.ExecutionService/RequestExecution")(request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fields(err) == ["parameters.message"] and "UTF-8" in (err.details() or "")
    assert await execution_count(db) == before
    await assert_serving(cluster)


async def test_parameters_nested_past_what_protobuf_decodes_are_invalid_argument(
    cluster: Cluster, db: Database
) -> None:
    nested = b""
    for _ in range(40):  # {"numbers": {"a": {"a": …}}}: protobuf's parser gives up near 33 levels
        nested = field(5, field(1, field(1, b"a") + field(2, nested)))  # Value.struct_value = 5
    before = await execution_count(db)
    request = field(1, b"examples.py_sum") + field(2, struct_entry(b"numbers", nested))
    err = await refusal(raw(cluster, "/attune.execution.v1.ExecutionService/RequestExecution")(request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fields(err) == ["parameters.numbers"] and "nested too deeply" in (err.details() or "")
    assert await execution_count(db) == before
    await assert_serving(cluster)


async def test_a_value_no_enum_defines_is_invalid_argument(cluster: Cluster) -> None:
    unknown: Any = 99
    err = await refusal(cluster.executions.ListExecutions(execution_pb2.ListExecutionsRequest(state=unknown)))
    assert (err.code(), fields(err)) == (grpc.StatusCode.INVALID_ARGUMENT, ["state"])
    err = await refusal(cluster.workflows.ListWorkflowRuns(workflow_pb2.ListWorkflowRunsRequest(state=unknown)))
    assert (err.code(), fields(err)) == (grpc.StatusCode.INVALID_ARGUMENT, ["state"])
    tokens = auth_pb2_grpc.TokenServiceStub(cluster.channel)
    err = await refusal(tokens.CreateToken(auth_pb2.CreateTokenRequest(name=f"t-{new_id()[-6:]}", role=unknown)))
    assert (err.code(), fields(err)) == (grpc.StatusCode.INVALID_ARGUMENT, ["role"])
    await assert_serving(cluster)


async def test_an_empty_id_is_invalid_argument_naming_the_field(cluster: Cluster) -> None:
    calls: dict[str, list[Awaitable[Any]]] = {
        "id": [
            cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id="")),
            cluster.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id="")),
        ],
        "execution_id": [
            cluster.workflows.GetWorkflowRun(workflow_pb2.GetWorkflowRunRequest(execution_id="")),
            cluster.workflows.CancelWorkflow(workflow_pb2.CancelWorkflowRequest(execution_id="")),
        ],
    }
    for name, refused in calls.items():
        for call in refused:
            err = await refusal(call)
            assert (err.code(), fields(err)) == (grpc.StatusCode.INVALID_ARGUMENT, [name])
    watch = cluster.executions.WatchExecution(execution_pb2.WatchExecutionRequest(id=""))
    err = await refusal(watch.read())
    assert (err.code(), fields(err)) == (grpc.StatusCode.INVALID_ARGUMENT, ["id"])
    await assert_serving(cluster)


async def test_unknown_ids_are_not_found_also_through_the_coordinator(cluster: Cluster) -> None:
    unknown = new_id()
    calls: list[Awaitable[Any]] = [
        cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=unknown)),
        # Forwarded to the coordinator: its NOT_FOUND passes through (it was UNKNOWN TypeError).
        cluster.workflows.GetWorkflowRun(workflow_pb2.GetWorkflowRunRequest(execution_id=unknown)),
        cluster.workflows.CancelWorkflow(workflow_pb2.CancelWorkflowRequest(execution_id=unknown)),
    ]
    for call in calls:
        err = await refusal(call)
        assert err.code() == grpc.StatusCode.NOT_FOUND and unknown in (err.details() or "")
    await assert_serving(cluster)


async def test_a_huge_value_is_refused_or_not_found_without_being_echoed_whole(cluster: Cluster, db: Database) -> None:
    # A 10 KB ref used to come back in the status message and its details, past the client's
    # 16 KiB metadata limit: RESOURCE_EXHAUSTED "received metadata size exceeds hard limit".
    huge = "a" * 10_000
    before = await execution_count(db)
    err = await refusal(cluster.request(huge))
    assert (err.code(), fields(err)) == (grpc.StatusCode.INVALID_ARGUMENT, ["action_ref"])
    assert "10000 characters" in (err.details() or "") and len(err.details() or "") < 200
    err = await refusal(cluster.registry.GetAction(registry_pb2.GetActionRequest(ref=huge)))
    assert (err.code(), fields(err)) == (grpc.StatusCode.INVALID_ARGUMENT, ["ref"])
    err = await refusal(cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=huge)))
    assert err.code() == grpc.StatusCode.NOT_FOUND and len(err.details() or "") < 200
    assert await execution_count(db) == before
    await assert_serving(cluster)


async def test_a_timeout_that_is_not_a_finite_number_is_refused(cluster: Cluster, db: Database) -> None:
    before = await execution_count(db)
    for timeout in (math.nan, math.inf, -1.0):
        err = await refusal(cluster.request("core.noop", timeout_seconds=timeout))
        assert (err.code(), fields(err)) == (grpc.StatusCode.INVALID_ARGUMENT, ["timeout_seconds"])
    assert await execution_count(db) == before
    await assert_serving(cluster)


@pytest.mark.parametrize("timeout", ["nan", "inf", "-1"])
def test_the_cli_refuses_a_timeout_that_is_not_a_finite_number(
    timeout: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A usage error, before any connection: `float("nan")` parsed, and NaN meant no timeout.
    assert attune_cli(["--address", "127.0.0.1:9", "run", "core.noop", "--timeout", timeout]) == 2
    err = capsys.readouterr().err
    assert "argument --timeout: must be a finite number of seconds, not negative" in err


async def test_a_bug_is_internal_with_an_error_id_that_the_log_has(cluster: Cluster, db: Database) -> None:
    """A row the code cannot read (here: parameters that are not JSON) stands for any bug."""
    broken = new_id()
    now = time.time()
    row = {"id": broken, "action_ref": "core.noop", "runner_type": "noop", "state": "succeeded"}
    async with db.write() as conn:
        await conn.execute(executions.insert().values(**row, parameters="{not json", created_at=now, updated_at=now))
    try:
        err = await refusal(cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=broken)))
    finally:
        async with db.write() as conn:
            await conn.execute(executions.delete().where(executions.c.id == broken))
    assert err.code() == grpc.StatusCode.INTERNAL
    found = re.fullmatch(r"internal error; the service logged it with error id ([0-9a-f]{12})", err.details() or "")
    assert found is not None, err.details()
    logged = [
        json.loads(line)
        for line in (cluster.workdir / "scheduler.log").read_text().splitlines()
        if found[1] in line and line.startswith("{")
    ]
    assert len(logged) == 1 and logged[0]["error_id"] == found[1]
    assert "Traceback" in logged[0]["exc"] and "JSONDecodeError" in logged[0]["exc"]
    await assert_serving(cluster)


class _FlakyExecutions(execution_pb2_grpc.ExecutionServiceServicer):
    """Answers GetExecution UNAVAILABLE `failures` times, then the execution."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def GetExecution(
        self, request: execution_pb2.GetExecutionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> execution_pb2.GetExecutionResponse:
        self.calls += 1
        if self.calls <= self.failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the database is unavailable; retry shortly")
        return execution_pb2.GetExecutionResponse(execution=execution_pb2.Execution(id=request.id))


@pytest.mark.parametrize("failures", [3, 10])
async def test_the_cli_client_retries_unavailable_a_bounded_number_of_times(failures: int) -> None:
    servicer = _FlakyExecutions(failures)
    server = grpc.aio.server()
    execution_pb2_grpc.add_ExecutionServiceServicer_to_server(servicer, server)
    address = f"127.0.0.1:{server.add_insecure_port(f'127.0.0.1:{free_port()}')}"
    await server.start()
    try:
        async with Client(address, Settings()) as client:
            request = execution_pb2.GetExecutionRequest(id="e1")
            if failures == 3:  # three retries: the fourth call answers
                assert (await client.executions.GetExecution(request, timeout=10)).execution.id == "e1"
            else:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await client.executions.GetExecution(request, timeout=10)
                assert "is unavailable: the database is unavailable" in client.error(caught.value).message
    finally:
        await server.stop(None)
    assert servicer.calls == 4


def test_a_repeated_failure_is_logged_once_per_interval_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    throttled = ThrottledLog(logging.getLogger("tests.hostile.throttled"), interval=0.2)
    with caplog.at_level(logging.WARNING, logger="tests.hostile.throttled"):
        logged = [throttled.warning("database unavailable", "request %d failed", i) for i in range(50)]
        assert throttled.warning("another kind", "something else")  # kinds are counted apart
        time.sleep(0.25)
        assert throttled.warning("database unavailable", "request %d failed", 50)
    assert logged == [True] + [False] * 49
    lines = [(r.getMessage(), getattr(r, "repeated", 0)) for r in caplog.records]
    assert lines == [
        ("request 0 failed", 0),
        ("something else", 0),
        ("request 50 failed (and 49 more like it since the last such line)", 49),
    ]


def _list(*values: bytes) -> bytes:
    """A google.protobuf.Value holding a list of the given Values (list_value = 6, values = 1)."""
    return field(6, b"".join(field(1, v) for v in values))


@pytest.mark.parametrize(
    ("descriptor", "data", "expected"),
    [
        (execution_pb2.GetExecutionRequest.DESCRIPTOR, field(1, b"\xff"), "id"),
        (
            execution_pb2.RequestExecutionRequest.DESCRIPTOR,
            field(2, struct_entry(b"hosts", _list(field(3, b"ok"), field(3, b"\xc3")))),
            "parameters.hosts[1]",
        ),
        (
            execution_pb2.RequestExecutionRequest.DESCRIPTOR,
            field(2, struct_entry(b"env", field(5, struct_entry(b"HOME", field(3, b"\xe2\x82"))))),
            "parameters.env.HOME",
        ),
        (
            registry_pb2.RegisterPackRequest.DESCRIPTOR,
            field(1, field(1, b"a.yaml")) + field(1, field(1, b"\xfe")),
            "files[1].path",
        ),
        (execution_pb2.GetExecutionRequest.DESCRIPTOR, b"\x0a\xff\xff\xff", ""),  # not protobuf at all
    ],
)
def test_an_undecodable_request_is_explained_by_its_field_path(descriptor: Any, data: bytes, expected: str) -> None:
    with pytest.raises(DecodeError):
        GetMessageClass(descriptor).FromString(data)
    assert undecodable_violation(descriptor, data).field == expected
