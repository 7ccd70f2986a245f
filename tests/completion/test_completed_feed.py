"""WatchCompleted: each commit's newly terminal executions (with their parents) reach subscribers;
duplicates and results for executions that had already ended publish nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import sqlalchemy as sa

from attune.common.v1 import common_pb2 as S
from attune.config import Settings
from attune.grpcutil.channel import open_channel
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.storage import Database
from attune.storage.schema import executions
from attune_services.completion.feed import MAX_RESULT_BYTES
from attune_services.scheduler.watchers import CompletedFeed, ExecutionWatchers
from tests.completion.completiontools import CompletionServer, insert_execution
from tests.completion.test_completion_results import ResultStream, result
from tests.support.polling import eventually


async def test_subscriber_hears_each_newly_terminal_execution_and_its_parent(
    completion: CompletionServer, db: Database
) -> None:
    parent = await insert_execution(db, state="running")
    child = await insert_execution(db, state="scheduled", parent_id=parent)
    lone = await insert_execution(db, state="running")
    channel = open_channel(completion.address, completion.settings)
    feed = completion_pb2_grpc.CompletionServiceStub(channel).WatchCompleted(completion_pb2.WatchCompletedRequest())
    stream = ResultStream(completion.address, completion.settings)
    try:
        await asyncio.wait_for(feed.initial_metadata(), timeout=5.0)  # subscribed before any commit
        await stream.submit(result(child), result(lone))
        heard: set[str] = set()
        parents: set[str] = set()
        while heard != {child, lone}:
            message = await asyncio.wait_for(feed.read(), timeout=5.0)
            assert isinstance(message, completion_pb2.WatchCompletedResponse), message  # not EOF
            heard.update(message.execution_ids)
            parents.update(message.parent_ids)
        assert parents == {parent}
        # A duplicate changes nothing, so it publishes nothing; the next real change arrives alone.
        await stream.submit(result(lone))
        last = await insert_execution(db, state="running")
        await stream.submit(result(last))
        message = await asyncio.wait_for(feed.read(), timeout=5.0)
        assert isinstance(message, completion_pb2.WatchCompletedResponse), message  # not EOF
        assert list(message.execution_ids) == [last]
    finally:
        feed.cancel()
        await stream.close()
        await channel.close()


async def test_feed_carries_the_stored_terminal_fields_of_small_results(
    completion: CompletionServer, db: Database
) -> None:
    small = await insert_execution(db, state="running")
    large = await insert_execution(db, state="running")
    # Its start notice came first: the row keeps that started_at, and so must the feed.
    noticed = await insert_execution(db, state="running", started_at=1000.5)
    channel = open_channel(completion.address, completion.settings)
    feed = completion_pb2_grpc.CompletionServiceStub(channel).WatchCompleted(completion_pb2.WatchCompletedRequest())
    stream = ResultStream(completion.address, completion.settings)
    try:
        await asyncio.wait_for(feed.initial_metadata(), timeout=5.0)
        await stream.submit(
            result(small, S.EXECUTION_STATE_FAILED, error="exit 3", payload={"stdout": "x", "exit_code": 3}),
            result(large, payload={"stdout": "y" * (MAX_RESULT_BYTES + 1)}),
            result(noticed, started_at=1000.0),
        )
        heard: set[str] = set()
        carried: dict[str, completion_pb2.ExecutionResult] = {}
        while heard != {small, large, noticed}:
            message = await asyncio.wait_for(feed.read(), timeout=5.0)
            assert isinstance(message, completion_pb2.WatchCompletedResponse), message  # not EOF
            heard.update(message.execution_ids)
            carried.update({r.execution_id: r for r in message.results})
        assert set(carried) == {small, noticed}  # the large one goes by id only: the watcher reads it
        fields = carried[small]
        async with db.read() as conn:
            row = (await conn.execute(sa.select(executions).where(executions.c.id == small))).mappings().one()
            kept = (await conn.execute(sa.select(executions).where(executions.c.id == noticed))).mappings().one()
        assert (S.ExecutionState.Name(fields.state), fields.error, fields.finished_at, fields.started_at) == (
            "EXECUTION_STATE_FAILED",
            row["error"],
            row["finished_at"],
            row["started_at"],
        )
        assert row["state"] == "failed" and json.loads(fields.result_json) == json.loads(row["result"])
        assert carried[noticed].started_at == kept["started_at"] == 1000.5
    finally:
        feed.cancel()
        await stream.close()
        await channel.close()


async def test_the_scheduler_holds_the_feed_only_while_it_has_watches(
    completion: CompletionServer, settings: Settings
) -> None:
    """No watch, no subscription (a finished execution costs no message); the first watch
    subscribes and is woken once connected; the last one ending unsubscribes after the linger,
    and a watch beginning within the linger keeps the same subscription."""
    assert completion.app is not None
    served = completion.app.feed
    watchers = ExecutionWatchers(dataclasses.replace(settings, completion_address=completion.address))
    feed = CompletedFeed(dataclasses.replace(settings, completion_address=completion.address), watchers, linger=0.3)
    feed.start()
    try:
        await asyncio.sleep(0.2)
        assert not feed.subscribed and served.subscriber_count == 0
        with watchers.watching("first") as woken:
            assert feed.subscribed
            await eventually(lambda: served.subscriber_count == 1 and watchers.feed_connected, what="the subscription")
            await eventually(woken.is_set, what="the wake on connecting")  # re-read what ended meanwhile
            with watchers.watching("second"):
                assert served.subscriber_count == 1  # shared
        assert feed.subscribed and watchers.feed_connected  # lingering
        await asyncio.sleep(0.15)
        with watchers.watching("third"):  # within the linger: the same stream goes on
            await asyncio.sleep(0.3)
            assert feed.subscribed and served.subscriber_count == 1
        await eventually(lambda: served.subscriber_count == 0, what="the unsubscription")
        assert not feed.subscribed and not watchers.feed_connected
    finally:
        await feed.stop()
