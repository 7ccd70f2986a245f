"""Fuzzing every public RPC against a live scheduler (issue #13): random bytes and random field
values as requests, and whatever comes back is never UNKNOWN, never INTERNAL, never a hang, never
an exception's text, and the scheduler stays SERVING.

The methods come from the public protos' descriptors (`rpc_requests.public_methods`), so a new RPC
is fuzzed as soon as it exists; WatchExecution, server-streaming, is read up to its first message.
Requests go as bytes through raw multicallables on the shared secure cluster, as its admin.

The cluster is shared with other tests, so what mutating calls may name is fenced in: they play
in packs of their own and with "fuzz…" names (`rpc_playground`), and every execution they
started must end.

CI runs the same examples each time (`fuzzing.fuzz_settings`); ATTUNE_FUZZ_EXAMPLES=<n> runs n.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import DecodeError
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import given, reject
from hypothesis import strategies as st

from attune.auth.v1 import auth_pb2, auth_pb2_grpc
from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import dict_from_struct, struct_from_dict
from attune.registry.v1 import registry_pb2
from attune.storage import Database
from attune.storage.schema import executions
from attune.workflow.v1 import workflow_pb2
from tests.cli.e2e import attune
from tests.hostile.errortools import LEAKS, assert_serving, count, fields, refusal
from tests.hostile.fuzzing import fuzz_settings
from tests.hostile.rpc_playground import MADE_PACK, MADE_PACK_FILES, RUN_PACK_FILES, Playground
from tests.hostile.rpc_requests import PublicMethod, as_struct, public_methods
from tests.integration.cluster import Cluster

T = TypeVar("T")

METHODS = public_methods()
FUZZ = fuzz_settings(ci_examples=150, deadline=None)  # each call has its own timeout below
#: A call not answered by then is a hang (generous: the machine is loaded, a pack takes a while).
CALL_TIMEOUT = 20.0
#: What no request may ever get: a crash (UNKNOWN), a bug (INTERNAL) or no answer.
NEVER = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED})


@pytest.fixture(scope="module")
async def playground(cluster: Cluster) -> AsyncIterator[Playground]:
    """fuzz_rpc and fuzz_made registered, an ended run of each fuzz_rpc action, an action to play
    with; afterwards, every execution the fuzzing started has ended."""
    registered = await cluster.registry.RegisterPack(_pack_request(RUN_PACK_FILES), timeout=30)
    await cluster.registry.RegisterPack(_pack_request(MADE_PACK_FILES), timeout=30)
    target = registry_pb2.Action(pack=MADE_PACK, name="fuzz_target", runner_type="noop")
    made = (await cluster.registry.CreateAction(registry_pb2.CreateActionRequest(action=target))).action
    runs = [await cluster.run("fuzz_rpc.flow", {"text": "x"}), await cluster.run("fuzz_rpc.sink", {"count": 1})]
    await cluster.run("fuzz_rpc.flow")  # two workflow runs: a page of one has a next token
    execution_page = await cluster.executions.ListExecutions(execution_pb2.ListExecutionsRequest(page_size=1))
    run_page = await cluster.workflows.ListWorkflowRuns(workflow_pb2.ListWorkflowRunsRequest(page_size=1))
    ground = Playground(
        execution_ids=tuple(run.execution.id for run in runs),
        made_action_id=made.id,
        run_action_ids=frozenset(action.id for action in registered.actions),
        page_tokens=tuple(t for t in (execution_page.next_page_token, run_page.next_page_token) if t),
    )
    yield ground
    for execution_id in ground.started:
        await cluster.wait_terminal(execution_id, timeout=30)


def _pack_request(files: dict[str, bytes]) -> registry_pb2.RegisterPackRequest:
    return registry_pb2.RegisterPackRequest(files=[registry_pb2.PackFile(path=p, content=c) for p, c in files.items()])


# -- calling and judging -------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """How a call ended."""

    code: grpc.StatusCode
    details: str
    response: bytes | None  # a unary call's response, or a stream's first message


async def send(channel: grpc.aio.Channel, method: PublicMethod, payload: bytes) -> Answer:
    """`payload` as the request of `method`, its bytes as they are; a stream read to its first
    message, and a stream of requests (RunExecutions) given `payload` as its one request
    (`test_every_public_rpc_is_found_and_served`)."""
    try:
        if method.client_streaming:
            both: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(
                method.path, request_serializer=None, response_deserializer=None
            )
            exchange = both(iter([payload]), timeout=CALL_TIMEOUT)
            try:
                async for first in exchange:
                    return Answer(grpc.StatusCode.OK, "", first)
            finally:
                exchange.cancel()
            return Answer(grpc.StatusCode.OK, "", None)
        if method.server_streaming:
            stream: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
                method.path, request_serializer=None, response_deserializer=None
            )
            call = stream(payload, timeout=CALL_TIMEOUT)
            try:
                async for first in call:
                    return Answer(grpc.StatusCode.OK, "", first)
            finally:
                call.cancel()
            return Answer(grpc.StatusCode.OK, "", None)  # ended without a message
        unary: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            method.path, request_serializer=None, response_deserializer=None
        )
        return Answer(grpc.StatusCode.OK, "", await unary(payload, timeout=CALL_TIMEOUT))
    except grpc.aio.AioRpcError as err:
        return Answer(err.code(), err.details() or "", None)


def judge(cluster: Cluster, method: PublicMethod, answer: Answer) -> None:
    """The answer is a code the contract allows, its message has no internals, a response decodes."""
    if answer.code == grpc.StatusCode.INTERNAL:
        error_id = re.search(r"error id (\w+)", answer.details)
        logged = [line for line in cluster.log_tail("scheduler", 400).splitlines() if error_id and error_id[1] in line]
        raise AssertionError(f"{method.path} answered INTERNAL: {answer.details}\nscheduler log: {logged}")
    assert answer.code not in NEVER, f"{method.path} answered {answer.code.name}: {answer.details}"
    assert not LEAKS.search(answer.details), f"{method.path} leaked: {answer.details}"
    if answer.response is not None:
        method.response.FromString(answer.response)


def on_loop(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T]) -> T:
    """Runs `work` on the test's event loop (where the cluster's channel lives) and waits for it.
    Hypothesis drives examples synchronously, so a property runs in a thread (`asyncio.to_thread`)
    and each example's calls here; the test itself checks the cluster after the whole batch."""
    return asyncio.run_coroutine_threadsafe(work, loop).result(timeout=3 * CALL_TIMEOUT)


