"""Concurrent cancels share their statements and messages, and each still gets its own answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from attune.execution.v1 import execution_pb2
from attune.grpcutil.convert import execution_state_from_proto
from attune.grpcutil.errors import FailedPrecondition, Unavailable
from attune.internal.worker.v1 import worker_pb2
from attune.storage.schema import executions
from attune_services.scheduler.cancel import Canceller
from attune_services.scheduler.giveups import GiveUp
from tests.scheduler.harness import TEST_TIMINGS, Cluster, FakeWorker, start_cluster


@pytest.fixture
async def cluster(database_url: str) -> AsyncIterator[Cluster]:
    """core and examples registered; an execution no worker can run waits in scheduling (the
    schedule timeout is far away)."""
    running = await start_cluster(database_url, schedule_timeout=60.0)
    try:
        await running.register_bundled("core", "examples")
        yield running
    finally:
        await running.stop()


def canceller_of(cluster: Cluster) -> Canceller:
    assert cluster.scheduler.canceller is not None
    return cluster.scheduler.canceller


async def cancel(cluster: Cluster, execution_id: str) -> str:
    """CancelExecution: the state answered, or the status code and message of the refusal."""
    try:
        response = await cluster.executions.CancelExecution(execution_pb2.CancelExecutionRequest(id=execution_id))
    except grpc.aio.AioRpcError as err:
        return f"{err.code().name}: {err.details()}"
    return execution_state_from_proto(response.execution.state)


async def on_worker(cluster: Cluster, worker: FakeWorker, count: int) -> list[str]:
    """`count` core.echo executions assigned to `worker`."""
    ids = [(await cluster.request("core.echo", {"message": str(i)})).id for i in range(count)]
    await worker.wait_for(lambda: {a.execution_id for a in worker.assignments} >= set(ids))
    return ids


async def test_a_concurrent_batch_gives_each_cancel_its_own_answer(cluster: Cluster) -> None:
    worker = FakeWorker(cluster, "w", ["shell"], capacity=3)  # offers no "noop": core.noop waits
    await worker.connect()
    scheduled, running, already = await on_worker(cluster, worker, 3)
    await worker.started(running)
    await cluster.wait_state(running, "running")
    assert await cancel(cluster, already) == "canceling"
    await worker.wait_for(lambda: already in worker.cancellations)
    queued = [(await cluster.request("core.noop")).id for _ in range(3)]
    ended = (await cluster.request("core.noop")).id
    await cluster.submit_result(ended, "succeeded")
    await cluster.wait_state(ended, "succeeded")
    workflow = (await cluster.request("examples.single_echo")).id
    await cluster.wait_state(workflow, "running")

    cases = {
        **{execution_id: "cancelled" for execution_id in queued},
        scheduled: "canceling",
        running: "canceling",
        already: "canceling",
        workflow: "canceling",
        ended: f"FAILED_PRECONDITION: execution {ended} already succeeded",
        "nope": 'NOT_FOUND: no execution "nope"',
        "": "INVALID_ARGUMENT: id: is required",
    }
    answers = await asyncio.gather(*(cancel(cluster, execution_id) for execution_id in cases))
    assert dict(zip(cases, answers, strict=True)) == cases

    # The worker heard of its two newly canceling executions and of nothing else (the sweep
    # also sends a canceling row's cancel again, so the count of messages is not fixed).
    await worker.wait_for(lambda: {scheduled, running} <= set(worker.cancellations))
    assert set(worker.cancellations) == {already, scheduled, running}
    assert cluster.coordinator.cancelled == [workflow]
    states = {e: execution_state_from_proto((await cluster.get(e)).execution.state) for e in [*queued, ended]}
    assert states == {**{e: "cancelled" for e in queued}, ended: "succeeded"}
    await asyncio.sleep(0.1)
    assert {a.execution_id for a in worker.assignments} == {scheduled, running, already}
    await worker.disconnect()


async def test_concurrent_cancels_share_one_give_up_submission_and_one_message_per_worker(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = FakeWorker(cluster, "w", ["shell"], capacity=3)
    await worker.connect()
    held = await on_worker(cluster, worker, 3)
    queued = [(await cluster.request("core.noop")).id for _ in range(5)]
    canceller, dispatcher = canceller_of(cluster), cluster.scheduler.dispatcher
    submitted: list[list[str]] = []
    messages: list[tuple[str, list[str]]] = []
    submitter, send = cluster.scheduler.submitter, dispatcher.send_cancellations

    class SpySubmitter:  # the canceller's own (the sweeper shares the real one and may re-submit)
        async def submit(self, give_ups: Sequence[GiveUp]) -> set[str]:
            submitted.append([g.execution_id for g in give_ups])
            return await submitter.submit(give_ups)

    def spy_send(worker_id: str, execution_ids: list[str]) -> bool:
        messages.append((worker_id, list(execution_ids)))
        return send(worker_id, execution_ids)

    monkeypatch.setattr(canceller, "_submitter", SpySubmitter())
    monkeypatch.setattr(dispatcher, "send_cancellations", spy_send)
    # Called in one go, the cancels queue before the batch is taken: they are one batch. An id
    # twice in it is cancelled once, and both callers get the row.
    rows = await asyncio.gather(*(canceller.cancel(e) for e in [*queued, *held, queued[0]]))
    assert [(row["id"], row["state"]) for row in rows] == (
        [(e, "cancelled") for e in queued] + [(e, "canceling") for e in held] + [(queued[0], "cancelled")]
    )
    assert [sorted(ids) for ids in submitted] == [sorted(queued)]
    # One message for the batch (the sweep may later send a cancel again, but not this soon).
    assert [(w, sorted(ids)) for w, ids in messages] == [("w", sorted(held))]
    await worker.wait_for(lambda: set(worker.cancellations) == set(held))
    await worker.disconnect()


class OrderedWorker(FakeWorker):
    """A fake worker that also notes the order of what it receives: ("assigned" | "cancelled", id)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[tuple[str, str]] = []

    async def _read(self) -> None:
        try:
            while isinstance(message := await self._call.read(), worker_pb2.ConnectResponse):  # until EOF
                if message.WhichOneof("kind") == "assignments":
                    self.assignments.extend(message.assignments.assignments)
                    self.received += [("assigned", a.execution_id) for a in message.assignments.assignments]
                elif message.WhichOneof("kind") == "cancellations":
                    self.cancellations.extend(message.cancellations.execution_ids)
                    self.received += [("cancelled", e) for e in message.cancellations.execution_ids]
                self._changed.set()
        except (grpc.RpcError, asyncio.CancelledError):
            return


