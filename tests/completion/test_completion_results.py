"""Storing results: compare-and-set to a terminal state, idempotent acks, truncation, restarts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from attune.common.v1 import common_pb2
from attune.config import Settings
from attune.grpcutil.channel import open_channel
from attune.grpcutil.errors import violations_of
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.storage import Database
from attune.storage.schema import outcome_outbox
from tests.completion.completiontools import CompletionServer, execution_row, insert_execution

S = common_pb2.ExecutionState


def result(
    execution_id: str, state: common_pb2.ExecutionState = S.EXECUTION_STATE_SUCCEEDED, **fields: Any
) -> completion_pb2.ExecutionResult:
    payload = fields.pop("payload", {"stdout": "hello\n", "stderr": "", "exit_code": 0, "duration_ms": 3})
    return completion_pb2.ExecutionResult(
        execution_id=execution_id,
        state=state,
        result_json=json.dumps(payload).encode(),
        started_at=fields.pop("started_at", 1000.0),
        finished_at=fields.pop("finished_at", 1001.0),
        reporter=fields.pop("reporter", "test-worker"),
        **fields,
    )


class ResultStream:
    """A SubmitResults stream driven by the test: send batches, read acks."""

    def __init__(self, address: str, settings: Settings) -> None:
        self.channel = open_channel(address, settings)
        self.call = completion_pb2_grpc.CompletionServiceStub(self.channel).SubmitResults()

    async def submit(self, *results: completion_pb2.ExecutionResult, within: float = 5.0) -> set[str]:
        await self.call.write(completion_pb2.SubmitResultsRequest(results=results))
        wanted = {r.execution_id for r in results}
        acked: set[str] = set()
        while not wanted <= acked:
            response = await asyncio.wait_for(self.call.read(), timeout=within)
            assert isinstance(response, completion_pb2.SubmitResultsResponse), response  # not EOF
            acked.update(response.acked_execution_ids)
        return acked

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()


@pytest.fixture
async def stream(completion: CompletionServer) -> Any:
    s = ResultStream(completion.address, completion.settings)
    yield s
    await s.close()


async def test_result_is_stored_and_acked(stream: ResultStream, db: Database) -> None:
    execution_id = await insert_execution(db, state="running")
    acked = await stream.submit(result(execution_id, error=""))
    assert acked == {execution_id}
    row = await execution_row(db, execution_id)
    assert row.state == "succeeded"
    assert json.loads(row.result)["stdout"] == "hello\n"
    assert row.error is None
    assert (row.started_at, row.finished_at) == (1000.0, 1001.0)


async def test_batch_stores_every_result_and_keeps_started_at(stream: ResultStream, db: Database) -> None:
    ids = [await insert_execution(db, state="scheduled") for _ in range(50)]
    first = await insert_execution(db, state="running", started_at=500.0)
    results = [result(i, S.EXECUTION_STATE_FAILED, error=f"exit code 1: {i}") for i in ids]
    acked = await stream.submit(*results, result(first))
    assert acked == {*ids, first}
    for execution_id in ids[:3]:
        row = await execution_row(db, execution_id)
        assert (row.state, row.error) == ("failed", f"exit code 1: {execution_id}")
    assert (await execution_row(db, first)).started_at == 500.0  # the scheduler's start time wins


#: Rounds of three results tried before concluding acks are never gathered.
ACK_ROUNDS = 5


async def test_acks_ready_together_share_one_response(stream: ResultStream, db: Database) -> None:
    """Results sent one after another within ACK_LINGER_S are acked in fewer responses than
    results. On a loaded machine three writes may not all land within the 20 ms linger, so the
    round is tried a few times: gathering that never happens fails every round."""
    responses_per_round = []
    for _ in range(ACK_ROUNDS):
        ids = [await insert_execution(db, state="running") for _ in range(3)]
        for execution_id in ids:
            await stream.call.write(completion_pb2.SubmitResultsRequest(results=[result(execution_id)]))
        acked: list[str] = []
        responses = 0
        while len(acked) < len(ids):
            response = await asyncio.wait_for(stream.call.read(), timeout=5.0)
            assert isinstance(response, completion_pb2.SubmitResultsResponse), response  # not EOF
            acked.extend(response.acked_execution_ids)
            responses += 1
        assert sorted(acked) == sorted(ids)  # each acked once
        assert [(await execution_row(db, i)).state for i in ids] == ["succeeded"] * 3
        responses_per_round.append(responses)
        if responses < len(ids):
            break
    assert min(responses_per_round) < 3, f"responses per round of three results: {responses_per_round}"


async def test_duplicate_is_acked_and_changes_nothing(stream: ResultStream, db: Database) -> None:
    execution_id = await insert_execution(db)
    await stream.submit(result(execution_id, payload={"n": 1}))
    before = await execution_row(db, execution_id)
    again = result(execution_id, S.EXECUTION_STATE_FAILED, payload={"n": 2}, error="late", finished_at=2000.0)
    assert await stream.submit(again) == {execution_id}
    # Two copies in one batch: the first wins, both are acked.
    other = await insert_execution(db)
    assert await stream.submit(result(other, payload={"n": 1}), result(other, S.EXECUTION_STATE_FAILED)) == {other}
    after = await execution_row(db, execution_id)
    assert (after.state, after.result, after.error, after.finished_at) == (
        "succeeded",
        before.result,
        None,
        before.finished_at,
    )
    assert (await execution_row(db, other)).state == "succeeded"


async def test_late_non_terminal_and_unknown_are_acked_and_ignored(stream: ResultStream, db: Database) -> None:
    execution_id = await insert_execution(db, state="running")
    running = result(execution_id, S.EXECUTION_STATE_RUNNING)
    unknown = result("0" * 32)
    assert await stream.submit(running, unknown) == {execution_id, "0" * 32}
    assert (await execution_row(db, execution_id)).state == "running"


async def test_unary_submit_result(completion: CompletionServer, db: Database) -> None:
    execution_id = await insert_execution(db, state="canceling")
    async with open_channel(completion.address, completion.settings) as channel:
        stub = completion_pb2_grpc.CompletionServiceStub(channel)
        first = await stub.SubmitResult(
            completion_pb2.SubmitResultRequest(result=result(execution_id, S.EXECUTION_STATE_CANCELLED))
        )
        assert (first.applied, first.state) == (True, S.EXECUTION_STATE_CANCELLED)
        second = await stub.SubmitResult(completion_pb2.SubmitResultRequest(result=result(execution_id)))
        assert (second.applied, second.state) == (False, S.EXECUTION_STATE_CANCELLED)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.SubmitResult(completion_pb2.SubmitResultRequest(result=result("f" * 32)))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert "f" * 32 in (missing.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.SubmitResult(
                completion_pb2.SubmitResultRequest(result=result(execution_id, S.EXECUTION_STATE_RUNNING))
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in violations_of(bad.value)] == ["result.state"]
    assert (await execution_row(db, execution_id)).state == "cancelled"


async def test_oversized_result_is_stored_truncated(stream: ResultStream, db: Database, settings: Settings) -> None:
    execution_id = await insert_execution(db)
    big = "x" * (settings.max_message_bytes - 40_000)  # arrives (under the limit), too big to store
    payload = {"stdout": big, "stderr": big[:1000], "exit_code": 0, "duration_ms": 5, "answer": 42}
    await stream.submit(result(execution_id, payload=payload))
    stored = json.loads((await execution_row(db, execution_id)).result)
    assert stored["truncated"] is True
    assert stored["answer"] == 42 and stored["exit_code"] == 0
    assert stored["stdout"].startswith("xxxx") and len(stored["stdout"]) < len(big)
    assert len(json.dumps(stored)) < settings.max_message_bytes


async def test_a_result_up_to_the_result_limit_is_stored_whole(database_url: str, db: Database) -> None:
    """ATTUNE_MAX_RESULT_BYTES: a result at the limit is stored as sent, one byte over it is
    stored cut down and marked "truncated" (never refused: the execution did end)."""
    limit = 10_000
    server = CompletionServer(Settings(database_url=database_url, max_result_bytes=limit, shutdown_grace=1.0))
    await server.start()
    stream = ResultStream(server.address, server.settings)
    try:
        envelope = len(json.dumps({"stdout": ""}).encode())
        at, over = await insert_execution(db), await insert_execution(db)
        await stream.submit(result(at, payload={"stdout": "x" * (limit - envelope)}))
        await stream.submit(result(over, payload={"stdout": "x" * (limit - envelope + 1)}))
    finally:
        await stream.close()
        await server.stop()
    stored_at = (await execution_row(db, at)).result
    assert len(stored_at.encode()) == limit and "truncated" not in json.loads(stored_at)
    stored_over = json.loads((await execution_row(db, over)).result)
    assert stored_over["truncated"] is True and stored_over["original_bytes"] == limit + 1


async def test_a_state_no_enum_defines_is_ignored_not_retried_forever(stream: ResultStream, db: Database) -> None:
    """A result stream's message with state 99 is acked and ignored; before, converting it raised
    and the stream ended UNAVAILABLE, so the sender re-sent it forever."""
    execution_id = await insert_execution(db, state="running")
    unknown_state: Any = 99
    assert await stream.submit(result(execution_id, unknown_state)) == {execution_id}
    assert (await execution_row(db, execution_id)).state == "running"
    assert await stream.submit(result(execution_id)) == {execution_id}  # the stream goes on
    assert (await execution_row(db, execution_id)).state == "succeeded"


async def test_restart_mid_stream_stores_exactly_one_result(
    completion: CompletionServer, db: Database, settings: Settings
) -> None:
    """The server stops while a client has results in flight; the client reconnects to the new
    server and re-sends everything it has no ack for."""
    workflow_id = await insert_execution(db, runner_type="workflow")
    ids = [
        await insert_execution(db, workflow_execution_id=workflow_id, task_name="t", task_run=1, attempt=1)
        for _ in range(20)
    ]
    stream = ResultStream(completion.address, settings)
    acked = await stream.submit(*(result(i, payload={"n": 1}) for i in ids[:10]))
    await stream.call.write(
        completion_pb2.SubmitResultsRequest(results=[result(i, payload={"n": 1}) for i in ids[10:]])
    )
    await completion.stop()
    await stream.close()
    await completion.start()
    # The re-send carries a different body: only the first stored one may remain. Like a worker,
    # retry while the channel still remembers the refused connections of the restart.
    unacked = {i for i in ids if i not in acked}
    for _ in range(50):
        stream = ResultStream(completion.address, settings)
        try:
            assert await stream.submit(*(result(i, payload={"n": 2}) for i in ids)) >= unacked
            break
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE
            await asyncio.sleep(settings.retry_interval)
        finally:
            await stream.close()
    else:
        raise AssertionError("the restarted completion service never acked the re-sent results")
    for execution_id in ids:
        row = await execution_row(db, execution_id)
        assert row.state == "succeeded"
        if execution_id in acked:
            assert json.loads(row.result) == {"n": 1}
    async with db.read() as conn:
        outbox = (await conn.execute(sa.select(outcome_outbox.c.execution_id))).scalars().all()
    assert sorted(outbox) == sorted(ids)  # one outbox row each (nobody is up to receive them)


async def test_a_second_server_cannot_take_a_port_in_use_but_a_restart_can(
    completion: CompletionServer, db: Database, settings: Settings
) -> None:
    """No SO_REUSEPORT: two processes never silently split one port's connections."""
    from attune.grpcutil.server import start_server
    from attune_services.completion.app import CompletionApp

    with pytest.raises(OSError, match="cannot listen"):
        await start_server(CompletionApp(settings), address=completion.address, settings=settings)
    await completion.stop()
    await completion.start()  # the same port, free again
    stream = ResultStream(completion.address, settings)
    try:
        execution_id = await insert_execution(db)
        assert execution_id in await stream.submit(result(execution_id))
    finally:
        await stream.close()