async def exchange(
    cluster: Cluster, ground: Playground, method: PublicMethod, payload: bytes, codes: Counter[grpc.StatusCode]
) -> None:
    """One example: the call judged and its code counted, what it started noted, the scheduler
    still SERVING."""
    answer = await send(cluster.channel, method, payload)
    judge(cluster, method, answer)
    codes[answer.code] += 1
    if answer.response is not None and method.name in _STARTING:
        started = _STARTING[method.name].FromString(answer.response)
        if started.HasField("execution"):  # a RunExecutions answer may be a refusal instead
            ground.started.append(started.execution.id)
    await assert_serving(cluster)


#: The methods that start an execution, by the response that names it.
_STARTING: dict[str, Any] = {
    "RequestExecution": execution_pb2.RequestExecutionResponse,
    "RunExecution": execution_pb2.RunExecutionResponse,
    "RunExecutions": execution_pb2.RunExecutionsResponse,
}


def reached_past_refusals(codes: Counter[grpc.StatusCode]) -> None:
    """A batch was refused for its input and also answered: the fence let requests through and
    some were plausible enough to succeed."""
    assert codes[grpc.StatusCode.INVALID_ARGUMENT] > 0 and codes[grpc.StatusCode.OK] > 0, codes


# -- the properties ------------------------------------------------------------------------------


async def test_every_public_rpc_is_found_and_served(cluster: Cluster) -> None:
    reflect = cluster.channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    reply = await reflect(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10).read()
    assert isinstance(reply, reflection_pb2.ServerReflectionResponse)
    served = {s.name for s in reply.list_services_response.service}
    public = {name for name in served if name.startswith("attune.") and not name.startswith("attune.internal.")}
    assert public == {m.path.split("/")[1] for m in METHODS}
    assert any(m.server_streaming for m in METHODS)
    # send() gives a stream of requests one request, and reads a response stream's first message.
    assert not [m.path for m in METHODS if m.client_streaming and not m.server_streaming], "teach send() streams"
    assert any(m.client_streaming for m in METHODS)
    for method in METHODS:  # the empty request: every method answers it with a code it may use
        answer = await send(cluster.channel, method, b"")
        assert answer.code != grpc.StatusCode.UNIMPLEMENTED, method.path
        judge(cluster, method, answer)


async def test_random_bytes_as_any_request_are_refused_cleanly(cluster: Cluster, playground: Playground) -> None:
    loop = asyncio.get_running_loop()
    codes: Counter[grpc.StatusCode] = Counter()

    @FUZZ
    @given(method=st.sampled_from(METHODS), data=st.data())
    def prop(method: PublicMethod, data: st.DataObject) -> None:
        payload = data.draw(playground.request_bytes(method), label="request bytes")
        try:
            request = method.request.FromString(payload)
        except DecodeError:
            request = None  # the scheduler cannot decode it either: nothing to fence
        if request is not None and playground.outside(method, request):
            reject()
        on_loop(loop, exchange(cluster, playground, method, payload, codes))

    await asyncio.to_thread(prop)  # see `on_loop`
    reached_past_refusals(codes)
    await assert_serving(cluster)


async def test_random_field_values_in_any_request_are_answered_cleanly(
    cluster: Cluster, playground: Playground
) -> None:
    loop = asyncio.get_running_loop()
    codes: Counter[grpc.StatusCode] = Counter()

    @FUZZ
    @given(method=st.sampled_from(METHODS), data=st.data())
    def prop(method: PublicMethod, data: st.DataObject) -> None:
        request = data.draw(playground.requests(method), label="request")
        if playground.outside(method, request):
            reject()
        on_loop(loop, exchange(cluster, playground, method, request.SerializeToString(), codes))

    await asyncio.to_thread(prop)  # see `on_loop`
    reached_past_refusals(codes)
    await assert_serving(cluster)