async def test_a_cancel_during_its_assignment_reaches_the_worker_after_the_assignment(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dispatcher has claimed the execution for a worker (the row says scheduled on it) but
    not yet queued the Assignment: the worker must hear the cancel after it, or it would ignore
    the cancel of an execution it does not know and then run it."""
    worker = OrderedWorker(cluster, "w", ["shell"], capacity=1)
    await worker.connect()
    (first,) = await on_worker(cluster, worker, 1)
    waiting = (await cluster.request("core.echo", {"message": "next"})).id  # no free slot: queued
    cache = cluster.scheduler.cache
    get_many = cache.get_many
    assigning = asyncio.Event()

    async def slow_get_many(refs: set[str]) -> Any:  # the dispatcher's read between claim and send
        assigning.set()
        await asyncio.sleep(0.3)
        return await get_many(refs)

    monkeypatch.setattr(cache, "get_many", slow_get_many)
    await worker.released(first)  # the slot frees: the dispatcher claims `waiting` for this worker
    await asyncio.wait_for(assigning.wait(), timeout=5)
    assert await cancel(cluster, waiting) == "canceling"
    await worker.wait_for(lambda: ("cancelled", waiting) in worker.received)
    assert [r for r in worker.received if r[1] == waiting] == [("assigned", waiting), ("cancelled", waiting)]
    await worker.disconnect()


async def test_a_cancel_while_a_reserved_slot_is_being_sent_reaches_the_worker_after_it(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path: a worker had a free slot at request time, so the row was inserted already
    scheduled on it, and its Assignment is being built (the dispatcher reads the action) when
    the cancel arrives. The worker must hear the cancel after the Assignment."""
    worker = OrderedWorker(cluster, "w", ["shell"], capacity=2)
    await worker.connect()
    cache = cluster.scheduler.cache
    get_many = cache.get_many
    assigning = asyncio.Event()

    async def slow_get_many(refs: set[str]) -> Any:  # the read between the insert and the send
        assigning.set()
        await asyncio.sleep(0.3)
        return await get_many(refs)

    monkeypatch.setattr(cache, "get_many", slow_get_many)
    reserved = (await cluster.request("core.echo", {"message": "now"})).id
    await asyncio.wait_for(assigning.wait(), timeout=5)
    assert await cancel(cluster, reserved) == "canceling"
    await worker.wait_for(lambda: ("cancelled", reserved) in worker.received)
    assert [r for r in worker.received if r[1] == reserved] == [("assigned", reserved), ("cancelled", reserved)]
    await worker.disconnect()


async def test_a_cancel_that_meets_a_concurrent_end_is_refused_as_terminal(cluster: Cluster) -> None:
    """The completion service ends the execution while the cancel's compare-and-set waits on its
    row (PostgreSQL: the statement's read still shows it scheduling, so the cancel looks again)."""
    execution_id = (await cluster.request("core.noop")).id
    db = cluster.scheduler.db
    ending = asyncio.Event()

    async def end_meanwhile() -> None:
        async with db.write() as conn:
            await conn.execute(
                executions.update()
                .where(executions.c.id == execution_id)
                .values(state="succeeded", finished_at=time.time(), updated_at=time.time())
            )
            ending.set()
            await asyncio.sleep(0.3)  # the cancel waits for this transaction

    ender = asyncio.create_task(end_meanwhile())
    await ending.wait()
    with pytest.raises(FailedPrecondition, match=f"^execution {execution_id} already succeeded$"):
        await canceller_of(cluster).cancel(execution_id)
    await ender
    async with db.read() as conn:
        state = (await conn.execute(sa.select(executions.c.state).where(executions.c.id == execution_id))).scalar()
    assert state == "succeeded"


async def test_a_cancel_after_the_drain_is_unavailable(cluster: Cluster) -> None:
    execution_id = (await cluster.request("core.noop")).id
    canceller = canceller_of(cluster)
    await cluster.stop_scheduler()
    with pytest.raises(Unavailable, match="shutting down"):
        await canceller.cancel(execution_id)


async def test_the_sweep_sends_a_lost_cancel_to_the_worker_again(cluster: Cluster) -> None:
    """The row went canceling but the worker never heard it (a cancel that overtook its
    assignment is ignored): the sweep sends it again while the row stays canceling, and only
    for canceling rows."""
    worker = FakeWorker(cluster, "w", ["shell"], capacity=2)
    await worker.connect()
    lost, other = await on_worker(cluster, worker, 2)
    # Sent, as far as the scheduler knows (the relay sends only cancels it has not sent) ...
    cluster.scheduler.dispatcher.sessions["w"].cancels_sent.add(lost)
    async with cluster.scheduler.db.write() as conn:  # ... canceling, as if its message was dropped
        await conn.execute(
            executions.update().where(executions.c.id == lost).values(state="canceling", updated_at=time.time())
        )
    marked = time.monotonic()
    await worker.wait_for(lambda: lost in worker.cancellations)
    assert time.monotonic() - marked >= TEST_TIMINGS["worker_grace"] * 0.9  # not at once: after the grace
    await asyncio.sleep(0.3)  # a few more sweeps
    assert other not in worker.cancellations
    await worker.disconnect()
