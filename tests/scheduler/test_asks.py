"""Approvals: a `core.ask` waits `pending` (no worker involved) until RespondToExecution gives an
answer that fits its schema from someone it allows, or until its timeout; on both databases."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import (
    dict_from_struct,
    execution_state_from_proto,
    execution_state_to_proto,
    struct_from_dict,
)
from attune.grpcutil.errors import InvalidArgument, violations_of
from attune.security.caller import Caller
from attune.security.policy import Role
from attune.states import ExecutionState
from attune_services.scheduler.asks import deadline, parse_ask, refusal
from tests.scheduler.harness import Cluster


async def respond(cluster: Cluster, execution_id: str, answer: dict[str, Any], request_id: str = "") -> Any:
    return await cluster.executions.RespondToExecution(
        execution_pb2.RespondToExecutionRequest(id=execution_id, answer=struct_from_dict(answer), request_id=request_id)
    )


async def refused(cluster: Cluster, execution_id: str, answer: dict[str, Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await respond(cluster, execution_id, answer)
    return caught.value


async def test_an_answer_that_fits_ends_the_ask_and_others_are_refused(core: Cluster) -> None:
    ask = await core.request("core.ask", {"prompt": "Deploy?"})
    assert execution_state_from_proto(ask.state) == "pending"
    listed = await core.executions.ListExecutions(
        execution_pb2.ListExecutionsRequest(state=execution_state_to_proto(ExecutionState.PENDING))
    )
    assert ask.id in {e.id for e in listed.executions}

    wrong = await refused(core, ask.id, {"approved": "perhaps", "reason": 3})
    assert wrong.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in violations_of(wrong)} == {"answer.approved", "answer.reason"}
    assert execution_state_from_proto((await core.get(ask.id)).execution.state) == "pending"

    first = await respond(core, ask.id, {"approved": True}, request_id="answer-1")
    assert execution_state_from_proto(first.execution.state) == "succeeded"
    assert dict_from_struct(first.execution.result) == {"approved": True}
    again = await respond(core, ask.id, {"approved": True}, request_id="answer-1")  # a retry: the original
    assert again.execution.id == ask.id and dict_from_struct(again.execution.result) == {"approved": True}
    late = await refused(core, ask.id, {"approved": False})
    assert late.code() == grpc.StatusCode.FAILED_PRECONDITION and "not pending" in (late.details() or "")


async def test_restricted_asks_refuse_unknown_callers_and_unanswered_asks_time_out(core: Cluster) -> None:
    restricted = await core.request("core.ask", {"prompt": "Deploy?", "users": ["alice"], "timeout": 60})
    denied = await refused(core, restricted.id, {"approved": True})
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED and "user alice" in (denied.details() or "")

    short = await core.request("core.ask", {"prompt": "Quick?", "timeout": 0.3})
    ended = await core.wait_state(short.id, "timeout", timeout=10)
    assert "no answer within 0.3 s" in ended.error
    assert execution_state_from_proto((await core.get(restricted.id)).execution.state) == "pending"

    cancelled = await core.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=restricted.id))
    assert execution_state_from_proto(cancelled.execution.state) in ("canceling", "cancelled")
    await core.wait_state(restricted.id, "cancelled")

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await core.request("core.ask", {"prompt": "?", "schema": {"ok": {"type": "colour"}}, "roles": ["boss"]})
    assert {v.field for v in violations_of(bad.value)} >= {"parameters.schema.ok.type", "parameters.roles"}


def test_who_may_answer() -> None:
    ask = parse_ask({"prompt": "?", "schema": {}, "roles": ["admin"], "users": ["alice"]})
    assert refusal(ask, Caller(name="alice", role=Role.VIEWER)) is None
    assert refusal(ask, Caller(name="root", role=Role.ADMIN)) is None
    assert "token 'bob' (role operator) is neither" in (refusal(ask, Caller(name="bob", role=Role.OPERATOR)) or "")
    assert refusal(ask, None) is not None
    anyone = parse_ask({"prompt": "?", "schema": {}})
    assert refusal(anyone, None) is None


def test_a_json_schema_object_is_read_as_inline_fields() -> None:
    ask = parse_ask(
        {"prompt": "?", "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}
    )
    assert ask.schema["ok"]["required"] is True and ask.schema["ok"]["type"] == "boolean"
    with pytest.raises(InvalidArgument):
        parse_ask({"prompt": "?", "schema": {"ok": {"type": "boolean", "colour": 1}}})


def test_the_deadline_is_the_shorter_positive_timeout() -> None:
    assert deadline(None, {"timeout": 30}) == 30
    assert deadline(10.0, {"timeout": 30}) == 10.0
    assert deadline(None, {"timeout": 0}) is None
