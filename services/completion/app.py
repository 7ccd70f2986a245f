"""The completion service process: the servicer, the result store and the outcome forwarder."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from attune.config import Settings
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc
from attune.storage import Database
from attune_services.completion.feed import CompletionFeed
from attune_services.completion.forwarder import OutcomeForwarder
from attune_services.completion.servicer import CompletionServicer
from attune_services.completion.store import ResultStore

SERVICE_NAME = completion_pb2.DESCRIPTOR.services_by_name["CompletionService"].full_name


class CompletionApp:
    """attune-completion: the only writer of terminal states and results (docs/architecture.md, Services)."""

    service_names: Sequence[str] = (SERVICE_NAME,)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.forwarder = OutcomeForwarder(self.db, settings)
        self.feed = CompletionFeed()
        self.store = ResultStore(self.db, on_outbox=self.forwarder.notify, on_completed=self.feed.publish)
        self._servicer = CompletionServicer(self.store, settings, feed=self.feed)

    def register(self, server: grpc.aio.Server) -> None:
        """Adds CompletionService."""
        completion_pb2_grpc.add_CompletionServiceServicer_to_server(self._servicer, server)

    async def start(self) -> None:
        """Starts forwarding workflow outcomes (including rows left by an earlier run)."""
        self.forwarder.start()

    async def drain(self) -> None:
        """Writes the queued results, acks them and ends the result streams, then waits for their
        outcomes to reach the coordinator."""
        await self.store.close()
        await self._servicer.end_streams()
        self.feed.close()
        await self.forwarder.drain()

    async def close(self) -> None:
        """Stops the forwarder and releases the database pool."""
        await self.forwarder.close()
        await self.db.close()
