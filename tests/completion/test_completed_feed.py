"""WatchCompleted: each commit's newly terminal executions (with their parents) reach subscribers;
duplicates and results for executions that had already ended publish nothing."""

from __future__ import annotations

import asyncio

import grpc

from attune.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.grpcutil.channel import open_channel
from attune.storage import Database
from tests.completion.completiontools import CompletionServer, insert_execution
from tests.completion.test_completion_results import ResultStream, result


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
            assert message is not grpc.aio.EOF
            heard.update(message.execution_ids)
            parents.update(message.parent_ids)
        assert parents == {parent}
        # A duplicate changes nothing, so it publishes nothing; the next real change arrives alone.
        await stream.submit(result(lone))
        last = await insert_execution(db, state="running")
        await stream.submit(result(last))
        message = await asyncio.wait_for(feed.read(), timeout=5.0)
        assert list(message.execution_ids) == [last]
    finally:
        feed.cancel()
        await stream.close()
        await channel.close()