# -- what the fuzzing found ----------------------------------------------------------------------


async def test_a_nul_in_an_id_or_name_is_invalid_argument_naming_it(cluster: Cluster, playground: Playground) -> None:
    # On PostgreSQL each was INTERNAL: "invalid byte sequence for encoding UTF8: 0x00".
    tokens = auth_pb2_grpc.TokenServiceStub(cluster.channel)
    calls: list[tuple[str, Awaitable[Any]]] = [
        ("name", tokens.CreateToken(auth_pb2.CreateTokenRequest(name="fuzz\0", role=auth_pb2.ROLE_VIEWER))),
        ("name", tokens.RevokeToken(auth_pb2.RevokeTokenRequest(name="fuzz\0"))),
        ("ref", cluster.registry.GetAction(registry_pb2.GetActionRequest(ref="fuzz_rpc.sink\0"))),
        (
            "id",
            cluster.executions.GetExecution(execution_pb2.GetExecutionRequest(id=playground.execution_ids[0] + "\0")),
        ),
        (
            "request_id",
            cluster.executions.RequestExecution(
                execution_pb2.RequestExecutionRequest(action_ref="fuzz_rpc.sink", request_id="fuzz\0")
            ),
        ),
    ]
    for field, call in calls:
        err = await refusal(call)
        assert (err.code(), fields(err)) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
        assert "NUL" in (err.details() or "")
    listed = await tokens.ListTokens(auth_pb2.ListTokensRequest())
    assert not [t.name for t in listed.tokens if "\0" in t.name]
    await assert_serving(cluster)


async def test_a_nan_or_infinity_in_a_struct_is_invalid_argument_naming_where(
    cluster: Cluster, playground: Playground
) -> None:
    # Each was INTERNAL: json_format's "Fail to serialize NaN for Value.number_value".
    database = Database(cluster.database_url)
    try:
        before = await count(database, executions)
        cases: list[tuple[dict[str, Any], str]] = [
            ({"config": math.nan}, "parameters.config"),
            ({"items": [1, -math.inf]}, "parameters.items[1]"),
        ]
        for parameters, where in cases:
            request = execution_pb2.RequestExecutionRequest(
                action_ref="fuzz_rpc.sink", parameters=as_struct(parameters)
            )
            err = await refusal(cluster.executions.RequestExecution(request))
            assert (err.code(), fields(err)) == (grpc.StatusCode.INVALID_ARGUMENT, [where])
        assert await count(database, executions) == before
    finally:
        await database.close()
    schema = as_struct({"a": {"type": "number", "default": math.inf}})
    action = registry_pb2.Action(pack=MADE_PACK, name="fuzz_nan", runner_type="noop", parameters=schema)
    err = await refusal(cluster.registry.CreateAction(registry_pb2.CreateActionRequest(action=action)))
    assert (err.code(), fields(err)) == (grpc.StatusCode.INVALID_ARGUMENT, ["action.parameters.a.default"])
    err = await refusal(cluster.registry.GetAction(registry_pb2.GetActionRequest(ref="fuzz_made.fuzz_nan")))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    await assert_serving(cluster)


async def test_an_empty_ref_is_invalid_argument_naming_it(cluster: Cluster, playground: Playground) -> None:
    # Each was NOT_FOUND "no action ''", as if an action without a ref could exist.
    registry = cluster.registry
    calls: list[tuple[str, Awaitable[Any]]] = [
        ("ref", registry.GetAction(registry_pb2.GetActionRequest(ref=""))),
        ("ref", registry.DeleteAction(registry_pb2.DeleteActionRequest(ref=""))),
        ("id", registry.UpdateAction(registry_pb2.UpdateActionRequest(action=registry_pb2.Action(label="x")))),
    ]
    for field, call in calls:
        err = await refusal(call)
        assert (err.code(), fields(err)) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
    await assert_serving(cluster)


async def test_a_result_number_json_has_not_is_shown_as_text(cluster: Cluster) -> None:
    # examples.py_sum adds to inf and prints {"sum": Infinity}, which Python's json reads and
    # writes: the Struct carried inf, and `attune execution get` failed "unexpected ValueError".
    ran = await cluster.run("examples.py_sum", {"numbers": [1e308, 1e308]})
    assert dict_from_struct(ran.execution.result)["sum"] == "Infinity"
    shown = await attune("execution", "get", ran.execution.id, "--output", "json", env=cluster.cli_env())
    assert shown.code == 0, shown.stderr
    assert shown.json()["result"]["sum"] == "Infinity"
    # An integer beyond a double (a Struct's numbers are doubles) was an OverflowError: INTERNAL.
    assert dict_from_struct(struct_from_dict({"n": 10**400, "m": [math.nan]})) == {"n": str(10**400), "m": ["NaN"]}
